"""`--executor ray` on a real Ray cluster started here: a head and two worker nodes of one CPU on 127.0.0.1 in a
temporary directory, shared by the module and killed at its end. Same bytes as the local executor, map tasks
on both nodes at the same time, a worker killed mid-build retried, an unreachable address one clear error."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import CorpusError
from finetune.corpus.pipeline import build
from finetune.corpus.raydata import TaskSpan, summarize
from finetune.corpus.raylocal import LOOPBACK_ENV, LocalCluster, _free_port
from finetune.corpus.repos import from_paths, read_repos_toml
from tests.finetune.corpus.conftest import make_git_repo, package_source, write_repos_toml

ROOT = Path(__file__).resolve().parents[3]


def digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def ray_cluster():
    """One head (no CPUs) and two worker nodes of one CPU each; the workers import this tree."""
    saved = {k: os.environ.get(k) for k in LOOPBACK_ENV}
    os.environ.update(LOOPBACK_ENV)  # the driver (this process) must not turn 127.0.0.1 into another address
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    cluster = LocalCluster(temp, workers=2, cpus=1, env={"PYTHONPATH": str(ROOT)})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_ray_build_writes_the_local_bytes(tmp_path, ray_cluster, tqdm_repo, tqdm_dataset, corpus_cfg):
    local, manifest = tqdm_dataset
    out = tmp_path / "ray"
    ray_manifest = build(from_paths([tqdm_repo]), out, corpus_cfg(eval_fraction=0.15, dev_fraction=0.1,
                                                                  executor="ray", ray_address=ray_cluster.address),
                         progress=False)
    assert digest(out) == digest(local) and len(digest(out)) == 4
    assert ray_manifest["counts"] == manifest["counts"] and ray_manifest["config"]["executor"] == "ray"


def test_shards_written_on_the_workers_are_the_local_bytes(tmp_path, ray_cluster, tqdm_repo, corpus_cfg):
    """Small shards: each split's rows end in many shards, a shard takes rows from several blocks and a block's
    rows go to several shards, written by tasks on both worker nodes; the bytes are the local build's."""
    cfg = corpus_cfg(eval_fraction=0.15, dev_fraction=0.1, rows_per_shard=9)
    local = build(from_paths([tqdm_repo]), tmp_path / "local", cfg, progress=False)
    remote = build(from_paths([tqdm_repo]), tmp_path / "ray", replace(cfg, executor="ray",
                                                                      ray_address=ray_cluster.address),
                   progress=False)
    shards = digest(tmp_path / "ray")
    assert shards == digest(tmp_path / "local") and remote["splits"] == local["splits"]
    assert len([name for name in shards if name.startswith("train/")]) == -(-local["splits"]["train"] // 9) > 3
    empty = [name for name, n in local["splits"].items() if n == 0]  # its schema-only shard is written here
    assert remote["ray_tasks"]["shards"]["tasks"] == len(shards) - len(empty)
    assert remote["ray_tasks"]["shards"]["nodes"] == 2


def test_ray_workers_caps_the_map_actors(tmp_path, ray_cluster, tqdm_repo, tqdm_dataset, corpus_cfg):
    """`--ray-workers 1` on the two-node cluster: every task on one node, the same bytes."""
    local, _ = tqdm_dataset
    manifest = build(from_paths([tqdm_repo]), tmp_path / "one", corpus_cfg(
        eval_fraction=0.15, dev_fraction=0.1, executor="ray", ray_address=ray_cluster.address, ray_workers=1),
        progress=False)
    assert {t["nodes"] for t in manifest["ray_tasks"].values()} == {1}
    assert digest(tmp_path / "one") == digest(local)


def test_a_ray_build_reads_and_writes_the_cache(tmp_path, ray_cluster, tqdm_repo, tqdm_dataset, corpus_cfg):
    local, _ = tqdm_dataset
    cfg = corpus_cfg(eval_fraction=0.15, dev_fraction=0.1, executor="ray", ray_address=ray_cluster.address,
                     cache_dir=str(tmp_path / "cache"))
    first = build(from_paths([tqdm_repo]), tmp_path / "a", cfg, progress=False)
    second = build(from_paths([tqdm_repo]), tmp_path / "b", cfg, progress=False)
    assert first["cache"]["files_processed"] > 0 and first["cache"]["spans_cached"] == 0
    assert second["cache"]["files_processed"] == 0 and second["cache"]["spans_processed"] == 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b") == digest(local)


@pytest.mark.parametrize(("spans", "peak", "mean", "overlap"), [
    ([("a", 0, 1), ("b", 1, 2), ("a", 2, 3)], 1, 1.0, 0.0),  # the nodes take turns
    ([("a", 0, 2), ("b", 0, 2)], 2, 2.0, 1.0),  # both busy throughout
    ([("a", 0, 2), ("b", 1, 3), ("a", 3, 4)], 2, 1.25, 0.25),  # together for 1 s of 4 busy
])
def test_the_task_summary_counts_the_time_tasks_ran_together(spans, peak, mean, overlap):
    summary = summarize([TaskSpan(node, 1, start, end, 1) for node, start, end in spans])
    assert (summary["peak_concurrent"], summary["mean_concurrent"], summary["overlap"]) == (peak, mean, overlap)
    assert summary["nodes"] == len({node for node, _, _ in spans})


def test_map_tasks_run_on_both_nodes_at_the_same_time(tmp_path, ray_cluster, corpus_cfg):
    """Each map task's wall-clock start and end, as the tasks recorded them (`TaskSpan`, summarised in the
    manifest): the two nodes' tasks overlap for much of the prepare pass. Before the map steps ran on actors
    with queued tasks, the nodes took turns (overlap 0.02-0.03 on this input, 0 in the examples pass)."""
    repo = make_git_repo(tmp_path / "rich-src", copy_from=package_source("rich"))  # ~100 files, 1 MB
    manifest = build(from_paths([repo]), tmp_path / "out", corpus_cfg(executor="ray", ray_address=ray_cluster.address),
                     progress=False)
    prepare = manifest["ray_tasks"]["prepare"]
    assert prepare["nodes"] == 2 and prepare["peak_concurrent"] == 2, prepare
    assert prepare["overlap"] >= 0.25 and prepare["mean_concurrent"] >= 1.2, prepare
    assert manifest["ray_tasks"]["examples"]["nodes"] == 2


def test_a_url_is_cloned_by_the_workers_into_the_local_path_dataset(tmp_path, ray_cluster, history_repo,
                                                                    history_dataset, corpus_cfg):
    """The survey task clones and discovers on a worker; each node's map actors read the files from a clone on
    their own node (here both nodes share the host, so the same clone directory)."""
    local, local_manifest = history_dataset
    clones = tmp_path / "clones"
    toml = write_repos_toml(tmp_path / "repos.toml", history_repo.as_uri())
    cfg = corpus_cfg(eval_since="2025-01-01", dev_fraction=0.1, executor="ray", ray_address=ray_cluster.address,
                     clone_dir=str(clones))
    manifest = build(read_repos_toml(toml), tmp_path / "ray", cfg, progress=False)
    assert digest(tmp_path / "ray") == digest(local) and manifest["counts"] == local_manifest["counts"]
    assert Path(manifest["repos"][0]["path"]).is_relative_to(clones) and list(clones.glob("proj-*.git"))


def test_a_url_the_workers_cannot_clone_is_one_clear_error(tmp_path, ray_cluster, corpus_cfg):
    bad = (tmp_path / "nowhere" / "ledger.git").as_uri()
    cfg = corpus_cfg(executor="ray", ray_address=ray_cluster.address, clone_dir=str(tmp_path / "clones"))
    with pytest.raises(CorpusError) as err:
        build(read_repos_toml(write_repos_toml(tmp_path / "repos.toml", bad)), tmp_path / "o", cfg, progress=False)
    assert str(err.value).startswith(f"repository 'ledger': cannot clone {bad}: fatal:")
    assert "\n" not in str(err.value) and not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def _map_task_processes(cluster: LocalCluster) -> list[int]:
    """Ray worker processes of this cluster that are map actors now."""
    return [pid for pid, cmdline in cluster.processes().items() if cmdline.startswith(b"ray::MapActor")]


def test_a_worker_killed_mid_build_is_retried_and_the_output_appears_complete(tmp_path, ray_cluster, tqdm_repo,
                                                                              tqdm_dataset, corpus_cfg):
    local, _ = tqdm_dataset
    cfg = corpus_cfg(eval_fraction=0.15, dev_fraction=0.1, executor="ray", ray_address=ray_cluster.address)
    killed: list[int] = []
    for attempt in range(3):  # a quick build can end before the poll below sees a task: build again
        out = tmp_path / f"ray{attempt}"
        result: list = []
        thread = threading.Thread(target=lambda out=out, result=result: result.append(
            build(from_paths([tqdm_repo]), out, cfg, progress=False)))
        thread.start()
        while thread.is_alive():
            # Nothing at the output name until the build is complete (then it appears whole, by one rename).
            assert not out.exists() or (out / "manifest.json").is_file()
            if not killed:
                for pid in _map_task_processes(ray_cluster)[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.01)
        thread.join()
        assert result, "the build failed (see the log above)"
        if killed:
            break
    assert killed, "no map task was seen running in three builds"
    assert digest(out) == digest(local)


def test_an_unreachable_ray_address_is_one_clear_error(tmp_path, tiny_model_dir, tqdm_repo):
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "app.cli", "corpus", "build", str(tqdm_repo), "-o", str(out),
                           "--model", str(tiny_model_dir), "--executor", "ray", "--ray-address",
                           f"127.0.0.1:{_free_port()}"], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert "ray_address" in proc.stderr and "no Ray cluster answers" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
    assert not list(tmp_path.glob(".o.*"))  # no partial directory or spool left behind


@pytest.mark.slow  # ~20 s on the loaded machine: a fresh process, a new Ray job, cold workers
def test_the_cli_builds_on_a_loopback_cluster(tmp_path, ray_cluster, tiny_model_dir, tqdm_repo, tqdm_dataset):
    """`inhouse corpus build --executor ray` from a fresh process that has not been told about loopback: the
    build sets what Ray needs before importing it."""
    local, _ = tqdm_dataset
    out = tmp_path / "cli"
    env = {k: v for k, v in os.environ.items() if k not in LOOPBACK_ENV}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "corpus", "build", str(tqdm_repo), "-o", str(out),
                           "--model", str(tiny_model_dir), "--eval-fraction", "0.15", "--dev-fraction", "0.1",
                           "--max-examples-per-file", "4", "--no-progress", "--executor", "ray", "--ray-address",
                           ray_cluster.address], check=False, capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert digest(out) == digest(local)


def test_a_local_cluster_comes_up_where_a_ray_left_its_auth_token(tmp_path, monkeypatch):
    """A build without --ray-address starts a Ray of its own, which writes ~/.ray/auth_token; a cluster started
    on the host after that wanted the token from worker nodes that do not send it, and never came up. The
    loopback cluster turns token authentication off (it listens on 127.0.0.1 only)."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("0123456789abcdef" * 4)
    monkeypatch.setenv("HOME", str(home))
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    try:
        with LocalCluster(temp, workers=1, cpus=1, env={"PYTHONPATH": str(ROOT)}) as cluster:
            assert any(cmdline.startswith(b"ray::") or b"raylet" in cmdline for cmdline in cluster.processes().values())
    finally:
        shutil.rmtree(temp, ignore_errors=True)
