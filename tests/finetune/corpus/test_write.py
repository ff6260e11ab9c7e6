"""Shard writing: tables built from buffers equal `pyarrow`'s own conversion, shards split by row count."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from finetune.corpus.write import FILE_SCHEMA, ROW_SCHEMA, ShardWriter, _table

TEXTS = ["", "ä", "a\u0308", "錯誤", "😋", "x = 1\r\ny = 2\r\n", "def f():\n    return 'é'\n"]


def _row(i: int, text: str) -> dict:
    return {"text": text, "objective": "psm", "prompt_chars": i * 7 - 3, "prefix": text[:1], "middle": text,
            "suffix": "", "kind": "line_end", "language": "python", "path": f"p{i}.py", "repo": "r",
            "fim_format": "starcoder", "has_context": i % 3 == 0}


def test_table_from_buffers_equals_from_pylist():
    rows = [_row(i, t) for i, t in enumerate(TEXTS * 3)]
    assert _table(rows, ROW_SCHEMA).equals(pa.Table.from_pylist(rows, schema=ROW_SCHEMA))
    files = [{"repo": "r", "path": f"{t}.py", "language": "python", "split": "train", "content": t} for t in TEXTS]
    assert _table(files, FILE_SCHEMA).equals(pa.Table.from_pylist(files, schema=FILE_SCHEMA))
    assert _table([], ROW_SCHEMA).equals(ROW_SCHEMA.empty_table())


def test_shard_writer_splits_by_rows_and_reads_back(tmp_path):
    rows = [_row(i, TEXTS[i % len(TEXTS)]) for i in range(25)]
    writer = ShardWriter(tmp_path / "train", ROW_SCHEMA, rows_per_shard=10)
    writer.write(rows)
    assert writer.close() == 25
    shards = sorted((tmp_path / "train").glob("*.parquet"))
    assert [pq.read_metadata(p).num_rows for p in shards] == [10, 10, 5]
    assert pa.concat_tables(pq.read_table(p) for p in shards).to_pylist() == rows
    empty = ShardWriter(tmp_path / "dev", ROW_SCHEMA, rows_per_shard=10)
    assert empty.close() == 0 and pq.read_table(tmp_path / "dev" / "part-00000.parquet").num_rows == 0
