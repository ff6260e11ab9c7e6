"""A Ray cluster on this host, every server on 127.0.0.1: a head node (`ray start --head --block`) and worker
nodes, each in a session of its own, stopped by killing the processes of those sessions (never `ray stop`,
which stops every Ray process of the user). Used by the tests, `bench/corpus.py --executor ray` and a laptop trial.

Why worker nodes are not `ray start --address`: Ray on Linux turns 127.0.0.1 into the host's reachable
address for multi-node clusters and binds its servers there. Only `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`
keeps a node on loopback, and `ray start` refuses to add a node under it. So a worker node is Ray's own
`Node` class started from a process of its own (`python -m finetune.corpus.raylocal node ...`), the way
`ray.cluster_utils.Cluster` starts the extra nodes of Ray's own multi-node tests. A real cluster uses
`ray start` on every host (docs/corpus.md).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# RAY_AUTH_MODE: a `ray.init()` that starts a Ray of its own (a build without --ray-address) writes
# ~/.ray/auth_token, and from then on every cluster started on the host asks its clients for that token, which
# the worker nodes started here do not send: the cluster never came up. It listens on 127.0.0.1 only.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


@dataclass
class LocalCluster:
    """A head with no CPUs (it schedules, the driver runs there) and `workers` nodes of `cpus` CPUs each."""

    temp_dir: Path
    workers: int = 1
    cpus: int = 1
    env: dict[str, str] = field(default_factory=dict)  # extra environment of every node (PYTHONPATH...)
    address: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        return {**os.environ, **LOOPBACK_ENV, **self.env}

    def start(self, timeout: float = 120) -> LocalCluster:
        # Ray's socket paths must stay under 107 bytes: a short directory of our own under /tmp.
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        log = open(self.temp_dir / "head.log", "wb")  # noqa: SIM115 - closed with the cluster
        self.procs.append(subprocess.Popen(
            [_ray_bin(), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
             "--num-cpus", "0", "--include-dashboard", "false", "--temp-dir", str(self.temp_dir / "ray"),
             "--disable-usage-stats"],
            stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True))
        log.close()
        try:
            self._wait_nodes(1, timeout)
            for _ in range(self.workers):
                self.add_worker(timeout)
        except BaseException:  # a cluster that did not come up is not left running
            self.stop()
            raise
        return self

    def add_worker(self, timeout: float = 120) -> subprocess.Popen:
        """One more worker node; returns its process (the leader of its process group)."""
        n = len(self.procs)
        log = open(self.temp_dir / f"worker{n}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "finetune.corpus.raylocal", "node", "--address", self.address,
             "--num-cpus", str(self.cpus)],
            stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True)
        log.close()
        self.procs.append(proc)
        self._wait_nodes(n + 1, timeout)
        return proc

    def _wait_nodes(self, count: int, timeout: float) -> None:
        """Wait until `count` nodes are alive, asking the GCS from a short-lived process (this one stays free
        of a Ray connection, so the caller can `ray.init` later)."""
        probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.monotonic() + timeout
        while True:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Ray node exited with {proc.returncode} while starting "
                                       f"(logs in {self.temp_dir})")
            try:
                done = subprocess.run([sys.executable, "-c", probe, self.address], check=False, capture_output=True,
                                      text=True, env=self._env(), timeout=max(deadline - time.monotonic(), 5))
            except subprocess.TimeoutExpired as exc:  # the probe itself hung: as good as a "not yet"
                done = subprocess.CompletedProcess(exc.cmd, -1, "", str(exc.stderr or "the probe hung"))
            lines = done.stdout.split()
            if done.returncode == 0 and lines and int(lines[-1]) >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Ray cluster did not reach {count} nodes in {timeout:.0f} s "
                                   f"(logs in {self.temp_dir}): {done.stderr[-2000:]}")
            time.sleep(1)

    def processes(self) -> dict[int, bytes]:
        """pid -> command line of every process of the cluster's nodes (Ray's workers put themselves in
        process groups of their own, but stay in their node's session)."""
        sessions = {proc.pid for proc in self.procs}
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getsid(int(entry)) in sessions:
                    found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
        return found

    def stop(self) -> None:
        """Kill every process of the nodes' sessions (workers first), then reap the leaders."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait(timeout=30)
        self.procs.clear()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _node(address: str, num_cpus: int) -> None:
    """A worker node on 127.0.0.1 joined to `address`, until SIGTERM (its processes die with its group)."""
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    params = RayParams(gcs_address=address, node_ip_address="127.0.0.1", num_cpus=num_cpus, num_gpus=0,
                       include_log_monitor=False,  # type: ignore[arg-type]  # as ray.cluster_utils passes it
                       node_manager_port=0, min_worker_port=0, max_worker_port=0)
    node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=False)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.5)
    node.kill_all_processes(check_alive=False, allow_graceful=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m finetune.corpus.raylocal")
    sub = parser.add_subparsers(dest="command", required=True)
    node = sub.add_parser("node", help="a worker node on 127.0.0.1 (see the module docstring)")
    node.add_argument("--address", required=True)
    node.add_argument("--num-cpus", type=int, default=1)
    up = sub.add_parser("up", help="a head and N worker nodes until Ctrl-C; prints the address")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--cpus", type=int, default=1)
    up.add_argument("--temp-dir", default="/tmp/inhouse-ray")
    args = parser.parse_args(argv)
    if args.command == "node":
        _node(args.address, args.num_cpus)
        return
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C or SIGTERM stop the nodes (a shell that starts this in the background leaves SIGINT ignored).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with LocalCluster(Path(args.temp_dir), args.workers, args.cpus) as cluster:
        print(f"Ray cluster at {cluster.address} ({args.workers} worker nodes); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
