"""Incremental builds (`--cache DIR`) and the time-based exam (`--eval-since`): a rebuild re-processes only the
files whose bytes changed and writes the bytes a fresh build writes; the exam is the files whose last commit
is at or after the cut-off; a build killed with SIGKILL leaves a cache the next build completes from."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.errors import ConfigError
from finetune.corpus import cache as cache_mod
from finetune.corpus.config import CorpusConfig, cutoff_timestamp
from finetune.corpus.pipeline import build
from finetune.corpus.repos import from_paths
from tests.finetune.corpus.conftest import make_git_repo, package_source

ROOT = Path(__file__).resolve().parents[3]


def commit_at(repo: Path, when: str, message: str = "work") -> None:
    """Commit everything in `repo` with author and committer date `when` (ISO 8601 with an offset)."""
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(repo),
           "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    for args in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def digests(dataset: Path) -> dict[str, str]:
    """sha256 of every shard of the dataset (rows and the files table), by relative path."""
    return {str(p.relative_to(dataset)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dataset.glob("*/*.parquet"))}


def same_manifest(a: dict, b: dict) -> None:
    """Equal but for what says how the build ran: the cache's report and its config keys."""
    def strip(m: dict) -> dict:
        m = json.loads(json.dumps(m))
        m.pop("cache")
        for key in ("cache_dir", "cache_max_gb", "cache_max_age_days"):
            m["config"].pop(key)
        return m

    assert strip(a) == strip(b)


def files_by_split(out: Path) -> dict[str, set[str]]:
    by: dict[str, set[str]] = {"train": set(), "dev": set(), "eval": set()}
    for row in pq.read_table(out / "files").to_pylist():
        by[row["split"]].add(row["path"])
    return by


def tqdm_files() -> dict[str, str]:
    return {f"tqdm/{p.name}": p.read_text() for p in sorted(package_source("tqdm").glob("*.py"))}


def test_a_rebuild_processes_only_changed_files_and_writes_the_fresh_bytes(tmp_path, corpus_cfg):
    files = tqdm_files()
    repo = make_git_repo(tmp_path / "svc", files, date="2024-01-01")
    cache = tmp_path / "cache"
    m1 = build(from_paths([repo]), tmp_path / "b1", corpus_cfg(cache_dir=str(cache)), progress=False)
    n = m1["cache"]["files_processed"]
    assert m1["cache"]["files_cached"] == 0 and n == len(files)
    # One commit after the cut-off: two files changed, one added.
    with open(repo / "tqdm" / "utils.py", "a") as fh:
        fh.write("\n\ndef added_later(x):\n    return x * 2\n")
    with open(repo / "tqdm" / "cli.py", "a") as fh:
        fh.write("\n\ndef also_later(name):\n    return name.upper() + '!'\n")
    (repo / "tqdm" / "brand_new.py").write_text(
        "def fresh(a, b):\n    total = a + b\n    for i in range(b):\n        total += i * a\n    return total\n")
    commit_at(repo, "2025-06-01T09:30:00+00:00")
    changed = {"tqdm/utils.py", "tqdm/cli.py", "tqdm/brand_new.py"}

    cfg = corpus_cfg(cache_dir=str(cache), eval_since="2025-06-01")
    m2 = build(from_paths([repo]), tmp_path / "b2", cfg, progress=False)
    assert m2["cache"]["files_processed"] == 3 and m2["cache"]["files_cached"] == n - 2
    assert m2["eval_cutoff"] == "2025-06-01T00:00:00+00:00" and m1["eval_cutoff"] is None
    assert files_by_split(tmp_path / "b2")["eval"] == changed
    eval_rows = pq.read_table(tmp_path / "b2" / "eval").to_pylist()
    assert eval_rows and {r["path"] for r in eval_rows} == changed
    assert m2["cache"]["spans_cached"] > 0  # files whose split did not change kept their spans

    fresh = build(from_paths([repo]), tmp_path / "fresh", corpus_cfg(eval_since="2025-06-01"), progress=False)
    assert fresh["cache"] is None
    assert digests(tmp_path / "b2") == digests(tmp_path / "fresh") and len(digests(tmp_path / "fresh")) == 4
    same_manifest(m2, fresh)

    # Nothing changed: nothing is processed, and the bytes are still those of a fresh build.
    m3 = build(from_paths([repo]), tmp_path / "b3", cfg, progress=False)
    assert m3["cache"]["files_processed"] == 0 and m3["cache"]["spans_processed"] == 0
    assert digests(tmp_path / "b3") == digests(tmp_path / "fresh")
    same_manifest(m3, fresh)


def test_a_config_change_misses_the_cache_and_a_global_one_does_not(tmp_path, corpus_cfg):
    repo = make_git_repo(tmp_path / "svc", tqdm_files())
    cache = str(tmp_path / "cache")
    build(from_paths([repo]), tmp_path / "a", corpus_cfg(cache_dir=cache), progress=False)
    # The split's and the writer's settings act after the per-file work: every file comes from the cache.
    m = build(from_paths([repo]), tmp_path / "b", corpus_cfg(cache_dir=cache, eval_fraction=0.3, rows_per_shard=7),
              progress=False)
    assert m["cache"]["files_processed"] == 0
    # A new seed draws new spans from the same prepared files.
    m = build(from_paths([repo]), tmp_path / "c", corpus_cfg(cache_dir=cache, seed=3), progress=False)
    assert m["cache"]["files_processed"] == 0 and m["cache"]["spans_cached"] == 0
    fresh = build(from_paths([repo]), tmp_path / "d", corpus_cfg(seed=3), progress=False)
    assert digests(tmp_path / "c") == digests(tmp_path / "d")
    # Estimated token budgets: no word index in the entries, the same bytes as without the cache.
    est = corpus_cfg(cache_dir=cache, token_budgets="estimate")
    build(from_paths([repo]), tmp_path / "est1", est, progress=False)
    m = build(from_paths([repo]), tmp_path / "est2", est, progress=False)
    assert m["cache"]["files_processed"] == 0 and m["cache"]["spans_processed"] == 0
    build(from_paths([repo]), tmp_path / "est3", corpus_cfg(token_budgets="estimate"), progress=False)
    assert digests(tmp_path / "est2") == digests(tmp_path / "est3")
    # A filter setting is part of the prepare pass's key.
    m = build(from_paths([repo]), tmp_path / "e", corpus_cfg(cache_dir=cache, max_line_length=500), progress=False)
    assert m["cache"]["files_cached"] == 0
    assert fresh["cache"] is None


def test_fingerprints_hold_what_changes_a_files_result():
    def fp(**kw):
        cfg = CorpusConfig(tokenizer="t.json", fim_format="starcoder", **kw)
        return cache_mod.Fingerprints.of(cfg, str(ROOT / "pyproject.toml"), "starcoder", "/tmp/c")

    base = fp()
    assert fp(workers=3, eval_since="2025-01-01", eval_fraction=0.2, near_dup_threshold=0.8) == base
    assert fp(seed=1).prepare == base.prepare and fp(seed=1).spans != base.spans
    assert fp(max_line_length=10).prepare != base.prepare
    assert fp(token_budgets="estimate").prepare != base.prepare
    other_format = cache_mod.Fingerprints.of(CorpusConfig(), str(ROOT / "pyproject.toml"), "codellama", "/tmp/c")
    assert other_format.prepare != base.prepare
    other_tokenizer = cache_mod.Fingerprints.of(CorpusConfig(), str(ROOT / "README.md"), "starcoder", "/tmp/c")
    assert other_tokenizer.prepare != base.prepare


def test_blob_id_is_gits(tmp_path):
    data = b"print('hi')\n\x00\xff"
    (tmp_path / "f").write_bytes(data)
    out = subprocess.run(["git", "hash-object", "--no-filters", str(tmp_path / "f")], capture_output=True, text=True,
                         check=True)
    assert cache_mod.blob_id(data) == out.stdout.strip()


def test_a_damaged_entry_reads_as_a_miss(tmp_path):
    fp = cache_mod.Fingerprints(str(tmp_path), "p", "s")
    key = fp.key(cache_mod.PREPARE, "abc", ".py")
    fp.put(cache_mod.PREPARE, key, {"reason": None, "n": 1}, b"payload")
    assert fp.get(cache_mod.PREPARE, key) == ({"reason": None, "n": 1}, b"payload")
    path = Path(fp.path(cache_mod.PREPARE, key))
    data = path.read_bytes()
    for damaged in (data[:-1], data[:10], b"", data[:-3] + b"xyz", data + b"!"):
        path.write_bytes(damaged)
        assert fp.get(cache_mod.PREPARE, key) is None
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_prune_keeps_this_builds_entries(tmp_path):
    fp = cache_mod.Fingerprints(str(tmp_path), "p", "s")
    keys = [fp.key(cache_mod.PREPARE, str(i)) for i in range(6)]
    now = time.time()
    for i, key in enumerate(keys):
        fp.put(cache_mod.PREPARE, key, {}, b"x" * 1000)
        age_days = 10 - i  # keys[0] is the oldest
        os.utime(fp.path(cache_mod.PREPARE, key), (now - age_days * 86400, now - age_days * 86400))
    fp.put(cache_mod.PREPARE, "ff" + "0" * 62, {}, b"y" * 1000)  # written by "this build"
    stale_tmp = Path(fp.path(cache_mod.PREPARE, keys[0])).parent / ".tmp-killed.123"
    stale_tmp.write_bytes(b"half")
    os.utime(stale_tmp, (now - 7200, now - 7200))
    started = now - 60
    out = cache_mod.prune(str(tmp_path), started, max_gb=0, max_age_days=7.5)  # keys[0..2] are 8-10 days old
    assert out["pruned_entries"] == 3 and out["entries"] == 4 and not stale_tmp.exists()
    assert all(not os.path.exists(fp.path(cache_mod.PREPARE, k)) for k in keys[:3])
    out = cache_mod.prune(str(tmp_path), started, max_gb=2.5e-6, max_age_days=0)  # 2500 bytes: the 2 newest
    assert out["entries"] == 2 and out["bytes"] <= 2500
    assert os.path.exists(fp.path(cache_mod.PREPARE, "ff" + "0" * 62))
    assert os.path.exists(fp.path(cache_mod.PREPARE, keys[5]))
    out = cache_mod.prune(str(tmp_path), started, max_gb=1e-9, max_age_days=0)  # this build's entry stays
    assert out["entries"] == 1


_CHILD = """
import sys
from finetune.corpus.config import CorpusConfig
from finetune.corpus.pipeline import build
from finetune.corpus.repos import from_paths
repo, out, cache, model = sys.argv[1:]
build(from_paths([repo]), out, CorpusConfig(model=model, workers=1, max_examples_per_file=4, cache_dir=cache),
      progress=False)
"""


def test_a_build_killed_mid_way_leaves_a_cache_the_next_build_completes_from(tmp_path, corpus_cfg, tiny_model_dir):
    files = tqdm_files()
    files.update({f"click/{p.name}": p.read_text() for p in sorted(package_source("click").glob("*.py"))})
    repo = make_git_repo(tmp_path / "svc", files)
    cache, out = tmp_path / "cache", tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(repo), str(out), str(cache), str(tiny_model_dir)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
    prepared = cache / cache_mod.FORMAT / cache_mod.PREPARE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(1 for p in prepared.glob("*/*") if not p.name.startswith(".tmp-")) >= 8:
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"the build ended before it was killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not out.exists()  # the output appears only complete
    written = [p for p in prepared.glob("*/*") if not p.name.startswith(".tmp-")]
    assert 8 <= len(written) < len(files)
    for path in written:  # every entry under its final name is whole
        assert cache_mod._decode(path.read_bytes()) is not None, path

    m = build(from_paths([repo]), out, corpus_cfg(cache_dir=str(cache)), progress=False)
    assert m["cache"]["files_cached"] >= len(written) and m["cache"]["files_processed"] > 0
    fresh = build(from_paths([repo]), tmp_path / "fresh", corpus_cfg(), progress=False)
    assert digests(out) == digests(tmp_path / "fresh")
    same_manifest(m, fresh)


def test_eval_since_takes_the_last_commit_date_not_the_file_time(tmp_path, corpus_cfg):
    sources = [text for text in tqdm_files().values() if len(text) > 2000][:6]
    files = {f"pkg/m{i}.py": text for i, text in enumerate(sources)}
    repo = make_git_repo(tmp_path / "svc", files, date="2024-01-01")
    (repo / "pkg" / "m1.py").write_text(files["pkg/m1.py"] + "\n\ndef late_night(x):\n    return x\n")
    commit_at(repo, "2025-06-01T00:30:00+00:00")  # just after midnight UTC of the cut-off day
    (repo / "pkg" / "m2.py").write_text(files["pkg/m2.py"] + "\n\ndef next_day(x):\n    return x + 1\n")
    commit_at(repo, "2025-06-02T12:00:00+02:00")  # 10:00 UTC
    os.utime(repo / "pkg" / "m3.py")  # touched on disk now, last committed in 2024: not the exam

    def exam(since: str) -> set[str]:
        out = tmp_path / f"ds-{len(list(tmp_path.iterdir()))}"
        build(from_paths([repo]), out, corpus_cfg(eval_since=since, max_examples_per_file=1), progress=False)
        by = files_by_split(out)
        rows = {r["path"] for r in pq.read_table(out / "eval").to_pylist()}
        assert rows == by["eval"] and not by["eval"] & (by["train"] | by["dev"])
        return by["eval"]

    # A date is its midnight UTC (git alone reads it as that day at the current time of day, local time).
    assert exam("2025-06-01") == {"pkg/m1.py", "pkg/m2.py"}
    assert exam("2025-06-01T00:30:01") == {"pkg/m2.py"}
    assert exam("2025-06-01T00:30:00+00:00") == {"pkg/m1.py", "pkg/m2.py"}  # at the cut-off counts
    assert exam("2025-06-02T11:59:59+02:00") == {"pkg/m2.py"}
    assert exam("2025-06-02T10:00:01Z") == set()  # nothing that recent: no exam, no random one either


def test_dedup_keeps_the_exam_copy_of_a_duplicate(tmp_path, corpus_cfg):
    files = tqdm_files()
    repo = make_git_repo(tmp_path / "svc", files, date="2024-01-01")
    # A copy of an old file, committed after the cut-off; it sorts after the original, which dedup would keep.
    (repo / "zz").mkdir()
    (repo / "zz" / "utils_copy.py").write_text(files["tqdm/utils.py"])
    commit_at(repo, "2025-06-01T12:00:00+00:00")
    m = build(from_paths([repo]), tmp_path / "ds", corpus_cfg(eval_since="2025-06-01"), progress=False)
    by = files_by_split(tmp_path / "ds")
    assert by["eval"] == {"zz/utils_copy.py"}
    assert "tqdm/utils.py" not in by["train"] | by["dev"] and m["counts"]["dedup"]["exact_duplicate"] >= 1
    m = build(from_paths([repo]), tmp_path / "ds2", corpus_cfg(), progress=False)
    assert "tqdm/utils.py" in set().union(*files_by_split(tmp_path / "ds2").values())


def test_eval_since_values():
    assert cutoff_timestamp("2025-06-01") == 1748736000
    assert cutoff_timestamp("2025-06-01T00:00:00") == cutoff_timestamp("2025-06-01T02:00:00+02:00") == 1748736000
    assert cutoff_timestamp("2025-06-01T00:00:00Z") == 1748736000
    assert cutoff_timestamp("2025-06-01T00:00:00.5+00:00") == 1748736001
    CorpusConfig(eval_since="2025-06-01T10:11:12+00:00")
    for bad in ("last tuesday", "2025-13-01", "2025-06-01 10:00", "1748736000", "2025-06"):
        with pytest.raises(ConfigError, match="eval_since"):
            CorpusConfig(eval_since=bad)
    for key in ("cache_max_gb", "cache_max_age_days"):
        with pytest.raises(ConfigError, match=key):
            CorpusConfig(**{key: -1})


def test_the_cli_reports_the_cache(tmp_path, tiny_model_dir):
    repo = make_git_repo(tmp_path / "svc", {f"svc/m{i}.py": f"def f{i}(x):\n    if x > {i}:\n        return x - {i}\n"
                                            f"    return x * {i} + 1\n" for i in range(5)})
    args = [sys.executable, "-m", "app.cli", "corpus", "build", str(repo), "--model", str(tiny_model_dir),
            "--workers", "1", "--no-progress", "--cache", str(tmp_path / "cache"), "--cache-max-gb", "1",
            "--cache-max-age-days", "30"]
    first = subprocess.run([*args, "-o", str(tmp_path / "a")], capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "cache: 5 files processed, 0 from the cache" in first.stdout
    second = subprocess.run([*args, "-o", str(tmp_path / "b")], capture_output=True, text=True, cwd=ROOT)
    assert "cache: 0 files processed, 5 from the cache" in second.stdout, second.stderr
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["config"]["cache_max_gb"] == 1 and manifest["cache"]["dir"] == str(tmp_path / "cache")
    assert manifest["cache"]["entries"] > 0 and manifest["cache"]["pruned_entries"] == 0
    stats = subprocess.run([sys.executable, "-m", "app.cli", "corpus", "stats", str(tmp_path / "b")],
                           capture_output=True, text=True, cwd=ROOT)
    assert "0 files processed, 5 from the cache" in stats.stdout, stats.stderr


def test_eval_since_sees_past_a_commit_with_a_skewed_clock(tmp_path):
    from finetune.corpus.repos import git_changed_since

    repo = make_git_repo(tmp_path / "svc", {"a.py": "a = 1\n"}, date="2024-01-01")
    (repo / "b.py").write_text("b = 1\n")
    commit_at(repo, "2025-06-02T00:00:00+00:00")
    (repo / "c.py").write_text("c = 1\n")
    commit_at(repo, "2020-01-01T00:00:00+00:00")  # a committer whose clock was years behind
    # `git log --since` alone stops at HEAD, older than the cut-off, and finds nothing.
    assert git_changed_since(repo, cutoff_timestamp("2025-01-01")) == {"b.py"}
    assert git_changed_since(repo, cutoff_timestamp("2025-06-02T00:00:01")) == set()


def test_a_word_index_packs_and_unpacks_to_its_bytes(tiny_tokenizer):
    from finetune.corpus.tokencount import WordCounter, WordIndex

    counter = WordCounter(tiny_tokenizer)
    texts = [p.read_text() for p in sorted(package_source("tqdm").glob("*.py"))[:8]]
    texts += ["x", "a" * 300 + " b", "é" * 70000 + " z", ""]  # one-byte, two-byte and four-byte differences
    widths = set()
    for i, text in enumerate(texts):
        blob = WordIndex.build(counter, text).to_bytes()
        packed = cache_mod.pack_index(blob)
        assert cache_mod.unpack_index(packed) == blob
        widths.add(packed[0])
        if i < 8 and len(text) > 1000:  # code: one byte a difference
            assert packed[0] == 0 and len(packed) < len(blob) / 3
    for odd in (b"", b"\x01\x00\x00\x00", b"\x00" * 7, b"\x02\x00\x00\x00" + b"\x00" * 4 + b"\x05\x00\x00\x00" * 4):
        assert cache_mod.unpack_index(cache_mod.pack_index(odd)) == odd
    assert widths == {0, 1, 2}
