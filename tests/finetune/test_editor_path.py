"""The editor-path check (bench/editor.py) on the tiny model: held-out cursors typed into the real `inhouse lsp`
backed by `inhouse serve` with the adapter give exactly the exam's suggestions on the same rows (greedy)."""

from __future__ import annotations

import pytest

from finetune.config import EvalConfig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_the_editor_shows_what_the_exam_graded(tiny_model_dir, tiny_dataset, trained_adapter, tmp_path):
    from bench.editor import compare_with_exam, run, summary
    from finetune.exam import run_exam

    exam_dir = tmp_path / "exam"
    run_exam(tiny_model_dir, tiny_dataset, exam_dir, EvalConfig(limit=6, bootstrap=100), adapter=trained_adapter)
    result = run(tiny_model_dir, tiny_dataset, trained_adapter, 6, 0, tmp_path / "editor")
    assert result["model"] == "tuned" and result["n"] == 6
    agreement = compare_with_exam(result, exam_dir)
    assert agreement["rows"] == 6 and agreement["identical"] == 6, agreement
    figures = summary(result, bootstrap=100)
    assert figures["exact_match"]["mean"] == pytest.approx(agreement["exam_exact_match"])
    assert figures["edit_similarity"]["mean"] == pytest.approx(agreement["exam_edit_similarity"])
    assert figures["latency_ms"]["p50"] > 0
    assert any(r["completion"] for r in result["records"])  # the tuned tiny model does suggest something here
