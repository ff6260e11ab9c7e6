"""core.artifacts: a directory replaces its target only complete; an interrupted run leaves nothing."""

from __future__ import annotations

import os

import pytest

from core.artifacts import atomic_directory


def test_the_target_appears_only_when_the_block_completes(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "a" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(KeyboardInterrupt), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("b")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not (target / "b.txt").exists()


def test_ctrl_c_while_the_temporary_directory_is_being_set_up_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "chmod", interrupted)  # the step right after the directory is made
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "out"):
        pass
    assert list(tmp_path.iterdir()) == []
