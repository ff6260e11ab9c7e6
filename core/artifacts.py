"""The `inhouse.json` file that travels with every model and adapter directory, and atomic directory writes.

It names the FIM format (the contract between training and serving), the base model of an adapter, and
the dataset it was trained on. Read by the trainer, the server (reported in /info) and the language server.
Every run also records the version and git sha it was made with (`run_metadata`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core import __version__
from core.errors import ModelError

INFO_FILE = "inhouse.json"


def read_info(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The `inhouse.json` of a model or adapter directory ({} when the directory has none)."""
    path = Path(directory) / INFO_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: must hold a JSON object")
    return data


def git_sha(path: Path | None = None) -> str:
    """The git commit of the inhouse checkout, or "unknown" outside a git checkout."""
    here = path or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def run_metadata() -> dict[str, str]:
    """Version and git sha, written next to every run's outputs."""
    return {"inhouse_version": __version__, "git_sha": git_sha()}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (weights, tokenizers, preference files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON to a temporary name beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, ensure_ascii=False)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_info(directory: str | os.PathLike[str], info: dict[str, Any]) -> None:
    write_json_atomic(Path(directory) / INFO_FILE, info)


def fim_format_of(directory: str | os.PathLike[str], default: str | None = None) -> str | None:
    """The FIM format name a model or adapter directory declares."""
    return read_info(directory).get("fim_format", default)


def scratch_name(parent: Path, prefix: str, suffix: str) -> Path:
    """A fresh name for a temporary directory in `parent`, chosen before the directory exists, so that cleanup
    code that holds the name can remove it whenever the run stops (`tempfile.mkdtemp` names it only once it is
    made)."""
    return Path(parent) / f"{prefix}{uuid.uuid4().hex[:12]}{suffix}"


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `target`, on failure it is removed.

    An interrupted run therefore never leaves something at `target` that looks complete.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise ModelError(f"output {str(target)!r} already exists (use --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch_name(target.parent, f".{target.name}.", ".partial")
    try:  # created inside the try: a Ctrl-C between creating it and entering the block cannot leave it behind
        tmp.mkdir()
        os.chmod(tmp, 0o755)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
