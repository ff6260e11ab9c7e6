"""The Ray executor of `pipeline.build` (`--executor ray`): the two per-file passes (`worker.prepare`,
`worker.examples`) run on a cluster as blocks of files on map actors (one per CPU, blocks queued to each), results
in input order; repositories given by URL are cloned and discovered on those actors too (`survey`); the reduce
step (exact and near dedup with datasketch's LSH, the split) and the shards stay on the driver, so a build on Ray
gives the same bytes as a local one (docs/corpus.md, "Running on a Ray cluster").

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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError, CorpusError
from finetune.corpus import clone, worker
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


class MapActor:
    """A map worker holding one CPU of a node for as long as the driver stays connected: it installs a pass's
    worker state on its first block of the pass (a restarted actor, on its next block) and keeps its caches
    (word counts, compiled regexes, the parser) between passes and builds."""

    def __init__(self) -> None:
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.token: str | None = None

    def ready(self) -> str:
        return self.node

    def survey(self, repo: RepoSpec, clone_dir: str | None, since: int | None) -> clone.Survey | str:
        """`clone.survey` here; a clone that fails comes back as its message (one line for the driver)."""
        try:
            return clone.survey(repo, clone_dir, since)
        except CorpusError as exc:
            return str(exc)

    def run(self, fn: Callable[[Any], Any], box: _Box, jobs: list[bytes]) -> tuple[list[bytes], TaskSpan]:
        """Pickled inputs in, pickled `fn(input)` out, with the block's `TaskSpan`."""
        import ray

        start = time.time()
        if self.token != box.token:
            worker.init(ray.get(box.ref))
            self.token = box.token
        out = [pickle.dumps(fn(pickle.loads(blob)), protocol=pickle.HIGHEST_PROTOCOL) for blob in jobs]
        return out, TaskSpan(self.node, os.getpid(), start, time.time(), len(out))


_ACTORS: tuple[str, list[Any]] | None = None  # (cluster and job, its map actors): kept while the driver is connected


def _actors(cpus: int) -> list[Any]:
    """One `MapActor` per CPU of the cluster, started (and waited for) once per connection. Restarted by Ray
    when its process dies, the block it held sent again."""
    global _ACTORS
    import ray

    context = ray.get_runtime_context()
    job = f"{context.gcs_address}/{context.get_job_id()}"  # job ids restart at 1 on every new cluster
    if _ACTORS is not None and _ACTORS[0] == job and len(_ACTORS[1]) == cpus:
        return _ACTORS[1]
    cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(MapActor)
    actors: list[Any] = [cls.remote() for _ in range(cpus)]
    try:
        ray.get([actor.ready.remote() for actor in actors], timeout=ACTOR_START_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError as exc:
        raise CorpusError(f"the Ray cluster did not start {cpus} map actors (one per CPU it reports) in "
                          f"{ACTOR_START_TIMEOUT_S} s") from exc
    _ACTORS = (job, actors)
    return actors


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
    """`pipeline._Workers` on a Ray cluster: an ordered `map` over blocks of files on the map actors, and
    `install` (each actor takes the new state with its next block)."""

    def __init__(self, state: worker.WorkerState) -> None:
        import ray

        self.cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        self.actors = _actors(self.cpus)
        self.spans: dict[str, list[TaskSpan]] = {}  # pass (the mapped function's name) -> its map tasks
        self.install(state)

    def install(self, state: worker.WorkerState) -> None:
        import ray

        self.box = _Box(ray.put(state), uuid.uuid4().hex)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        jobs = [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]
        blocks = min(len(jobs), max(self.cpus * BLOCKS_PER_CPU, math.ceil(len(jobs) / MAX_BLOCK_FILES)))
        size = math.ceil(len(jobs) / blocks) if jobs else 1
        chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        return self._ordered(fn, chunks, self.spans.setdefault(fn.__name__, []))

    def _ordered(self, fn: Callable[[Any], Any], chunks: list[list[bytes]], spans: list[TaskSpan]) -> Iterator[Any]:
        """Each block to the actor with the fewest blocks unfinished, up to `TASKS_QUEUED` each, so an actor
        starts its next block the moment one ends; results yielded in input order as they complete. A slow
        block at the head holds back only the yielding, not the actors, up to `RESULTS_HELD` blocks a CPU."""
        import ray

        pending: deque[tuple[Any, int]] = deque()  # (result reference, actor index), in input order
        held = len(self.actors) * RESULTS_HELD
        for chunk in chunks:
            while True:
                refs = [ref for ref, _ in pending]
                done = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
                while pending and pending[0][0] in done:
                    yield from self._take(pending.popleft(), spans)
                load = [0] * len(self.actors)
                for ref, i in pending:
                    load[i] += ref not in done
                if len(pending) < held and min(load) < TASKS_QUEUED:
                    break
                if len(pending) >= held:
                    yield from self._take(pending.popleft(), spans)
                else:  # every actor has its queue full: wait until one finishes a block
                    ray.wait([ref for ref, _ in pending if ref not in done], num_returns=1)
            i = min(range(len(self.actors)), key=load.__getitem__)
            pending.append((self.actors[i].run.remote(fn, self.box, chunk), i))
        while pending:
            yield from self._take(pending.popleft(), spans)

    @staticmethod
    def _take(entry: tuple[Any, int], spans: list[TaskSpan]) -> Iterator[Any]:
        import ray

        out, span = ray.get(entry[0])
        spans.append(span)
        yield from (pickle.loads(blob) for blob in out)


@contextmanager
def workers(address: str | None, state: worker.WorkerState) -> Iterator[RayWorkers]:
    """Ray workers for one build, connected."""
    with connected(address):  # first: it may set what Ray reads at import
        yield RayWorkers(state)
