"""The Ray executor of `pipeline.build` (`--executor ray`): the two per-file passes (`worker.prepare`,
`worker.examples`) run on a cluster as blocks of files on map actors (one per CPU, blocks queued to each), results
in input order; repositories given by URL are cloned and discovered on those actors too (`survey`). The examples
pass's rows stay on the cluster (an Arrow table a block and split, in Ray's object store): the driver gets each
file's row count, and as a split's rows fill a row group it sends the group to the actor writing that shard
(`RayShards`); the files table's shards go to the actors when the pass starts. The reduce step (exact and near
dedup with datasketch's LSH, the split) stays on the driver, and a shard's bytes depend only on its rows and where
they start in the split (`write.write_groups`), so a build on Ray gives the same bytes as a local one
(docs/corpus.md, "Running on a Ray cluster").

Every node must see the repositories given by path, the model's tokenizer and the output's parent directory
(where the spool of redacted texts lives between the passes) at the same paths: a shared filesystem.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import sys
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, CorpusError
from core.usage import no_usage_reports
from finetune.corpus import clone, split, worker, write
from finetune.corpus.repos import RepoSpec

log = logging.getLogger(__name__)

# Files per block at most: a block is one call on a map actor, and its pickled results (a file's rows) sit in
# the object store until the driver has written them; small blocks keep that bounded and the actors evenly fed.
MAX_BLOCK_FILES = 64
BLOCKS_PER_CPU = 8  # on small inputs, enough blocks that no actor waits long for the last one to end
TASKS_QUEUED = 2  # blocks sent ahead to each map actor: it starts the next as soon as one ends
RESULTS_HELD = 8  # blocks a CPU whose results may wait in the object store behind a slower earlier block
ACTOR_START_TIMEOUT_S = 600  # the build fails when its map actors are not all up by then (too few CPUs free)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A Ray address host:port must accept a TCP connection: `ray.init` would retry an unreachable GCS for
    minutes, logging warnings, instead of failing."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"`ray_address` must be HOST:PORT of a Ray head (its GCS port, 6379 by default) or "
                          f"'auto', got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"`ray_address` {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                          f"start one with `ray start --head` or fix --ray-address") from exc


@contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Connected to the cluster at `address` (None: $RAY_ADDRESS, else a Ray started on this host for the
    build), disconnected at the end unless the caller had connected already."""
    if address and address != "auto":
        _check_reachable(address)
        if address.rpartition(":")[0] in ("127.0.0.1", "localhost") and "ray" not in sys.modules:
            # Ray reads this once, at import: without it, 127.0.0.1 is replaced by the host's own address,
            # where a loopback-only cluster (`raylocal`) does not listen.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        yield
        return
    no_usage_reports()  # a Ray started here for the build reports nothing to its vendor
    try:
        # One tokenizer thread a task: Ray's workers are the parallelism. Ray does not carry the driver's
        # environment to its workers, hence runtime_env.
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True,
                 runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    except ConnectionError as exc:
        raise ConfigError(f"`ray_address` {address}: cannot join the Ray cluster: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


class _Box:
    """Holds an object reference without Ray resolving it when the box is passed to a task (a bare reference
    in the arguments would be fetched and unpickled for every task; the state is fetched once a process)."""

    def __init__(self, ref: Any, token: str) -> None:
        self.ref, self.token = ref, token


@dataclass(frozen=True)
class TaskSpan:
    """One map task as it ran: its node, process, wall-clock start and end (`time.time()` on that node) and
    how many files it held. The build's manifest summarises them (`summarize`)."""

    node: str
    pid: int
    start: float
    end: float
    files: int


def summarize(spans: list[TaskSpan]) -> dict[str, Any]:
    """Tasks, nodes and processes used, and how many tasks ran at once: the most at any instant (`peak`), on
    average from the first start to the last end (`mean`), and the share of the time some task ran during which
    two or more did (`overlap`: 0 when the nodes took turns)."""
    if not spans:
        return {"tasks": 0, "nodes": 0, "processes": 0, "peak_concurrent": 0, "mean_concurrent": 0.0, "overlap": 0.0}
    events = sorted([(s.start, 1) for s in spans] + [(s.end, -1) for s in spans])  # an end sorts before a start
    running = peak = 0
    busy = both = 0.0
    last = events[0][0]
    for at, step in events:
        busy += (at - last) if running >= 1 else 0.0
        both += (at - last) if running >= 2 else 0.0
        running += step
        peak = max(peak, running)
        last = at
    wall = max(s.end for s in spans) - min(s.start for s in spans)
    work = sum(s.end - s.start for s in spans)
    return {"tasks": len(spans), "nodes": len({s.node for s in spans}),
            "processes": len({(s.node, s.pid) for s in spans}), "peak_concurrent": peak,
            "mean_concurrent": round(work / wall, 3) if wall > 0 else 1.0,
            "overlap": round(both / busy, 3) if busy > 0 else 0.0}


Part = tuple[Any, str, int, int]  # rows of a block: (its tables' object reference, split, first row, rows)


def fetch(parts: list[Part]) -> Any:
    """The rows `parts` name, as one Arrow table (contiguous: written as `write.table` builds them)."""
    import ray

    return slice_parts(ray.get([ref for ref, *_ in parts]), parts)


def slice_parts(tables: list[dict[str, Any]], parts: list[Part]) -> Any:
    """`fetch` once each part's tables are here."""
    import pyarrow as pa

    if not parts:
        return write.ROW_SCHEMA.empty_table()
    return pa.concat_tables([t[name].slice(at, n) for t, (_, name, at, n) in zip(tables, parts, strict=True)]
                            ).combine_chunks()


class MapActor:
    """A map worker holding one CPU of a node for as long as the driver stays connected: it installs a pass's
    worker state on its first block of the pass (a restarted actor, on its next block) and keeps its caches
    (word counts, compiled regexes, the parser) between passes and builds."""

    def __init__(self) -> None:
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.token: str | None = None
        self.open: dict[str, Any] = {}  # path -> Parquet writer of a shard this actor is writing

    def ready(self) -> str:
        return self.node

    def survey(self, repo: RepoSpec, clone_dir: str | None, since: int | None) -> clone.Survey | str:
        """`clone.survey` here; a clone that fails comes back as its message (one line for the driver)."""
        try:
            return clone.survey(repo, clone_dir, since)
        except CorpusError as exc:
            return str(exc)

    def _install(self, box: _Box) -> None:
        import ray

        if self.token != box.token:
            worker.init(ray.get(box.ref))
            self.token = box.token

    def _span(self, start: float, items: int) -> TaskSpan:
        return TaskSpan(self.node, os.getpid(), start, time.time(), items)

    def run(self, fn: Callable[[Any], Any], box: _Box, jobs: list[bytes]) -> tuple[list[bytes], TaskSpan]:
        """Pickled inputs in, pickled `fn(input)` out, with the block's `TaskSpan`."""
        start = time.time()
        self._install(box)
        out = [pickle.dumps(fn(pickle.loads(blob)), protocol=pickle.HIGHEST_PROTOCOL) for blob in jobs]
        return out, self._span(start, len(out))

    def rows(self, box: _Box, jobs: list[bytes]) -> tuple[tuple[list[tuple[int, dict[str, int]]], TaskSpan],
                                                          dict[str, Any]]:
        """`worker.examples` on a block of `ExampleJob`s, two results: each file's (row count, counts) with the
        block's `TaskSpan`, for the driver; and the rows, a table a split, left in the object store for
        `write_group`."""
        start = time.time()
        self._install(box)
        files = []
        by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for blob in jobs:
            job: worker.ExampleJob = pickle.loads(blob)
            rows, counts = worker.examples(job)
            by_split[job.split].extend(rows)
            files.append((len(rows), counts))
        tables = {name: write.table(rows, write.ROW_SCHEMA) for name, rows in by_split.items()}
        return (files, self._span(start, len(files))), tables

    def write_group(self, path: str, first_row: int, earlier: list[Part], parts: list[Part],
                    closes: bool) -> TaskSpan:
        """Append the rows `parts` name, the first of them row `first_row` of their split, to the shard at
        `path` this actor holds open (opened when `earlier` is empty: the shard's first rows), and close it after
        them if `closes`. `earlier` names the shard's rows sent before: an actor that Ray restarted since has no
        open file (this task runs again on the new process) and writes the shard again from its first row."""
        start = time.time()
        writer = self.open.get(path)
        if writer is None or not earlier:
            if writer is not None:  # a build that failed left it open
                writer.close()
            writer = self.open[path] = write.open_shard(Path(path), write.ROW_SCHEMA)
            first_row -= sum(n for *_, n in earlier)
            parts = [*earlier, *parts]
        rows = fetch(parts)
        write.write_groups(writer, rows, first_row)
        if closes:
            writer.close()
            del self.open[path]
        return self._span(start, rows.num_rows)

    def write_files(self, path: str, first_row: int, entries: list[write.FileEntry],
                    spool_dir: str) -> TaskSpan:
        """One shard of the files table at `path`, its texts read from the spool."""
        start = time.time()
        rows = write.table(write.file_rows(entries, spool_dir), write.FILE_SCHEMA)
        write.write_shard(Path(path), rows, first_row)
        return self._span(start, len(entries))


_ACTORS: tuple[str, list[Any]] | None = None  # (cluster and job, its map actors): kept while the driver is connected


def _actors(cpus: int) -> list[Any]:
    """`cpus` `MapActor`s (one per CPU of the cluster the build uses), started (and waited for) once per
    connection: a later build that uses fewer takes the first ones, one that uses more starts the rest.
    Restarted by Ray when its process dies, the block it held sent again."""
    global _ACTORS
    import ray

    context = ray.get_runtime_context()
    job = f"{context.gcs_address}/{context.get_job_id()}"  # job ids restart at 1 on every new cluster
    actors: list[Any] = _ACTORS[1] if _ACTORS is not None and _ACTORS[0] == job else []
    if len(actors) >= cpus:
        return actors[:cpus]
    cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(MapActor)
    new: list[Any] = [cls.remote() for _ in range(cpus - len(actors))]
    try:
        ray.get([actor.ready.remote() for actor in new], timeout=ACTOR_START_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError as exc:
        raise CorpusError(f"the Ray cluster did not start {cpus} map actors (one per CPU it reports, or "
                          f"--ray-workers) in {ACTOR_START_TIMEOUT_S} s") from exc
    _ACTORS = (job, actors + new)
    return _ACTORS[1]


def survey(repos: list[RepoSpec], clone_dir: str | None, since: int | None) -> list[clone.Survey]:
    """`clone.survey` of each repository given by URL on the map actors, spread over them (so the clones are
    made on the workers, in parallel); raises the first failure as a CorpusError naming repository and URL."""
    import ray

    cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
    actors = _actors(cpus)
    refs = [actors[i % len(actors)].survey.remote(repo, clone_dir, since) for i, repo in enumerate(repos)]
    surveys = []
    for result in ray.get(refs):
        if isinstance(result, str):
            raise CorpusError(result)
        surveys.append(result)
    return surveys


class RayWorkers:
    """`pipeline._Workers` on a Ray cluster: an ordered `map` over blocks of files on the map actors, `install`
    (each actor takes the new state with its next block), and `shards` (the examples pass and the shards
    written on the actors)."""

    def __init__(self, state: worker.WorkerState, limit: int = 0) -> None:
        import ray

        self.cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        if limit:  # --ray-workers: at most that many of the cluster's CPUs
            self.cpus = min(self.cpus, limit)
        self.actors = _actors(self.cpus)
        self.spans: dict[str, list[TaskSpan]] = {}  # pass (the mapped function's name) -> its map tasks
        self.writes: list[tuple[Any, int]] = []  # (write task's reference, actor index), not yet seen finished
        self.install(state)

    def install(self, state: worker.WorkerState) -> None:
        import ray

        self.box = _Box(ray.put(state), uuid.uuid4().hex)

    def blocks(self, items: Iterable[Any]) -> list[list[bytes]]:
        jobs = [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]
        blocks = min(len(jobs), max(self.cpus * BLOCKS_PER_CPU, math.ceil(len(jobs) / MAX_BLOCK_FILES)))
        size = math.ceil(len(jobs) / blocks) if jobs else 1
        return [jobs[i:i + size] for i in range(0, len(jobs), size)]

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        spans = self.spans.setdefault(fn.__name__, [])
        for (out, span), _ in self.ordered(lambda actor, chunk: (actor.run.remote(fn, self.box, chunk), None),
                                            self.blocks(items)):
            spans.append(span)
            yield from (pickle.loads(blob) for blob in out)

    def shards(self, out: Path, rows_per_shard: int) -> RayShards:
        return RayShards(self, out, rows_per_shard)

    def _load(self, pending: Iterable[tuple[Any, int]]) -> tuple[list[int], list[int], set[Any]]:
        """Unfinished tasks per actor (the blocks `pending` and the writes), unfinished blocks per actor, and the
        finished ones of `pending`."""
        import ray

        pending = list(pending)
        refs = [ref for ref, _ in pending] + [ref for ref, _ in self.writes]
        done = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
        finished = [ref for ref, _ in self.writes if ref in done]
        if finished:  # a write that failed raises here, not only at the end
            self.spans.setdefault("shards", []).extend(ray.get(finished))
            self.writes = [(ref, i) for ref, i in self.writes if ref not in done]
        blocks = [0] * len(self.actors)
        for ref, i in pending:
            blocks[i] += ref not in done
        load = list(blocks)
        for _, i in self.writes:  # all unfinished: the finished ones were dropped above
            load[i] += 1
        return load, blocks, done

    def ordered(self, submit: Callable[[Any, list[bytes]], tuple[Any, Any]],
                 chunks: list[list[bytes]]) -> Iterator[tuple[Any, Any]]:
        """Each block to the actor with the fewest tasks unfinished, up to `TASKS_QUEUED` blocks each, so an
        actor starts its next block the moment one ends; each block's result (`submit`'s first reference,
        fetched) and `submit`'s second value yielded in input order as they complete. A slow block at the
        head holds back only the yielding, not the actors, up to `RESULTS_HELD` blocks a CPU."""
        import ray

        pending: deque[tuple[Any, int, Any]] = deque()  # (result reference, actor index, kept), in input order
        held = len(self.actors) * RESULTS_HELD
        for chunk in chunks:
            while True:
                load, blocks, done = self._load((ref, i) for ref, i, _ in pending)
                while pending and pending[0][0] in done:
                    ref, _, kept = pending.popleft()
                    yield ray.get(ref), kept
                if len(pending) < held and min(blocks) < TASKS_QUEUED:
                    break
                if len(pending) >= held:
                    ref, _, kept = pending.popleft()
                    yield ray.get(ref), kept
                else:  # every actor has its queue full: wait until one finishes a block
                    ray.wait([ref for ref, _, _ in pending if ref not in done], num_returns=1)
            i = min((i for i in range(len(self.actors)) if blocks[i] < TASKS_QUEUED), key=load.__getitem__)
            ref, kept = submit(self.actors[i], chunk)
            pending.append((ref, i, kept))
        while pending:
            ref, _, kept = pending.popleft()
            yield ray.get(ref), kept

    def write(self, method: str, *args: Any, actor: int | None = None) -> int:
        """A write task (`MapActor.<method>(*args)`) to `actor`, else to the actor with the fewest tasks
        unfinished; returns the actor's index."""
        if actor is None:
            load, _, _ = self._load(())
            actor = min(range(len(self.actors)), key=load.__getitem__)
        self.writes.append((getattr(self.actors[actor], method).remote(*args), actor))
        return actor

    def wait_writes(self) -> None:
        """Every write task finished (a failed one raises), their spans kept."""
        import ray

        self.spans.setdefault("shards", []).extend(ray.get([ref for ref, _ in self.writes]))
        self.writes = []


@dataclass
class _Split:
    """A split's rows on the cluster: how many so far and how many sent to write tasks, the rest (`pending`)
    waiting for a row group to fill, the parts of the shard being written (`shard`) and its actor."""

    directory: Path
    rows: int = 0
    sent: int = 0
    pending: deque[Part] = field(default_factory=deque)
    shard: list[Part] = field(default_factory=list)
    actor: int = 0


class RayShards:
    """The examples pass and the dataset's shards on the map actors (`pipeline` calls `files`, iterates
    `examples`, then `close`). A shard is written by one actor, a row group at a time as soon as the group's
    rows exist (`MapActor.write_group`), so the driver unpickles row counts, not rows, writes nothing but the
    manifest, and when the pass ends only each split's last row group is left to write."""

    def __init__(self, workers: RayWorkers, out: Path, rows_per_shard: int) -> None:
        self.workers, self.out, self.rows_per_shard = workers, Path(out), rows_per_shard
        self.splits = {name: _Split(self.out / name) for name in split.SPLITS}
        for name in [*self.splits, "files"]:
            (self.out / name).mkdir(parents=True, exist_ok=True)
        self.files_count = 0

    def files(self, entries: list[write.FileEntry], spool_dir: str) -> None:
        """The files table, a write task a shard, sent now: the actors take them between examples blocks."""
        self.files_count = len(entries)
        directory = self.out / "files"
        if not entries:
            write.write_empty(directory, write.FILE_SCHEMA)
        for first in range(0, len(entries), self.rows_per_shard):
            path = str(directory / write.shard_name(first // self.rows_per_shard))
            self.workers.write("write_files", path, first, entries[first:first + self.rows_per_shard], spool_dir)

    def examples(self, jobs: list[worker.ExampleJob]) -> Iterator[tuple[int, dict[str, int]]]:
        """Each job's (row count, counts), in order; its rows go to a shard's write task."""
        at = 0

        def submit(actor: Any, chunk: list[bytes]) -> tuple[Any, Any]:  # (files' counts and span, rows)
            return tuple(actor.rows.options(num_returns=2).remote(self.workers.box, chunk))

        spans = self.workers.spans.setdefault(worker.examples.__name__, [])
        for (files, span), tables in self.workers.ordered(submit, self.workers.blocks(jobs)):
            spans.append(span)
            added: dict[str, int] = defaultdict(int)
            for job, (n, counts) in zip(jobs[at:at + len(files)], files, strict=True):
                added[job.split] += n
                yield n, counts
            at += len(files)
            for name, n in added.items():
                if n:
                    self.add(name, tables, n)
        assert at == len(jobs)

    def add(self, name: str, tables: Any, n: int) -> None:
        """`n` more rows of split `name`, in the block whose tables are `tables`."""
        s = self.splits[name]
        s.pending.append((tables, name, 0, n))
        s.rows += n
        self._send(s, final=False)

    def _send(self, s: _Split, final: bool) -> None:
        """Each row group of split `s` whose rows all exist (`final`: the rest too, and the last shard closed)
        to the actor writing its shard."""
        per_shard, per_group = self.rows_per_shard, write.BATCH_ROWS
        while s.sent < s.rows or (final and s.shard):
            end = min((s.sent // per_group + 1) * per_group, (s.sent // per_shard + 1) * per_shard)
            if end > s.rows:
                if not final:
                    return
                end = s.rows
            group: list[Part] = []
            need = end - s.sent
            while need:
                ref, name, at, size = s.pending.popleft()
                take = min(size, need)
                group.append((ref, name, at, take))
                if take < size:
                    s.pending.appendleft((ref, name, at + take, size - take))
                need -= take
            closes = end % per_shard == 0 or (final and end == s.rows)
            path = str(s.directory / write.shard_name(s.sent // per_shard))
            s.actor = self.workers.write("write_group", path, s.sent, list(s.shard), group, closes,
                                         actor=s.actor if s.shard else None)
            s.shard = [] if closes else [*s.shard, *group]
            s.sent = end

    def close(self) -> tuple[dict[str, int], int]:
        """The last row groups written and each split's last shard closed, every write task waited for:
        (rows per split, files)."""
        for s in self.splits.values():
            if s.rows:
                self._send(s, final=True)
            else:
                write.write_empty(s.directory, write.ROW_SCHEMA)
        self.workers.wait_writes()
        return {name: s.rows for name, s in self.splits.items()}, self.files_count


@contextmanager
def workers(address: str | None, state: worker.WorkerState, limit: int = 0) -> Iterator[RayWorkers]:
    """Ray workers for one build, connected: a map actor per CPU of the cluster, at most `limit` (0: no limit)."""
    with connected(address):  # first: it may set what Ray reads at import
        yield RayWorkers(state, limit)
