"""Reusable pieces for gate and flywheel tests on the tiny random model: a tiny repetitive repository (as a git
repository for `inhouse corpus build`, and as a hand-built dataset), a deliberately worse copy of a dataset
(every train row's middle swapped for another row's), and a tiny adapter trained in a few seconds.

The repository is one template (tests/finetune/dataset.py `make_file`: two near-identical functions per
file, only a name and a number change), so the tiny model (with `make_tiny_model`'s larger init) learns its
middles in a few dozen steps and generalizes to held-out files: an adapter trained on the real rows beats the
base, one trained on swapped middles is clearly worse than it (tests/finetune/test_gate.py measured both).
Used by tests/finetune/test_gate.py and the flywheel's end-to-end test.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.finetune.dataset import _write, make_file

# Fast and sure on 2 shared CPU cores: FIM rows only (a left-to-right row is the whole true file, which would
# teach what swapped middles hide), loss on the middle only, a learning rate that learns the template in ~40 steps.
TINY_TRAIN: dict[str, Any] = dict(max_steps=40, batch_size=8, seq_len=256, lr=1e-2, loss="middle", eval_every=10,
                                  save_every=10, threads=1, log_every=1, objectives=("psm", "spm"))
LEARNABLE_STD = 0.2  # the tiny model's init std: its tied embeddings long enough for a LoRA to be confident


def make_tiny_model(root: str | Path, seed: int = 0) -> Path:
    """The tiny random model (finetune/models.py, FIM format starcoder) with weights a LoRA can teach in a few
    dozen steps (`init_std` LEARNABLE_STD; at the default 0.02 a LoRA is stuck near 5 nats of loss)."""
    from finetune.models import build_tiny_model

    return build_tiny_model(Path(root), seed=seed, init_std=LEARNABLE_STD)


def repo_files(count: int, start: int = 0, folder: str = "acme") -> dict[str, str]:
    """{path: content} of `count` template files, numbered from `start` (module_SS.py)."""
    return {f"{folder}/module_{i:02d}.py": make_file(i) for i in range(start, start + count)}


WORDS = ("anchor", "basket", "candle", "dagger", "engine", "falcon", "garnet", "hammer", "igloo", "jacket", "kettle",
         "ladder", "magnet", "needle", "oyster", "pepper", "quiver", "ribbon", "saddle", "tablet", "urchin", "velvet",
         "walnut", "zephyr", "bucket", "cobalt", "dinghy", "easel", "funnel", "gravel")


def corpus_file(i: int, entries: int = 10) -> str:
    """A template file with a table of its own (`entries` random keys and numbers) on top: the two functions are
    the template's, but files are no longer near-duplicates (MinHash Jaccard ~0.15 between two, below the
    corpus builder's split threshold 0.5), so `inhouse corpus build` keeps them and splits them by file."""
    rnd = random.Random(1000 + i)
    table = [f'    "{rnd.choice(WORDS)}_{rnd.randint(100, 999)}": {rnd.randint(10, 99)},' for _ in range(entries)]
    head = [f'"""Stock of depot {i}."""', "", "import math", "", f"RATES_{i} = {{", *table, "}"]
    return "\n".join(head) + "\n" + make_file(i).split("import math\n", 1)[1]


def corpus_files(count: int, start: int = 0, folder: str = "acme") -> dict[str, str]:
    """{path: content} of `count` corpus_file files, numbered from `start` (depot_SS.py)."""
    return {f"{folder}/depot_{i:02d}.py": corpus_file(i) for i in range(start, start + count)}


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_files(repo: str | Path, files: Mapping[str, str | None], message: str = "change",
                 date: str = "2026-01-01T12:00:00+00:00") -> str:
    """Write (or delete, for None) `files` in the git repository `repo` and commit them at `date`; the commit id."""
    repo = Path(repo)
    for path, text in files.items():
        target = repo / path
        if text is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message, date=date)
    return _git(repo, "rev-parse", "HEAD")


def make_repo(root: str | Path, files: int = 24, start: int = 0, date: str = "2026-01-01T12:00:00+00:00") -> Path:
    """A git repository at `root` holding `files` corpus_file files (acme/depot_SS.py) in one commit at `date`,
    for `inhouse corpus build` (the plain template files would be one near-duplicate group: no exam); add or
    change files later with `commit_files(root, corpus_files(4, start=40), date=...)`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    commit_files(root, corpus_files(files, start), "initial", date)
    return root


MIN_MIDDLE = 5  # characters: a shorter tail is re-typed from the healed token alone, by any adapter
BODY = ("result = 0", "for item in items:", "result += item.weight * scale", "return math.ceil(result)")


def _cursor_rows(path: str, text: str, fmt, rnd: random.Random, cuts: int, objectives: tuple[str, ...]
                 ) -> list[dict[str, Any]]:
    """FIM rows of one template file: `cuts` cursors in each function-body line, each after a non-space character
    (mid-word, where token healing re-types the cut token as in an editor; the exam's prompt for a prefix ending
    in whitespace ends on a token the training rows never end on), the middle the rest of the line, at least
    MIN_MIDDLE characters."""
    rows = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.strip()
        if body in BODY:
            indent = len(line) - len(line.lstrip())
            spots = [i for i in range(indent + 1, indent + len(body) - MIN_MIDDLE + 1) if not line[i - 1].isspace()]
            for cut in sorted(rnd.sample(spots, min(cuts, len(spots)))):
                prefix, middle = text[:offset + cut], line[cut:].rstrip("\n")
                suffix = text[offset + cut + len(middle):]
                for objective in objectives:
                    prompt = fmt.render_prompt(prefix, suffix, objective)
                    rows.append({"text": prompt + middle + fmt.eot, "objective": objective,
                                 "prompt_chars": len(prompt), "prefix": prefix, "middle": middle, "suffix": suffix,
                                 "kind": "line_tail", "language": "python", "path": path, "repo": "acme",
                                 "fim_format": fmt.name, "has_context": False})
        offset += len(line)
    return rows


def make_tiny_dataset(root: str | Path, train_files: int = 16, dev_files: int = 2, eval_files: int = 3,
                      cuts: int = 3, seed: int = 0) -> Path:
    """A dataset directory (the corpus layout, built by hand: no corpus builder) of the template files: disjoint
    train, dev and eval files; `cuts` cursors inside each function-body line (train rows in PSM and SPM, dev
    and eval rows in PSM as the corpus writes them). eval_files x 2 functions x 4 lines x cuts exam rows."""
    from core import fim

    fmt = fim.get_format("starcoder")
    rnd = random.Random(seed)
    root = Path(root)
    bounds = {"train": (0, train_files), "dev": (train_files, train_files + dev_files),
              "eval": (train_files + dev_files, train_files + dev_files + eval_files)}
    files, counts = [], {}
    for split, (lo, hi) in bounds.items():
        rows = []
        for path, text in repo_files(hi - lo, lo).items():
            files.append({"repo": "acme", "path": path, "language": "python", "split": split, "content": text})
            rows += _cursor_rows(path, text, fmt, rnd, cuts, ("psm", "spm") if split == "train" else ("psm",))
        rnd.shuffle(rows)
        _write(root / split / "part-00000.parquet", rows)
        counts[split] = len(rows)
    _write(root / "files" / "part-00000.parquet", files)
    manifest = {"version": "test", "git_sha": "none", "fim_format": fmt.name, "repos": [{"name": "acme"}],
                "splits": counts, "tokenizer": None, "fixture": "flywheel_fixtures.make_tiny_dataset", "seed": seed}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root


def _rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _write_rows(path: Path, rows: list[dict[str, Any]], schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    tmp.replace(path)


def shuffle_middles(src: str | Path, dst: str | Path, seed: int = 0, drop_l2r: bool = True) -> Path:
    """A copy of dataset `src` at `dst` where every FIM train row's middle is another train row's (a random
    derangement, the text re-rendered around the row's own prompt): a deliberately worse training set. Dev,
    eval and files are kept. Left-to-right rows hold the true files and are dropped (`drop_l2r`). The manifest
    records the derivation, so its hash (the tokenized cache's key) differs from the source's."""
    import pyarrow.parquet as pq

    from core import fim
    from finetune import data as D

    src, dst = Path(src), Path(dst)
    manifest = D.read_manifest(src)
    fmt = fim.get_format(manifest["fim_format"])
    shutil.copytree(src, dst)
    rng = random.Random(seed)
    count = 0
    for shard in D.shard_files(dst, "train"):
        schema = pq.read_schema(shard)
        rows = [r for r in _rows(shard) if not (drop_l2r and r.get("objective") == "l2r")]
        fim_rows = [i for i, r in enumerate(rows) if r.get("objective") != "l2r"]
        rng.shuffle(fim_rows)
        fim_rows.sort(key=lambda i: rows[i]["middle"])  # grouped by middle, shuffled within a group
        half = len(fim_rows) // 2  # each row takes the middle half the sorted list away: never its own kind
        middles = {i: rows[fim_rows[(k + half) % len(fim_rows)]]["middle"] for k, i in enumerate(fim_rows)}
        same = sum(rows[i]["middle"] == m for i, m in middles.items())
        if same:
            raise ValueError(f"{shard}: one middle is more than half the rows; {same} rows would keep theirs")
        for i, middle in middles.items():
            row = rows[i]
            prompt = row["text"][:row["prompt_chars"]]
            assert row["text"] == prompt + row["middle"] + fmt.eot, "a row whose text is not prompt + middle + eot"
            rows[i] = dict(row, middle=middle, text=prompt + middle + fmt.eot)
        _write_rows(shard, rows, schema)
        count += len(rows)
    manifest["splits"] = dict(manifest.get("splits") or {}, train=count)
    manifest["derived"] = {"from": D.manifest_hash(src), "shuffled_middles_seed": seed, "dropped_l2r": drop_l2r}
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return dst


def train_tiny_adapter(base: str | Path, dataset: str | Path, out: str | Path, **overrides: Any) -> Path:
    """An adapter of `base` trained on `dataset` with TINY_TRAIN (overrides win: max_steps, lr, init_adapter=...);
    a few seconds on the tiny model."""
    from finetune.config import TrainConfig
    from finetune.train import train

    init = overrides.pop("init_adapter", None)
    cfg = TrainConfig(**dict(TINY_TRAIN, **overrides))
    return train(base, dataset, out, cfg, progress=False, init_adapter=init,
                 run_metadata={"inhouse_version": "test", "git_sha": "test"})
