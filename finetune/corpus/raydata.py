"""The Ray executor of `pipeline.build` (`--executor ray`): the two per-file passes (`worker.prepare`,
`worker.examples`) run as Ray Data map steps on a cluster, in input order; discovery, the reduce step (exact
and near dedup with datasketch's LSH, the split) and the shards stay on the driver, so a build on Ray gives
the same bytes as a local one (docs/corpus.md, "Running on a Ray cluster").

Every node must see the repositories, the model's tokenizer and the output's parent directory (where the
spool of redacted texts lives between the passes) at the same paths: a shared filesystem.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from core.errors import ConfigError
from finetune.corpus import worker

log = logging.getLogger(__name__)

# Files per Ray Data block at most: a block is one task, and its pickled results (a file's rows) sit in the
# object store until the driver has written them; small blocks keep that bounded and the cores evenly fed.
MAX_BLOCK_FILES = 64
BLOCKS_PER_CPU = 8  # on small inputs, enough blocks that no worker waits for the last large one


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


_INSTALLED: str | None = None


def _apply(batch: dict[str, np.ndarray], fn: Callable[[Any], Any], box: _Box) -> dict[str, np.ndarray]:
    """A Ray Data batch: pickled inputs in, pickled `fn(input)` out, the worker state installed once per
    process and pass (the process keeps its word cache, compiled regexes and parser between tasks)."""
    global _INSTALLED
    if _INSTALLED != box.token:
        import ray

        worker.init(ray.get(box.ref))
        _INSTALLED = box.token
    out = np.empty(len(batch["job"]), dtype=object)
    for i, blob in enumerate(batch["job"]):
        out[i] = pickle.dumps(fn(pickle.loads(blob)), protocol=pickle.HIGHEST_PROTOCOL)
    return {"result": out}


class RayWorkers:
    """`pipeline._Workers` on a Ray cluster: an ordered `map` as a Ray Data pipeline and `install`."""

    def __init__(self, state: worker.WorkerState) -> None:
        import ray

        self.cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
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
        mapped = source.map_batches(_apply, fn_kwargs={"fn": fn, "box": self.box},  # type: ignore[arg-type]
                                    batch_size=None, batch_format="numpy", num_cpus=1)
        return (pickle.loads(blob) for batch in mapped.iter_batches(batch_size=None, batch_format="numpy")
                for blob in batch["result"])


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
        yield RayWorkers(state)
