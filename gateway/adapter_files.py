"""An adapter's files: their content hash, and placing them in the model servers' adapters directory atomically.

The copy goes into a hidden temporary directory inside the adapters directory (`.ID.XXXX.partial`: the model
server lists only names matching its id pattern, which starts with a letter or digit), every file and the
directory are fsynced, and one rename gives it its id. So the servers see the adapter whole or not at all; a
crash leaves at worst a hidden directory, which the next placement of that id removes. Used by
`gateway.registry.Registry.register`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from core.errors import ValidationError

CONFIG = "adapter_config.json"  # what makes a directory an adapter for the model servers


def files_of(directory: Path) -> list[Path]:
    """The adapter's files: the directory's top-level regular files (checkpoints and other subdirectories of a
    training run stay behind), sorted by name."""
    return sorted((p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def content_sha256(directory: Path) -> str:
    """sha256 over (name, sha256 of the bytes) of each file of `files_of`: the same files give the same hash."""
    outer = hashlib.sha256()
    for path in files_of(directory):
        inner = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                inner.update(block)
        outer.update(path.name.encode() + b"\0" + inner.digest())
    return outer.hexdigest()


def check_adapter_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise ValidationError(f"`--adapter` must be an adapter directory, got {str(directory)!r} (not a directory)")
    if not (directory / CONFIG).is_file():
        raise ValidationError(f"`--adapter` {str(directory)!r} holds no {CONFIG}: not a peft adapter directory")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_file(src: Path, dst: Path) -> None:
    """Copy one file and fsync it (a separate function so a test can kill the process in the middle of a copy)."""
    with src.open("rb") as fin, dst.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copymode(src, dst)


def leftovers(serve_dir: Path, adapter_id: str) -> list[Path]:
    """Hidden temporary directories an interrupted placement of `adapter_id` left behind."""
    return sorted(serve_dir.glob(f".{adapter_id}.*.partial"))


def place(source: Path, serve_dir: Path, adapter_id: str, sha256: str) -> Path:
    """`serve_dir/adapter_id` holding the files of `source` (whose content hash is `sha256`), made atomically.

    Already there with the same content (a run interrupted after the rename): reused. There with other
    content: a ValidationError, nothing is touched."""
    if not serve_dir.is_dir():
        raise ValidationError(f"`--serve-dir` must be the model servers' adapters directory, got {str(serve_dir)!r} "
                              "(not a directory)")
    for old in leftovers(serve_dir, adapter_id):
        shutil.rmtree(old, ignore_errors=True)
    target = serve_dir / adapter_id
    if target.exists():
        if target.is_dir() and content_sha256(target) == sha256:
            return target
        raise ValidationError(f"{str(target)!r} already exists with other content; it is no version of the registry "
                              f"(sha256 {sha256[:12]}): move it away and register again")
    tmp = serve_dir / f".{adapter_id}.{secrets.token_hex(4)}.partial"
    try:
        tmp.mkdir()
        for path in files_of(source):
            copy_file(path, tmp / path.name)
        _fsync_dir(tmp)
        if content_sha256(tmp) != sha256:
            raise ValidationError(f"the adapter files in {str(source)!r} changed while they were copied; "
                                  "register again")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(serve_dir)
    return target
