"""The Ray executor of `pipeline.build` (`--executor ray`): the two per-file passes (`worker.prepare`,
`worker.examples`) run as Ray Data map steps on a cluster, in input order, on a pool of map actors; repositories
given by URL are cloned and discovered by a task on a worker (`survey`); the reduce step (exact and near dedup
with datasketch's LSH, the split) and the shards stay on the driver, so a build on Ray gives the same bytes as a
local one (docs/corpus.md, "Running on a Ray cluster").

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ConfigError, CorpusError
from finetune.corpus import clone, worker
from finetune.corpus.repos import RepoSpec

log = logging.getLogger(__name__)

# Files per Ray Data block at most: a block is one task, and its pickled results (a file's rows) sit in the
# object store until the driver has written them; small blocks keep that bounded and the cores evenly fed.
MAX_BLOCK_FILES = 64
# On small inputs, blocks per CPU: a task costs tens of milliseconds of Ray's own work whatever its size, so
# not more than it takes for no actor to wait long for the last one.
BLOCKS_PER_CPU = 2
TASKS_QUEUED = 4  # tasks sent ahead to each map actor: it starts the next as soon as one ends
ACTOR_START_TIMEOUT_S = 600  # a pass fails when its map actors are not all up by then (a node lost, too few CPUs)


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


class _Apply:
    """A Ray Data map worker (an actor, one CPU): installs the pass's worker state once when it starts, then
    maps batches: pickled inputs in, pickled `fn(input)` out. The task's `TaskSpan` rides along in the first
    row of a second column."""

    def __init__(self, fn: Callable[[Any], Any], box: _Box) -> None:
        import ray

        worker.init(ray.get(box.ref))
        self.fn, self.node = fn, ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.time()
        out = np.empty(len(batch["job"]), dtype=object)
        for i, blob in enumerate(batch["job"]):
            out[i] = pickle.dumps(self.fn(pickle.loads(blob)), protocol=pickle.HIGHEST_PROTOCOL)
        span = np.full(len(out), b"", dtype=object)
        span[0] = pickle.dumps(TaskSpan(self.node, os.getpid(), start, time.time(), len(out)))
        return {"result": out, "span": span}


def _survey_task(repo: RepoSpec, clone_dir: str | None, since: int | None) -> clone.Survey | str:
    """`clone.survey` on a worker; a clone that fails comes back as its message (one line for the driver)."""
    try:
        return clone.survey(repo, clone_dir, since)
    except CorpusError as exc:
        return str(exc)


def survey(repos: list[RepoSpec], clone_dir: str | None, since: int | None) -> list[clone.Survey]:
    """`clone.survey` of each repository given by URL, one task each on the workers (so the clones are made
    where the files will be read, and in parallel); raises the first failure as a CorpusError."""
    import ray

    task = ray.remote(num_cpus=1)(_survey_task)
    surveys = []
    for result in ray.get([task.remote(repo, clone_dir, since) for repo in repos]):
        if isinstance(result, str):
            raise CorpusError(result)
        surveys.append(result)
    return surveys


class RayWorkers:
    """`pipeline._Workers` on a Ray cluster: an ordered `map` as a Ray Data pipeline and `install` (the next
    `map`'s actors start with the new state)."""

    def __init__(self, state: worker.WorkerState) -> None:
        import ray

        self.cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        self.spans: dict[str, list[TaskSpan]] = {}  # pass (the mapped function's name) -> its map tasks
        self.install(state)

    def install(self, state: worker.WorkerState) -> None:
        import ray

        self.box = _Box(ray.put(state), uuid.uuid4().hex)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        import ray

        jobs = [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]
        if not jobs:
            return iter(())
        blocks = min(len(jobs), max(self.cpus * BLOCKS_PER_CPU, math.ceil(len(jobs) / MAX_BLOCK_FILES)))
        source = ray.data.from_items([{"job": j} for j in jobs], override_num_blocks=blocks)
        # An actor per CPU, each with tasks queued: a task-pool map holds one task per CPU in flight, and the
        # slot stays taken until the driver's scheduling loop has seen the task end, so with short tasks the
        # nodes took turns (docs/corpus.md, "Why two nodes ran one task at a time").
        pool = ray.data.ActorPoolStrategy(size=min(self.cpus, blocks), max_tasks_in_flight_per_actor=TASKS_QUEUED)
        mapped = source.map_batches(_Apply, fn_constructor_kwargs={"fn": fn, "box": self.box}, compute=pool,
                                    batch_size=None, batch_format="numpy", num_cpus=1)
        spans = self.spans.setdefault(fn.__name__, [])

        def results() -> Iterator[Any]:
            for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
                spans.extend(pickle.loads(s) for s in batch["span"] if s)
                yield from (pickle.loads(blob) for blob in batch["result"])

        return results()


@contextmanager
def workers(address: str | None, state: worker.WorkerState) -> Iterator[RayWorkers]:
    """Ray workers for one build: connected, results in input order, no Ray progress bars (the build has
    its own)."""
    with connected(address):  # first: it may set what Ray reads at import
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # shards are written in (repo, path) order
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        # A pass starts once every map actor holds its state: else the first actor up takes the queued blocks
        # while the others still load the tokenizer (a node that joins late has little left to do).
        ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
        yield RayWorkers(state)
