"""No leakage: no near-duplicate of an exam (or dev) file is in train, with random and --eval-since splits."""

from __future__ import annotations

import pyarrow.parquet as pq

from finetune.corpus.dedup import jaccard
from finetune.corpus.pipeline import build
from finetune.corpus.repos import from_paths
from tests.finetune.corpus.conftest import git, make_git_repo, package_source


def near_copy(text: str) -> str:
    """A realistic near-duplicate: every sixth line edited (a fork that drifted a little)."""
    lines = text.split("\n")
    return "\n".join(line + "  # patched" if i % 6 == 0 and line.strip() else line for i, line in enumerate(lines))


def files_by_split(out) -> dict[str, dict[str, str]]:
    by: dict[str, dict[str, str]] = {"train": {}, "dev": {}, "eval": {}}
    for row in pq.read_table(out / "files").to_pylist():
        by[row["split"]][row["path"]] = row["content"]
    return by


def assert_no_leak(by: dict[str, dict[str, str]], limit: float = 0.7) -> None:
    for held in ("eval", "dev"):
        for path, text in by[held].items():
            for tpath, ttext in by["train"].items():
                assert jaccard(text, ttext) < limit, (held, path, tpath)


def test_near_copies_never_straddle_splits(tmp_path, corpus_cfg):
    src = package_source("tqdm")
    originals = {p.name: p.read_text() for p in sorted(src.glob("*.py")) if 3000 < p.stat().st_size < 40000}
    files = {f"orig/{n}": t for n, t in originals.items()}
    files.update({f"fork/{n}": near_copy(t) for n, t in originals.items()})
    sims = [jaccard(t, near_copy(t)) for t in originals.values()]
    assert min(sims) > 0.5 and max(sims) < 0.95  # near copies that dedup at 0.95 does not remove
    repo = make_git_repo(tmp_path / "r", files)
    out = tmp_path / "ds"
    m = build(from_paths([repo]), out, corpus_cfg(near_dup_threshold=0.95, eval_fraction=0.3, dev_fraction=0.2,
                                                  max_examples_per_file=1), progress=False)
    by = files_by_split(out)
    assert by["eval"] and by["dev"] and by["train"]
    assert m["counts"]["split"]["multi_file_groups"] >= len(originals) // 2  # the guard did group them
    assert_no_leak(by)
    for paths in by.values():  # a copy sits with its original
        for p in paths:
            twin = p.replace("orig/", "fork/") if p.startswith("orig/") else p.replace("fork/", "orig/")
            assert twin in paths or all(twin not in other for other in by.values())


def test_eval_since_holds_out_recent_changes_and_drops_their_old_copies(tmp_path, corpus_cfg):
    src = package_source("tqdm")
    files = {f"tqdm/{p.name}": p.read_text() for p in sorted(src.glob("*.py"))}
    files["tqdm/utils_fork.py"] = near_copy(files["tqdm/utils.py"])
    repo = make_git_repo(tmp_path / "r", files, date="2023-03-01")
    with open(repo / "tqdm" / "utils.py", "a") as fh:
        fh.write("\n\ndef added_later(x):\n    return x * 2\n")
    (repo / "tqdm" / "brand_new.py").write_text("def fresh(a, b):\n    total = a + b\n    return total\n" * 3)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "recent work", date="2025-06-01")
    out = tmp_path / "ds"
    m = build(from_paths([repo]), out, corpus_cfg(eval_since="2025-01-01", near_dup_threshold=0.95,
                                                  max_examples_per_file=1), progress=False)
    by = files_by_split(out)
    assert set(by["eval"]) == {"tqdm/utils.py", "tqdm/brand_new.py"}
    assert "tqdm/utils_fork.py" not in by["train"] and m["counts"]["split"]["dropped_near_eval"] >= 1
    assert_no_leak(by)
    eval_rows = pq.read_table(out / "eval").to_pylist()
    assert eval_rows and {r["path"] for r in eval_rows} <= {"tqdm/utils.py", "tqdm/brand_new.py"}
