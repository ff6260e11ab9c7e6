"""A small hand-built dataset in the CONTRACTS layout (manifest, train/dev/eval/files Parquet shards).

Written for the finetune tests only, independent of the corpus builder: a made-up repository of regular
Python files (so a tiny model learns something in a few steps), FIM rows of a few span kinds per file, and
left-to-right rows. Train, dev and eval rows come from disjoint files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from core import fim

NAMES = ["apple", "berry", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper", "kelp",
         "lotus", "maple", "nectar", "olive", "pine", "quartz", "raven", "sage", "thyme", "umber", "violet"]


def make_file(i: int) -> str:
    rnd = random.Random(i)
    out = ['"""Helpers for the warehouse."""', "", "import math", ""]
    for j in range(2):
        name = NAMES[(i * 2 + j) % len(NAMES)]
        k = rnd.randint(2, 9)
        out += [
            "",
            f"def total_{name}(items, scale={k}):",
            f'    """Sum the {name} weights, scaled by {k}."""',
            "    result = 0",
            "    for item in items:",
            "        result += item.weight * scale",
            "    return math.ceil(result)",
            "",
        ]
    return "\n".join(out) + "\n"


def _spans(text: str, rnd: random.Random) -> list[tuple[str, str, str, str]]:
    """(kind, prefix, middle, suffix) cuts of one file."""
    lines = text.splitlines(keepends=True)
    spans = []
    starts = [i for i, line in enumerate(lines) if line.startswith("def ")]
    for s in starts:
        # function body: everything after the docstring line up to the blank line after return
        body_start = s + 2
        body_end = next(j for j in range(body_start, len(lines)) if lines[j].strip().startswith("return")) + 1
        pre = "".join(lines[:body_start])
        spans.append(("function_body", pre, "".join(lines[body_start:body_end]), "".join(lines[body_end:])))
        # a statement
        j = body_start + 2
        spans.append(("statement", "".join(lines[:j]), lines[j], "".join(lines[j + 1:])))
        # the expression after `+= `
        line = lines[j]
        cut = line.index("+= ") + 3
        spans.append(("expression", "".join(lines[:j]) + line[:cut], line[cut:].rstrip("\n"),
                      "\n" + "".join(lines[j + 1:])))
        # a random character cut inside the return line
        r = body_end - 1
        c = rnd.randint(5, len(lines[r]) - 2)
        spans.append(("char_random", "".join(lines[:r]) + lines[r][:c], lines[r][c:].rstrip("\n"),
                      "\n" + "".join(lines[r + 1:])))
    return spans


def _rows_for(path: str, text: str, fmt: fim.FimFormat, rnd: random.Random, split: str) -> list[dict]:
    rows = []
    for kind, prefix, middle, suffix in _spans(text, rnd):
        objectives = ["psm"] if split != "train" else ["psm", "spm"]
        for objective in objectives:
            prompt = fmt.render_prompt(prefix, suffix, objective)
            rows.append({"text": prompt + middle + fmt.eot, "objective": objective, "prompt_chars": len(prompt),
                         "prefix": prefix, "middle": middle, "suffix": suffix, "kind": kind, "language": "python",
                         "path": path, "repo": "acme", "fim_format": fmt.name, "has_context": False})
    if split == "train":
        rows.append({"text": fmt.render_l2r(text), "objective": "l2r", "prompt_chars": 0, "prefix": text,
                     "middle": "", "suffix": "", "kind": "l2r", "language": "python", "path": path, "repo": "acme",
                     "fim_format": fmt.name, "has_context": False})
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def make_dataset(root: Path, fim_format: str = "starcoder", train_files: int = 12, dev_files: int = 2,
                 eval_files: int = 3, seed: int = 0) -> Path:
    """Write a dataset directory at `root`; returns it."""
    fmt = fim.get_format(fim_format)
    rnd = random.Random(seed)
    root = Path(root)
    splits = {"train": range(0, train_files), "dev": range(train_files, train_files + dev_files),
              "eval": range(train_files + dev_files, train_files + dev_files + eval_files)}
    files, counts = [], {}
    for split, ids in splits.items():
        rows = []
        for i in ids:
            path = f"acme/module_{i:02d}.py"
            text = make_file(i)
            files.append({"repo": "acme", "path": path, "language": "python", "split": split, "content": text})
            rows += _rows_for(path, text, fmt, rnd, split)
        rnd.shuffle(rows)
        _write(root / split / "part-00000.parquet", rows)
        counts[split] = len(rows)
    _write(root / "files" / "part-00000.parquet", files)
    manifest = {"version": "test", "git_sha": "none", "fim_format": fmt.name, "repos": [{"name": "acme"}],
                "splits": counts, "tokenizer": None}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root
