"""Repositories given by git URL in repos.toml (`clone.py`), on the local executor: the dataset of the same
repository read from its path, history included (`--eval-since`); the next build fetches into the same clone; a
URL that cannot be cloned is one clear error and writes nothing. The Ray executor's twins are in test_ray.py."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import CorpusError
from finetune.corpus.pipeline import build
from finetune.corpus.repos import read_repos_toml
from tests.finetune.corpus.conftest import git, make_git_repo, write_repos_toml

ROOT = Path(__file__).resolve().parents[3]


def digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*.parquet"))}


def head(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_url_builds_the_dataset_of_its_local_path(tmp_path, history_repo, history_dataset, corpus_cfg):
    local, local_manifest = history_dataset
    toml = write_repos_toml(tmp_path / "repos.toml", history_repo.as_uri(), team="t")
    out = tmp_path / "from-url"
    manifest = build(read_repos_toml(toml), out, corpus_cfg(eval_since="2025-01-01", dev_fraction=0.1,
                                                            clone_dir=str(tmp_path / "clones")), progress=False)
    assert digest(out) == digest(local) and len(digest(out)) == 4
    assert manifest["counts"] == local_manifest["counts"] and manifest["counts"]["split"]["eval_files"] == 2
    row = manifest["repos"][0]
    assert row["name"] == "proj" and row["url"] == history_repo.as_uri() and row["commit"] == head(history_repo)
    assert Path(row["path"]).is_relative_to(tmp_path / "clones")


def test_the_next_build_fetches_into_the_same_clone_and_a_ref_picks_the_commit(tmp_path, tiny_model_dir,
                                                                                corpus_cfg):
    repo = make_git_repo(tmp_path / "src" / "lib", {"lib/a.py": "def a(x):\n    return x + 1\n" * 8})
    first = head(repo)
    clones = tmp_path / "clones"
    cfg = corpus_cfg(clone_dir=str(clones), eval_fraction=0.0, dev_fraction=0.0)
    toml = write_repos_toml(tmp_path / "repos.toml", repo.as_uri())
    m1 = build(read_repos_toml(toml), tmp_path / "one", cfg, progress=False)
    (mirror,) = clones.glob("lib-*.git")
    inode = mirror.stat().st_ino
    (repo / "lib" / "b.py").write_text("def b(y):\n    total = y * 2\n    return total\n" * 6)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more", date="2024-02-01")
    m2 = build(read_repos_toml(toml), tmp_path / "two", cfg, progress=False)
    assert mirror.stat().st_ino == inode and [p.name for p in clones.glob("lib-*.git")] == [mirror.name]
    assert (m1["repos"][0]["commit"], m2["repos"][0]["commit"]) == (first, head(repo))
    assert (m1["repos"][0]["candidates"], m2["repos"][0]["candidates"]) == (1, 2)
    pinned = build(read_repos_toml(write_repos_toml(tmp_path / "pinned.toml", repo.as_uri(), ref=first)),
                   tmp_path / "three", cfg, progress=False)
    assert pinned["repos"][0]["commit"] == first and digest(tmp_path / "three") == digest(tmp_path / "one")


def test_a_url_that_cannot_be_cloned_is_one_clear_error_and_writes_nothing(tmp_path, tiny_model_dir):
    bad = (tmp_path / "nowhere" / "ledger.git").as_uri()
    toml = write_repos_toml(tmp_path / "repos.toml", bad)
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "app.cli", "corpus", "build", "--repos", str(toml), "-o", str(out),
                           "--model", str(tiny_model_dir), "--no-progress", "--clone-dir", str(tmp_path / "clones")],
                          check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert "'ledger'" in proc.stderr and bad in proc.stderr and "cannot clone" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".o.*"))
    (left,) = (tmp_path / "clones").iterdir()  # --clone-dir was used, and holds no partial clone
    assert left.name.startswith("ledger-") and left.suffix == ".lock"


def test_a_ref_the_repository_lacks_is_one_clear_error(tmp_path, corpus_cfg):
    repo = make_git_repo(tmp_path / "src" / "lib", {"lib/a.py": "def a(x):\n    return x + 1\n" * 8})
    toml = write_repos_toml(tmp_path / "repos.toml", repo.as_uri(), ref="release-9")
    with pytest.raises(CorpusError) as err:
        build(read_repos_toml(toml), tmp_path / "o", corpus_cfg(clone_dir=str(tmp_path / "clones")), progress=False)
    assert str(err.value) == f"repository 'lib': {repo.as_uri()} has no branch, tag or commit 'release-9'"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("body", "message"), [
    ('path = "a"\nurl = "file:///x"', "not both"),
    ('ref = "main"', "needs a string `path` or a string `url`"),
    ('path = "a"\nref = "main"', "`ref` goes with a `url`"),
    ('url = ""', "`url` must be a non-empty string"),
])
def test_a_repos_toml_entry_names_what_is_wrong(tmp_path, body, message):
    toml = tmp_path / "repos.toml"
    toml.write_text(f"[[repo]]\n{body}\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="number 1") as err:
        read_repos_toml(toml)
    assert message in str(err.value)


def test_a_url_entry_is_named_after_its_last_part(tmp_path):
    toml = write_repos_toml(tmp_path / "repos.toml", "https://git.example.com/pay/ledger.git", ref="v7")
    (spec,) = read_repos_toml(toml)
    assert (spec.name, spec.url, spec.ref) == ("ledger", "https://git.example.com/pay/ledger.git", "v7")
