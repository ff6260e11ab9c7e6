"""Shard writing: tables built from buffers equal `pyarrow`'s own conversion, shards split by row count."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finetune.corpus import write
from finetune.corpus.write import FILE_SCHEMA, ROW_SCHEMA, ShardWriter, table, write_shard

TEXTS = ["", "ä", "a\u0308", "錯誤", "😋", "x = 1\r\ny = 2\r\n", "def f():\n    return 'é'\n"]


def _row(i: int, text: str) -> dict:
    return {"text": text, "objective": "psm", "prompt_chars": i * 7 - 3, "prefix": text[:1], "middle": text,
            "suffix": "", "kind": "line_end", "language": "python", "path": f"p{i}.py", "repo": "r",
            "fim_format": "starcoder", "has_context": i % 3 == 0}


def test_table_from_buffers_equals_from_pylist():
    rows = [_row(i, t) for i, t in enumerate(TEXTS * 3)]
    assert table(rows, ROW_SCHEMA).equals(pa.Table.from_pylist(rows, schema=ROW_SCHEMA))
    files = [{"repo": "r", "path": f"{t}.py", "language": "python", "split": "train", "content": t} for t in TEXTS]
    assert table(files, FILE_SCHEMA).equals(pa.Table.from_pylist(files, schema=FILE_SCHEMA))
    assert table([], ROW_SCHEMA).equals(ROW_SCHEMA.empty_table())


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


@pytest.mark.parametrize("rows_per_shard", [10, 7, 4])
def test_a_shard_written_alone_is_the_streamed_shards_bytes(tmp_path, monkeypatch, rows_per_shard):
    """`write_shard` (a Ray worker writing one shard) cuts the row groups where `ShardWriter` (the local build,
    streaming the whole split) does: at multiples of BATCH_ROWS and of rows_per_shard in the split."""
    monkeypatch.setattr(write, "BATCH_ROWS", 3)
    rows = [_row(i, TEXTS[i % len(TEXTS)]) for i in range(23)]
    streamed = ShardWriter(tmp_path / "a", ROW_SCHEMA, rows_per_shard)
    streamed.write(rows[:5])
    streamed.write(rows[5:])
    streamed.close()
    (tmp_path / "b").mkdir()
    for shard, first in enumerate(range(0, len(rows), rows_per_shard)):
        whole = table(rows[first:first + rows_per_shard], ROW_SCHEMA)
        write_shard(tmp_path / "b" / f"part-{shard:05d}.parquet", whole, first)
    a, b = sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())
    assert [p.name for p in a] == [p.name for p in b] and len(a) == -(-23 // rows_per_shard)
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    for shard, path in enumerate(a):  # a row group ends at each multiple of 3 or of rows_per_shard in the split
        first, n = shard * rows_per_shard, min(rows_per_shard, 23 - shard * rows_per_shard)
        cuts = sorted({first, first + n, *(m for m in range(first + 1, first + n) if m % 3 == 0)})
        meta = pq.ParquetFile(path).metadata
        assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [
            y - x for x, y in zip(cuts, cuts[1:], strict=False)]
