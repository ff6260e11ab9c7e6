"""Shard writing: tables built from buffers equal `pyarrow`'s own conversion, shards split by row count."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finetune.corpus import raydata, write
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
    """A shard written alone (`write_shard`, as a Ray worker writes one) has the row groups and bytes of the same
    shard streamed with its whole split (`ShardWriter`, the local build): cut at multiples of BATCH_ROWS and of
    rows_per_shard in the split."""
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


class _Workers:
    """`raydata.RayWorkers` for `RayShards`, without Ray: each write task runs at once on a `MapActor` of this
    process; the first task that continues a shard finds its actor restarted (a new process: no open file)."""

    def __init__(self, count: int) -> None:
        self.actors = [self._actor() for _ in range(count)]
        self.tasks: list[tuple[int, str, tuple]] = []
        self.restarted: tuple | None = None

    @staticmethod
    def _actor() -> raydata.MapActor:
        actor = object.__new__(raydata.MapActor)
        actor.node, actor.token, actor.open = "node", None, {}
        return actor

    def write(self, method: str, *args, actor: int | None = None) -> int:
        i = actor if actor is not None else len(self.tasks) % len(self.actors)
        if method == "write_group" and args[2] and self.restarted is None:
            for writer in self.actors[i].open.values():  # the process died: its files stay as far as written
                writer.close()
            self.actors[i] = self._actor()
            self.restarted = args
        self.tasks.append((i, method, args))
        getattr(self.actors[i], method)(*args)
        return i

    def wait_writes(self) -> None:
        pass


def test_shards_sent_a_row_group_at_a_time_are_the_streamed_bytes_after_an_actor_restart(tmp_path, monkeypatch):
    """`RayShards` sends each row group to the actor writing its shard as soon as the group's rows exist, from
    blocks of any size; an actor restarted in the middle of a shard writes it again from its first row. The
    shards are those `ShardWriter` writes."""
    monkeypatch.setattr(write, "BATCH_ROWS", 3)
    monkeypatch.setattr(raydata, "fetch", lambda parts: raydata.slice_parts([ref for ref, *_ in parts], parts))
    rows = {"train": [_row(i, TEXTS[i % len(TEXTS)]) for i in range(23)], "dev": [_row(i, "x") for i in range(4)],
            "eval": []}
    for name, split_rows in rows.items():
        streamed = ShardWriter(tmp_path / "a" / name, ROW_SCHEMA, rows_per_shard=7)
        streamed.write(split_rows)
        streamed.close()
    workers = _Workers(2)
    shards = raydata.RayShards(workers, tmp_path / "b", rows_per_shard=7)  # type: ignore[arg-type]
    at = {"train": 0, "dev": 0}
    for name, size in [("train", 4), ("dev", 1), ("train", 1), ("train", 6), ("dev", 3), ("train", 5), ("train", 7)]:
        block = rows[name][at[name]:at[name] + size]
        shards.add(name, {name: table(block, ROW_SCHEMA)}, size)
        at[name] += size
    assert shards.close() == ({"train": 23, "dev": 4, "eval": 0}, 0)
    assert workers.restarted is not None and workers.restarted[2], "no task continued a shard on a restarted actor"
    groups = [args for _, method, args in workers.tasks if method == "write_group"]
    assert len(groups) > 4 and all(sum(n for *_, n in args[3]) <= 3 for args in groups)  # a row group a task
    for name in rows:
        a, b = sorted((tmp_path / "a" / name).iterdir()), sorted((tmp_path / "b" / name).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True)), name
