"""Stage 8, write: Parquet shards per split, the files/ table and manifest.json (CONTRACTS.md layout).

Rows arrive in a fixed order (files sorted by repository and path, rows in per-file order), and Parquet is
written with fixed settings, so the same input and seed give byte-identical shards. A shard's row groups are cut
where its split's row count crosses a multiple of `BATCH_ROWS` or of `rows_per_shard`, so a shard depends only on
its rows and where the first of them falls in its split: `write_groups` cuts them, for `ShardWriter` streaming a
split in one process (the local executor) and for the Ray executor's workers each writing a shard of it.
Everything is written under the temporary directory `core.artifacts.atomic_directory` renames into place at the
end.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.artifacts import write_json_atomic
from finetune.corpus import spool

ROW_SCHEMA = pa.schema([
    ("text", pa.string()),
    ("objective", pa.string()),
    ("prompt_chars", pa.int64()),
    ("prefix", pa.string()),
    ("middle", pa.string()),
    ("suffix", pa.string()),
    ("kind", pa.string()),
    ("language", pa.string()),
    ("path", pa.string()),
    ("repo", pa.string()),
    ("fim_format", pa.string()),
    ("has_context", pa.bool_()),
])
FILE_SCHEMA = pa.schema([
    ("repo", pa.string()),
    ("path", pa.string()),
    ("language", pa.string()),
    ("split", pa.string()),
    ("content", pa.string()),
])
BATCH_ROWS = 2048
DICTIONARY_COLUMNS = ("objective", "kind", "language", "path", "repo", "fim_format", "split")
_MAX_STRING_BYTES = 2**31 - 1  # what a `pa.string()` column's 32-bit offsets address
FileEntry = tuple[str, str, str, str, spool.Location]  # a files-table row to be: repo, path, language, split, text


def _column(values: list[Any], type_: pa.DataType) -> pa.Array:
    """An Arrow array of `values` (no None) built from its buffers. `pa.array` would do, but its first call
    imports pandas to look for pandas objects (~0.3 CPU s a build); the arrays are equal, so are the shards."""
    n = len(values)
    if type_ == pa.string():
        encoded = [v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        if offsets[-1] <= _MAX_STRING_BYTES:
            return pa.Array.from_buffers(type_, n, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                    pa.py_buffer(b"".join(encoded))])
    elif type_ == pa.int64():
        return pa.Array.from_buffers(type_, n, [None, pa.py_buffer(np.array(values, dtype=np.int64))])
    elif type_ == pa.bool_():
        bits = np.packbits(np.array(values, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(type_, n, [None, pa.py_buffer(bits)])
    return pa.array(values, type=type_)  # a column too large for 32-bit offsets, or another type


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """`rows` as an Arrow table of `schema` (what a shard holds)."""
    columns = [_column([row[f.name] for row in rows], f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def open_shard(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A shard's Parquet writer, with the settings every shard is written with."""
    return pq.ParquetWriter(path, schema, compression="zstd", compression_level=3, write_statistics=True,
                            use_dictionary=[c for c in DICTIONARY_COLUMNS if c in schema.names])


def write_groups(writer: pq.ParquetWriter, rows: pa.Table, first_row: int) -> None:
    """Append `rows`, the first of them row `first_row` of the split, to an open shard: a row group ends where
    the split's row count crosses a multiple of BATCH_ROWS (the shard itself ends at a multiple of
    rows_per_shard)."""
    at = 0
    while at < rows.num_rows:
        take = min(rows.num_rows - at, BATCH_ROWS - (first_row + at) % BATCH_ROWS)
        writer.write_table(rows.slice(at, take), row_group_size=BATCH_ROWS)
        at += take


def write_shard(path: Path, rows: pa.Table, first_row: int) -> int:
    """`rows` as the shard at `path` whose first row is row `first_row` of its split (a multiple of the build's
    `rows_per_shard`): the bytes `ShardWriter` writes for the same rows. Returns the number of rows."""
    writer = open_shard(path, rows.schema)
    try:
        write_groups(writer, rows, first_row)
    finally:
        writer.close()
    return rows.num_rows


def write_empty(directory: Path, schema: pa.Schema) -> None:
    """The one shard of a split without rows: readable, with the schema."""
    pq.write_table(table([], schema), Path(directory) / shard_name(0), compression="zstd")


def file_rows(entries: list[FileEntry], spool_dir: str) -> list[dict[str, Any]]:
    """Rows of the files table for (repo, path, language, split, spool location) entries, the redacted text
    read from the spool."""
    reader = spool.Reader(spool_dir, None, size=0)
    try:
        return [{"repo": repo, "path": path, "language": language, "split": split_, "content": reader.read(loc)[0]}
                for repo, path, language, split_, loc in entries]
    finally:
        reader.close()


class ShardWriter:
    """Streams rows into DIR/part-00000.parquet, part-00001.parquet... of at most `rows_per_shard` rows."""

    def __init__(self, directory: Path, schema: pa.Schema, rows_per_shard: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.rows_per_shard = rows_per_shard
        self.shard = 0
        self.in_shard = 0
        self.total = 0
        self.buffer: list[dict[str, Any]] = []
        self.writer: pq.ParquetWriter | None = None

    def _open(self) -> pq.ParquetWriter:
        return open_shard(self.directory / shard_name(self.shard), self.schema)

    def _flush(self) -> None:
        rows = self.buffer
        self.buffer = []
        while rows:
            if self.writer is None:
                self.writer = self._open()
            room = self.rows_per_shard - self.in_shard
            take, rows = rows[:room], rows[room:]
            write_groups(self.writer, table(take, self.schema), self.shard * self.rows_per_shard + self.in_shard)
            self.in_shard += len(take)
            if self.in_shard >= self.rows_per_shard:
                self.writer.close()
                self.writer = None
                self.shard += 1
                self.in_shard = 0

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.buffer.append(row)
            self.total += 1
            if len(self.buffer) >= BATCH_ROWS:
                self._flush()

    def close(self) -> int:
        self._flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        elif self.total == 0:  # an empty split still gets a readable shard with the schema
            write_empty(self.directory, self.schema)
        return self.total


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(Path(directory) / "manifest.json", manifest)
