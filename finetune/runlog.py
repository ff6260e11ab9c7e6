"""The run's log: `metrics.jsonl` (appended and flushed per record, cut back on resume), the progress bar, and
the name of the training config an adapter directory carries (`read_train_config` reads it, old name included).

Called by finetune/train.py on the main process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# The resolved training config, version and git sha written beside an adapter. Not `config.json`: that name marks
# a model directory to every Hugging Face tool; adapters made before the rename carry it under that name.
TRAIN_CONFIG_FILE = "inhouse_train_config.json"
LEGACY_TRAIN_CONFIG_FILE = "config.json"


def read_train_config(adapter_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The training config an adapter directory carries ({} when it has none), under its name or the old one."""
    adapter_dir = Path(adapter_dir)
    for name in (TRAIN_CONFIG_FILE, LEGACY_TRAIN_CONFIG_FILE):
        path = adapter_dir / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "train" in data:  # an old `config.json` could also be a model's config
            return data
    return {}


def truncate(path: Path, step: int) -> None:
    """Drop records written after the checkpoint we resume from (they will be written again)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if rec.get("step", 0) <= step and rec.get("event") != "end":
            keep.append(line)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
    os.replace(tmp, path)


class MetricsLog:
    """Append-only JSON lines, flushed at once so a killed run keeps what it logged."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")


def progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stderr, unit="step", dynamic_ncols=True,
                desc="train")
