"""End to end on real code (tqdm's source in a temporary git repository): layout, rows, manifest, errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.errors import CorpusError
from core.fim import FimMode, get_format
from finetune.corpus.pipeline import build
from finetune.corpus.repos import RepoSpec, from_paths, read_repos_toml
from tests.finetune.corpus.conftest import make_git_repo

COLUMNS = ["text", "objective", "prompt_chars", "prefix", "middle", "suffix", "kind", "language", "path", "repo",
           "fim_format", "has_context"]


def rows(dataset: Path, split: str) -> list[dict]:
    return pq.read_table(dataset / split).to_pylist()


def test_layout_and_datasets_load(tqdm_dataset):
    out, manifest = tqdm_dataset
    for split in ("train", "dev", "eval", "files"):
        assert (out / split / "part-00000.parquet").is_file()
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files={s: str(out / s / "*.parquet") for s in ("train", "dev", "eval")})
    assert ds["train"].column_names == COLUMNS
    assert len(ds["train"]) == manifest["splits"]["train"] > 50
    assert len(ds["eval"]) == manifest["splits"]["eval"] > 0 and len(ds["dev"]) == manifest["splits"]["dev"] > 0
    assert pq.read_schema(out / "files" / "part-00000.parquet").names == ["repo", "path", "language", "split",
                                                                           "content"]


def test_manifest_counts_every_stage(tqdm_dataset, tqdm_repo):
    _, m = tqdm_dataset
    for stage in ("discover", "filter", "secrets", "dedup", "split", "spans", "render", "parse"):
        assert stage in m["counts"], stage
    assert m["fim_format"] == "starcoder" and m["config"]["fim_rate"] == 0.9
    assert m["repos"][0]["commit"] and len(m["repos"][0]["commit"]) == 40 and m["repos"][0]["discovery"] == "git"
    assert m["counts"]["filter"]["kept"] == m["counts"]["dedup"]["kept"] + m["counts"]["dedup"].get(
        "exact_duplicate", 0) + m["counts"]["dedup"].get("near_duplicate", 0)
    assert m["files"] == m["counts"]["dedup"]["kept"] - m["counts"]["split"].get("dropped_near_eval", 0)
    assert m["git_sha"] and m["inhouse_version"]


def test_rows_follow_the_contract(tqdm_dataset):
    out, manifest = tqdm_dataset
    fmt = get_format("starcoder")
    train = rows(out, "train")
    kinds = {r["kind"] for r in train}
    assert {"function_body", "statement", "expression", "line_end", "l2r"} <= kinds, kinds
    objectives = [r["objective"] for r in train]
    assert {"psm", "spm", "l2r"} <= set(objectives)
    assert 0.02 < objectives.count("l2r") / len(objectives) < 0.3  # fim_rate 0.9
    assert any(r["has_context"] for r in train)
    for r in train:
        assert r["fim_format"] == "starcoder" and r["language"] == "python" and r["repo"] == "tqdm-src"
        if r["objective"] == "l2r":
            assert r["prompt_chars"] == 0 and r["middle"] == "" and r["text"].endswith(fmt.eot)
            continue
        prompt = r["text"][: r["prompt_chars"]]
        assert r["text"] == prompt + r["middle"] + fmt.eot
        if not r["has_context"]:
            assert prompt == fmt.render_prompt(r["prefix"], r["suffix"], FimMode(r["objective"]))
        else:
            assert prompt.startswith(fmt.repo_name + "tqdm-src" + fmt.file_sep)
            assert f"{r['path']}\n" in prompt and prompt.count(fmt.file_sep) >= 2
    for split in ("eval", "dev"):
        for r in rows(out, split):
            assert r["objective"] == "psm" and not r["has_context"] and r["kind"] not in ("l2r", "char_random")
            assert r["text"] == fmt.render_example(r["prefix"], r["middle"], r["suffix"], FimMode.PSM)


def test_pieces_come_from_the_file_and_respect_token_caps(tqdm_dataset, tiny_tokenizer):
    out, manifest = tqdm_dataset
    files = {(f["repo"], f["path"]): f["content"] for f in rows(out, "files")}
    cfg = manifest["config"]
    for r in rows(out, "train")[:150] + rows(out, "eval"):
        content = files[(r["repo"], r["path"])]
        if r["objective"] == "l2r":
            assert r["prefix"] in content
            continue
        assert r["prefix"] + r["middle"] + r["suffix"] in content
        assert content.find(r["prefix"] + r["middle"]) != -1
        assert len(tiny_tokenizer.encode(r["middle"], add_special_tokens=False).ids) <= cfg["max_middle_tokens"]
        assert len(tiny_tokenizer.encode(r["prefix"], add_special_tokens=False).ids) <= cfg["max_prefix_tokens"]
        assert len(tiny_tokenizer.encode(r["suffix"], add_special_tokens=False).ids) <= cfg["max_suffix_tokens"]


def test_same_input_and_seed_give_identical_bytes_even_in_parallel(tmp_path, tqdm_repo, corpus_cfg):
    def digest(d: Path) -> dict[str, str]:
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*.parquet"))}

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    repos = from_paths([tqdm_repo])
    build(repos, a, corpus_cfg(seed=3, workers=1, max_examples_per_file=2), progress=False)
    build(repos, b, corpus_cfg(seed=3, workers=2, max_examples_per_file=2), progress=False)
    assert digest(a) == digest(b) and len(digest(a)) == 4
    build(repos, c, corpus_cfg(seed=4, workers=1, max_examples_per_file=2), progress=False)
    assert digest(c)["train/part-00000.parquet"] != digest(a)["train/part-00000.parquet"]


def test_existing_output_is_refused_then_replaced_with_overwrite(tmp_path, corpus_cfg):
    repo = make_git_repo(tmp_path / "r", {"a.py": "def f(x):\n    return x + 1\n\n\nprint(f(2))\n"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(CorpusError, match="already exists"):
        build(from_paths([repo]), out, corpus_cfg(), progress=False)
    assert (out / "keep.txt").is_file()
    build(from_paths([repo]), out, corpus_cfg(), overwrite=True, progress=False)
    assert not (out / "keep.txt").exists() and (out / "manifest.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs or spools left


def test_bad_inputs_are_clear_errors_or_counted_skips(tmp_path, corpus_cfg):
    with pytest.raises(CorpusError, match="does not exist"):
        build([RepoSpec("x", tmp_path / "missing")], tmp_path / "o1", corpus_cfg(), progress=False)
    with pytest.raises(CorpusError, match="tokenizer"):
        build([RepoSpec("x", tmp_path)], tmp_path / "o2", corpus_cfg(model=None), progress=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("# nothing to learn here\n")
    (docs / "gen.py").write_text("# Code generated by a tool. DO NOT EDIT.\nX = 1\n")
    with pytest.raises(CorpusError, match="no usable source file.*auto_generated 1.*unknown_language 1"):
        build([RepoSpec("docs", docs)], tmp_path / "o4", corpus_cfg(), progress=False)
    assert not (tmp_path / "o4").exists()
    plain = tmp_path / "plain"  # not a git repository: walked
    (plain / "pkg").mkdir(parents=True)
    (plain / "pkg" / "good.py").write_text("import os\n\n\ndef main():\n    return os.getcwd()\n" * 3)
    (plain / "pkg" / "latin1.py").write_bytes("nom = 'caf\xe9'\nprint(nom)\n".encode("latin-1"))
    (plain / "pkg" / "blob.py").write_bytes(b"x = 1\n\0\0\0binary")
    (plain / "pkg" / "secret_dir.py").write_text("def g():\n    return 2\n")
    os.chmod(plain / "pkg" / "secret_dir.py", 0)
    (plain / "pkg" / "loop").symlink_to(plain / "pkg")  # a symlink loop must not trap the walk
    (plain / "node_modules").mkdir()
    (plain / "node_modules" / "dep.js").write_text("module.exports = 1;\n")
    m = build([RepoSpec("plain", plain)], tmp_path / "o3", corpus_cfg(), progress=False)
    f = m["counts"]["filter"]
    assert f["invalid_utf8"] == 1 and f["binary"] == 1 and f["kept"] >= 1
    assert f.get("unreadable", 0) == (0 if os.geteuid() == 0 else 1)
    assert m["repos"][0]["discovery"] == "walk" and m["counts"]["discover"]["symlink"] == 1
    paths = {r["path"] for r in rows(tmp_path / "o3", "files")}
    assert "pkg/good.py" in paths and not any("node_modules" in p or "loop/" in p for p in paths)


def test_repos_toml(tmp_path, corpus_cfg):
    make_git_repo(tmp_path / "one", {"a/x.py": "def x():\n    return 'one'\n" * 4})
    make_git_repo(tmp_path / "two", {"b/y.py": "def y():\n    return 'two'\n" * 4})
    (tmp_path / "repos.toml").write_text('[[repo]]\nname = "first"\npath = "one"\nteam = "core"\n'
                                         'visibility = "internal"\n\n[[repo]]\npath = "two"\n')
    specs = read_repos_toml(tmp_path / "repos.toml")
    assert [s.name for s in specs] == ["first", "two"] and specs[0].team == "core"
    m = build(specs, tmp_path / "out", corpus_cfg(), progress=False)
    assert {r["name"] for r in m["repos"]} == {"first", "two"}
    assert {r["repo"] for r in rows(tmp_path / "out", "files")} == {"first", "two"}
    (tmp_path / "bad.toml").write_text('[[repo]]\nname = "x"\n')
    with pytest.raises(CorpusError, match="needs a string `path`"):
        read_repos_toml(tmp_path / "bad.toml")


def test_estimated_budgets_stay_close_and_middles_stay_exact(tmp_path, corpus_cfg, tiny_tokenizer):
    from tests.finetune.corpus.conftest import package_source

    src = package_source("tqdm")
    files = {f"tqdm/{n}": (src / n).read_text() for n in ("std.py", "utils.py", "cli.py")}
    repo = make_git_repo(tmp_path / "r", files)
    cfg = corpus_cfg(token_budgets="estimate", max_prefix_tokens=300, max_suffix_tokens=120, max_middle_tokens=40,
                     max_examples_per_file=30, eval_fraction=0.0, dev_fraction=0.0)
    build(from_paths([repo]), tmp_path / "ds", cfg, progress=False)

    def n(text: str) -> int:
        return len(tiny_tokenizer.encode(text, add_special_tokens=False).ids)

    fim = [r for r in rows(tmp_path / "ds", "train") if r["objective"] != "l2r"]
    assert len(fim) > 40
    assert all(n(r["middle"]) <= 40 for r in fim)
    worst = max(max(n(r["prefix"]) / 300, n(r["suffix"]) / 120) for r in fim)
    assert worst <= 1.35, worst  # an estimate: close to the budget, not exact
    content = {r["path"]: r["content"] for r in rows(tmp_path / "ds", "files")}
    cut = [n(r["prefix"]) for r in fim if content[r["path"]].find(r["prefix"] + r["middle"]) > 0]
    assert cut and sum(cut) / len(cut) > 300 * 0.6  # prefixes that were cut use most of their budget


def test_exact_budgets_hold_in_the_target_tokenizer(tmp_path, corpus_cfg, tiny_tokenizer):
    from tests.finetune.corpus.conftest import package_source

    src = package_source("tqdm")
    files = {f"tqdm/{n}": (src / n).read_text() for n in ("std.py", "utils.py", "cli.py", "_monitor.py")}
    repo = make_git_repo(tmp_path / "r", files)
    cfg = corpus_cfg(max_prefix_tokens=90, max_suffix_tokens=40, max_middle_tokens=24, max_l2r_tokens=120,
                     max_context_tokens=70, context_rate=1.0, max_examples_per_file=30, eval_fraction=0.0,
                     dev_fraction=0.0)
    build(from_paths([repo]), tmp_path / "ds", cfg, progress=False)

    def n(text: str) -> int:
        return len(tiny_tokenizer.encode(text, add_special_tokens=False).ids)

    train = rows(tmp_path / "ds", "train")
    fim = [r for r in train if r["objective"] != "l2r"]
    assert len(fim) > 60 and any(r["has_context"] for r in train)
    for r in fim:
        assert n(r["prefix"]) <= 90 and n(r["suffix"]) <= 40 and n(r["middle"]) <= 24, r["path"]
    assert all(n(r["prefix"]) <= 120 for r in train if r["objective"] == "l2r")
    # cut prefixes use their budget (a line-start snap may give back a line's worth)
    content = {r["path"]: r["content"] for r in rows(tmp_path / "ds", "files")}
    cut = [n(r["prefix"]) for r in fim if content[r["path"]].find(r["prefix"] + r["middle"]) > 0]
    assert cut and sum(cut) / len(cut) > 90 * 0.6


def test_a_dead_dedup_process_is_a_clear_error_and_leaves_nothing(tmp_path, tqdm_repo, corpus_cfg, monkeypatch):
    from finetune.corpus import dedup

    out = tmp_path / "out"
    monkeypatch.setattr(dedup, "reduce", lambda *a: os._exit(3))  # the forked reducer inherits it
    with pytest.raises(CorpusError, match=r"dedup process stopped \(exit code 3\)"):
        build(from_paths([tqdm_repo]), out, corpus_cfg(workers=2), progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())

    def broken(*a):
        raise ValueError("bad signature")

    monkeypatch.setattr(dedup, "reduce", broken)
    with pytest.raises(ValueError, match="bad signature"):  # an error in the reducer is raised here
        build(from_paths([tqdm_repo]), out, corpus_cfg(workers=2), progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())
