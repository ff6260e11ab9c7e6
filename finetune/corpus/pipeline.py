"""`build`: the corpus pipeline, discover -> filter -> secrets -> dedup -> split -> parse/select_spans ->
render -> write_shards, each stage counted in manifest.json. Called by `inhouse corpus build` and the bench.

Per-file stages run in a process pool over all cores (`worker.prepare`, `worker.examples`), or on map actors
on a Ray cluster (`--executor ray`, `raydata.py`); repositories given by git URL are cloned first (`clone.py`:
here, or on the workers on Ray); dedup and split are reduce steps over small per-file records (signatures), so
memory holds no file contents: redacted texts wait in a spool directory on disk between the two parallel passes.
The reduce step (`dedup.reduce`) runs in a process of its own, forked when the build starts, so that its
datasketch import does not wait.
With `cache_dir` (`--cache`), the per-file results come from `cache.py` when the file's bytes were seen
before; the reduce step and the rendering still cover every file, so the bytes are those of a fresh build.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

from core import artifacts, fim, languages
from core import config as core_config
from core.artifacts import atomic_directory, read_info, scratch_name
from core.errors import CorpusError, ModelError
from finetune.corpus import cache as cache_mod
from finetune.corpus import clone, dedup, discover, filters, secrets, split, spool, worker
from finetune.corpus.config import CorpusConfig, cutoff_timestamp
from finetune.corpus.context import index_by_dir
from finetune.corpus.repos import RepoSpec, check_repos, git_changed_since, git_commit, git_toplevel
from finetune.corpus.write import BATCH_ROWS, FILE_SCHEMA, ROW_SCHEMA, FileEntry, ShardWriter, file_rows, write_manifest

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


def resolve_tokenizer(cfg: CorpusConfig) -> tuple[str, str, str]:
    """(tokenizer.json path, FIM format name, what to record as the tokenizer) from --model / --tokenizer."""
    if cfg.model:
        model = Path(cfg.model)
        if not model.is_dir():
            raise CorpusError(f"model directory {str(model)!r} does not exist")
        tok = model / "tokenizer.json"
        if not tok.is_file():
            raise CorpusError(f"model directory {str(model)!r} has no tokenizer.json")
        try:
            name = cfg.fim_format or read_info(model).get("fim_format")
        except ModelError as exc:
            raise CorpusError(str(exc)) from exc
        if not name:
            raise CorpusError(f"{model}/inhouse.json names no fim_format; pass --fim-format NAME")
        label = str(model)
    elif cfg.tokenizer:
        tok = Path(cfg.tokenizer)
        if not tok.is_file():
            raise CorpusError(f"tokenizer file {str(tok)!r} does not exist")
        if not cfg.fim_format:
            raise CorpusError("--tokenizer needs --fim-format NAME (a model directory names its own format)")
        name, label = cfg.fim_format, str(tok)
    else:
        raise CorpusError("give --model MODEL_DIR or --tokenizer tokenizer.json: lengths are counted in the "
                          "target model's tokens")
    fmt = fim.get_format(name)
    try:
        tokenizer = worker.load_tokenizer(str(tok))  # loaded once: the workers reuse it
    except Exception as exc:  # the tokenizers library raises a bare Exception for an unreadable file
        raise CorpusError(f"cannot load tokenizer {str(tok)!r}: {exc}") from exc
    try:
        fim.check_sentinels(fmt, tokenizer)
    except ModelError as exc:
        raise CorpusError(f"FIM format {fmt.name!r} does not fit tokenizer {str(tok)!r}: {exc}") from exc
    return str(tok), fmt.name, label


class Shards(Protocol):
    """The examples pass and the dataset's shards: `files` (the files table's entries), then `examples` iterated
    (each job's row count and counts, in order), then `close` (rows per split, files)."""

    def files(self, entries: list[FileEntry], spool_dir: str) -> None: ...

    def examples(self, jobs: list[worker.ExampleJob]) -> Iterator[tuple[int, dict[str, int]]]: ...

    def close(self) -> tuple[dict[str, int], int]: ...


class _Workers:
    """An ordered map over files (`map`) on a fork pool of `workers` processes or in this process, `install` to
    give every worker new state, and `shards` for the examples pass and the shards (`_LocalShards`; on Ray,
    `raydata.RayShards`). The same workers serve both passes, so what they warmed up in the prepare pass
    (cached word counts, compiled regexes, the parser) serves the examples pass too."""

    def __init__(self, map_: Callable[..., Iterable[Any]], install: Callable[[worker.WorkerState], None],
                 tasks: Callable[[], dict[str, Any]] | None = None,
                 shards: Callable[[Path, int], Shards] | None = None) -> None:
        self.map, self.install = map_, install
        self.tasks = tasks  # on Ray: how each pass's map tasks ran (for the manifest)
        self.shards: Callable[[Path, int], Shards] = shards or (lambda out, n: _LocalShards(self.map, out, n))


class _LocalShards:
    """The examples pass with its shards written here, as the rows arrive in file order (`ShardWriter`), and the
    files table at the end."""

    def __init__(self, map_: Callable[..., Iterable[Any]], out: Path, rows_per_shard: int) -> None:
        self.map, self.out, self.rows_per_shard = map_, out, rows_per_shard
        self.writers = {s: ShardWriter(out / s, ROW_SCHEMA, rows_per_shard) for s in split.SPLITS}
        self.entries: list[FileEntry] = []
        self.spool = ""

    def files(self, entries: list[FileEntry], spool_dir: str) -> None:
        self.entries, self.spool = entries, spool_dir

    def examples(self, jobs: list[worker.ExampleJob]) -> Iterator[tuple[int, dict[str, int]]]:
        for job, (rows, counts) in zip(jobs, self.map(worker.examples, jobs), strict=True):
            self.writers[job.split].write(rows)
            yield len(rows), counts

    def close(self) -> tuple[dict[str, int], int]:
        split_rows = {s: w.close() for s, w in self.writers.items()}
        files = ShardWriter(self.out / "files", FILE_SCHEMA, self.rows_per_shard)
        for i in range(0, len(self.entries), BATCH_ROWS):
            files.write(file_rows(self.entries[i:i + BATCH_ROWS], self.spool))
        return split_rows, files.close()


def _reducer_main(conn, parent_end, thresholds: tuple[float, float], num_perm: int) -> None:
    # The build's end of the pipe came along with the fork: closed here, so that the build closing its own
    # (a build that stops before its reduce step) reads as end of file in `recv` below.
    parent_end.close()
    dedup.warm(thresholds, num_perm)
    try:
        items = conn.recv()
    except EOFError:  # the build ended before its reduce step
        return
    try:
        result: Any = dedup.reduce(items, *thresholds)
    except Exception as exc:  # noqa: BLE001 - sent back and raised in the build
        result = exc
    conn.send(result)


class _Reducer:
    """`dedup.reduce` in a process forked when a build starts. Only the reduce step needs datasketch, whose
    import pulls in scipy (~0.6 CPU s); with its LSH parameters (found by numerical integration) it runs here
    while the build loads the tokenizer on the other core, which would idle, and not on the workers' cores."""

    def __init__(self, ctx: Any, cfg: CorpusConfig) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_reducer_main, name="inhouse-dedup", daemon=True,
                                args=(child, self.conn, (cfg.near_dup_threshold, cfg.split_threshold),
                                      cfg.num_perm))
        self.proc.start()
        child.close()

    def __call__(self, items: list[dedup.DedupInput]) -> tuple[list[int], dict[int, int], Counter]:
        try:
            self.conn.send(items)
            result = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.proc.join(timeout=5)  # reaped, so that its exit code is known
            raise CorpusError(f"the dedup process stopped (exit code {self.proc.exitcode}) before it answered") from exc
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        self.conn.close()
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()


@contextmanager
def _reducer(workers: int, cfg: CorpusConfig) -> Iterator[Callable[[list[dedup.DedupInput]], tuple]]:
    """The reduce step: in its own process when the build has several workers, else in this one."""
    if workers <= 1:
        yield lambda items: dedup.reduce(items, cfg.near_dup_threshold, cfg.split_threshold)
        return
    reducer = _Reducer(multiprocessing.get_context("fork"), cfg)
    try:
        yield reducer
    finally:
        reducer.close()


@contextmanager
def _executor(cfg: CorpusConfig, workers: int, state: worker.WorkerState) -> Iterator[_Workers]:
    """The per-file passes' workers: a fork pool on this host, or Ray actors on a cluster (`finetune.corpus.raydata`:
    the same functions, results in the same order, so the same bytes)."""
    if cfg.executor == "ray":
        from finetune.corpus import raydata

        with raydata.workers(cfg.ray_address, state, cfg.ray_workers) as ray_workers:
            yield _Workers(ray_workers.map, ray_workers.install,
                           lambda: {name: raydata.summarize(spans) for name, spans in ray_workers.spans.items()},
                           ray_workers.shards)
        return
    with _workers(workers, state) as pool:
        yield pool


@contextmanager
def _workers(workers: int, state: worker.WorkerState) -> Iterator[_Workers]:
    # Heavy imports and the tokenizer load once here; forked workers inherit them instead of redoing it.
    worker.load_counter(state.tokenizer_file)
    secrets.preload()
    if workers <= 1:
        worker.init(state)
        yield _Workers(map, worker.init)
        return
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    pool = ctx.Pool(workers, initializer=worker.init, initargs=(state, barrier))

    def install(new: worker.WorkerState) -> None:
        # One call a worker: each waits at the barrier until every worker holds one, so none takes two.
        pool.map(worker.install, [new] * workers, chunksize=1)

    try:
        yield _Workers(lambda fn, items: pool.imap(fn, items, chunksize=8), install)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


@contextmanager
def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled, transient=False)
    with progress:
        yield progress


def _eval_since_keys(repos: list[RepoSpec], jobs: list[worker.FileJob], since: str,
                     surveys: Mapping[str, clone.Survey]) -> set[int]:
    """Keys of the files whose last commit (committer date) is at or after `since`; outside git, whose
    modification time is. A file git does not track yet (untracked) has no commit: it is not held out.
    A repository given by URL was read where it was cloned (`surveys`)."""
    cutoff = cutoff_timestamp(since)
    changed: dict[str, set[str] | None] = {}
    for repo in repos:
        if repo.name in surveys:
            changed[repo.name] = surveys[repo.name].changed
            continue
        root = Path(repo.path)
        top = git_toplevel(root)
        if top is None:
            changed[repo.name] = None
            continue
        prefix = os.path.relpath(root.resolve(), top.resolve()).replace(os.sep, "/")
        names = git_changed_since(top, cutoff)
        if prefix != ".":
            names = {n[len(prefix) + 1:] for n in names if n.startswith(prefix + "/")}
        changed[repo.name] = names
    out = set()
    for job in jobs:
        changed_names = changed[job.repo]
        if changed_names is None:
            try:
                if os.stat(job.abspath).st_mtime >= cutoff:
                    out.add(job.key)
            except OSError:
                continue
        elif job.path in changed_names:
            out.add(job.key)
    return out


def _utc(timestamp: int) -> str:
    """The `--eval-since` cut-off as the manifest records it: a full UTC time, whatever form it was given in."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def _stage_of(count_key: str) -> str:
    """Which stage a per-file count from `worker.examples` belongs to in the manifest."""
    if count_key.startswith(("kind:", "no_span:")):
        return "spans"
    if count_key.startswith(("objective:", "has_context")):
        return "render"
    return "parse"


def build(repos: list[RepoSpec], out: Path, cfg: CorpusConfig, overwrite: bool = False,
          progress: bool = True, run_metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the dataset at `out` (written to a temporary sibling, renamed at the end); returns the manifest.

    `run_metadata` (version and git sha) goes into the manifest; None: this checkout's.
    """
    run_metadata = dict(run_metadata) if run_metadata is not None else artifacts.run_metadata()
    out = Path(out)
    repos = check_repos(list(repos))
    if out.exists() and not overwrite:
        raise CorpusError(f"output {str(out)!r} already exists (use --overwrite to replace it)")
    workers = cfg.workers or os.cpu_count() or 1
    # On Ray the reduce step runs in the driver itself: forking it off a process that holds Ray's threads is
    # unsafe, and at cluster scale the import it hides is noise. One connection serves the whole build: the
    # clones of repositories given by URL, then both passes.
    with ExitStack() as stack:
        if cfg.executor == "ray":
            from finetune.corpus import raydata

            stack.enter_context(raydata.connected(cfg.ray_address))
        reduce = stack.enter_context(_reducer(1 if cfg.executor == "ray" else workers, cfg))
        return _build(repos, out, cfg, overwrite, progress, workers, reduce, run_metadata)


def _survey(repos: list[RepoSpec], cfg: CorpusConfig) -> dict[str, clone.Survey]:
    """Clone (or fetch) and discover each repository given by URL: here on the local executor, on the
    workers on Ray (`raydata.survey`). A clone that fails stops the build before anything is written."""
    remote = [r for r in repos if r.url]
    if not remote:
        return {}
    since = cutoff_timestamp(cfg.eval_since) if cfg.eval_since else None
    if cfg.executor == "ray":
        from finetune.corpus import raydata

        surveys = raydata.survey(remote, cfg.clone_dir, since)
    else:
        surveys = [clone.survey(r, cfg.clone_dir, since) for r in remote]
    return {r.name: s for r, s in zip(remote, surveys, strict=True)}


def _build(repos: list[RepoSpec], out: Path, cfg: CorpusConfig, overwrite: bool, progress: bool, workers: int,
           reduce: Callable[[list[dedup.DedupInput]], tuple[list[int], dict[int, int], Counter]],
           run_metadata: dict[str, str]) -> dict[str, Any]:

    tokenizer_file, fmt_name, tokenizer_label = resolve_tokenizer(cfg)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one tokenizer thread a worker: the pool is the parallelism
    counts: dict[str, Counter] = defaultdict(Counter)
    started = time.perf_counter()
    cache = None
    if cfg.cache_dir:
        cache_started = time.time()  # entries used by this build are touched after it: `prune` keeps them
        cache_mod.check_dir(cfg.cache_dir)
        cache = cache_mod.Fingerprints.of(cfg, tokenizer_file, fmt_name, cfg.cache_dir)

    # 1. discover, and the path-only filters (no file is opened for them)
    surveys = _survey(repos, cfg)
    jobs: list[worker.FileJob] = []
    repo_rows = []
    for repo in repos:
        surveyed = surveys.get(repo.name) if repo.url else None
        row: dict[str, Any]
        if surveyed is not None:
            counts["discover"].update(surveyed.counts)
            found = [discover.Candidate(repo.name, name, os.path.join(surveyed.path, name)) for name in surveyed.names]
            row = {"name": repo.name, "path": surveyed.path, "url": repo.url, "ref": repo.ref,
                   "commit": surveyed.commit, "discovery": surveyed.method}
        else:
            found = discover.discover(repo, counts["discover"])
            row = {"name": repo.name, "path": str(Path(repo.path).resolve()), "commit": git_commit(Path(repo.path)),
                   "discovery": discover.discovery_method(repo)}
        repo_rows.append({**row, "team": repo.team, "visibility": repo.visibility, "candidates": len(found)})
        for cand in found:
            reason = filters.path_reason(cand.path, cfg)
            if reason:
                counts["filter"][reason] += 1
                continue
            lang = languages.detect(cand.path)
            assert lang is not None
            jobs.append(worker.FileJob(len(jobs), cand.repo, cand.path, cand.abspath, lang.id))
    forced = _eval_since_keys(repos, jobs, cfg.eval_since, surveys) if cfg.eval_since else set()
    clones = {r.name: (r.url, surveys[r.name].commit) for r in repos if r.name in surveys}
    by_key = {job.key: job for job in jobs}

    out.parent.mkdir(parents=True, exist_ok=True)
    spool_dir = str(scratch_name(out.parent, f".{out.name}.", ".spool"))
    try:
        os.mkdir(spool_dir, 0o700)
        with atomic_directory(out, overwrite=overwrite) as tmp, _progress(progress) as bar, ExitStack() as stack:
            state = worker.WorkerState(cfg=cfg, fim_format=fmt_name, tokenizer_file=tokenizer_file, spool=spool_dir,
                                       cache=cache, clones=clones)
            pool = stack.enter_context(_executor(cfg, min(workers, max(len(jobs), 1)), state))
            # 2-3. filter and redact secrets (parallel), 4a. sign for dedup
            prepared: list[worker.Prepared] = []
            task = bar.add_task("prepare", total=len(jobs))
            for item in pool.map(worker.prepare, jobs):
                prepared.append(item)
                bar.advance(task)
            log.info("prepare: %d files in %.1f s", len(jobs), time.perf_counter() - started)
            lang_stats: dict[str, Counter] = defaultdict(Counter)
            for item in prepared:
                if item.reason:
                    counts["filter"][item.reason] += 1
                    continue
                counts["filter"]["kept"] += 1
                counts["secrets"].update(item.secrets)
                counts["secrets"]["files_with_secrets"] += int(bool(item.secrets))
                lang_stats[by_key[item.key].language]["bytes"] += item.nbytes
            counts["secrets"]["found"] = sum(v for k, v in counts["secrets"].items() if k != "files_with_secrets")
            if not counts["filter"]["kept"]:
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts["filter"].items()) if v)
                raise CorpusError(f"no usable source file in {', '.join(r.url or str(r.path) for r in repos)} "
                                  f"({len(jobs)} candidates; dropped: {reasons or 'nothing found'})")
            # 4b. dedup (exact, then MinHash LSH)
            locations: dict[int, spool.Location] = {}
            for p in prepared:
                if not p.reason:
                    assert p.location is not None  # a kept file is spooled
                    locations[p.key] = p.location
            items = [dedup.DedupInput(p.key, p.exact, p.sig, p.key in forced) for p in prepared if not p.reason]
            kept_keys, groups, dedup_counts = reduce(items)
            kept = set(kept_keys)
            counts["dedup"].update(dedup_counts)
            # 5. split by near-duplicate groups
            names = {k: f"{by_key[k].repo}/{by_key[k].path}" for k in kept}
            splits = split.assign_splits(names, groups, forced & kept, cfg.eval_fraction, cfg.dev_fraction,
                                         cfg.seed, counts["split"], eval_since=bool(cfg.eval_since))
            split.check_disjoint(splits, groups)
            log.info("dedup and split: %.1f s", time.perf_counter() - started)
            # 6-7. parse, select spans, render (parallel); 8. write shards as rows arrive, in file order
            train_paths: dict[str, list[str]] = defaultdict(list)
            for k, s in splits.items():
                if s == split.TRAIN:
                    train_paths[by_key[k].repo].append(by_key[k].path)
            state = worker.WorkerState(
                cfg=cfg, fim_format=fmt_name, tokenizer_file=tokenizer_file, spool=spool_dir,
                context_index={r: index_by_dir(ps) for r, ps in train_paths.items()},
                locations={(by_key[k].repo, by_key[k].path): locations[k] for k, s in splits.items()
                           if s == split.TRAIN},
                cache=cache, clones=clones)
            blobs = {p.key: p.blob for p in prepared}
            ex_jobs = [worker.ExampleJob(k, by_key[k].repo, by_key[k].path, by_key[k].language, splits[k],
                                         locations[k], blobs[k]) for k in sorted(splits)]
            spans_cached = 0
            task = bar.add_task("examples", total=len(ex_jobs))
            pool.install(state)
            shards = pool.shards(tmp, cfg.rows_per_shard)
            shards.files([(by_key[k].repo, by_key[k].path, by_key[k].language, splits[k], locations[k])
                          for k in sorted(splits)], spool_dir)
            for job, (n_rows, file_counts) in zip(ex_jobs, shards.examples(ex_jobs), strict=True):
                spans_cached += file_counts.pop(worker.CACHE_HIT, 0)
                for key, value in file_counts.items():
                    counts[_stage_of(key)][key] += value
                counts[f"rows_{job.split}"][job.language] += n_rows
                lang_stats[job.language]["files"] += 1
                lang_stats[job.language][f"{job.split}_rows"] += n_rows
                counts[f"kinds_{job.split}"].update({k[5:]: v for k, v in file_counts.items()
                                                     if k.startswith("kind:")})
                bar.advance(task)
            log.info("examples: %.1f s", time.perf_counter() - started)
            split_rows, n_files = shards.close()
            log.info("shards and files table: %.1f s", time.perf_counter() - started)
            stack.close()  # the workers are done
            ray_tasks = pool.tasks() if pool.tasks is not None else None
            if ray_tasks is not None:
                log.info("Ray map tasks: %s", ray_tasks)
            cache_info = None
            if cache is not None:
                files_cached = sum(1 for p in prepared if p.cached)
                cache_info = {"dir": cache.root, "files_processed": len(prepared) - files_cached,
                              "files_cached": files_cached, "spans_processed": len(ex_jobs) - spans_cached,
                              "spans_cached": spans_cached,
                              **cache_mod.prune(cache.root, cache_started, cfg.cache_max_gb, cfg.cache_max_age_days)}
                log.info("cache: %d files processed, %d from the cache", cache_info["files_processed"], files_cached)
            manifest = {
                "manifest_version": MANIFEST_VERSION,
                **run_metadata,
                "config": core_config.to_dict(cfg),
                "fim_format": fmt_name,
                "tokenizer": tokenizer_label,
                "tokenizer_file": tokenizer_file,
                "repos": repo_rows,
                "stages": ["discover", "filter", "secrets", "dedup", "split", "parse", "select_spans", "render",
                           "write_shards"],
                "counts": {name: dict(sorted(c.items())) for name, c in sorted(counts.items())},
                "languages": {lang: dict(sorted(c.items())) for lang, c in sorted(lang_stats.items())},
                "splits": split_rows,
                "files": n_files,
                "eval_cutoff": _utc(cutoff_timestamp(cfg.eval_since)) if cfg.eval_since else None,
                "cache": cache_info,
                "ray_tasks": ray_tasks,
            }
            write_manifest(tmp, manifest)
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
    log.info("wrote %s: %s", out, split_rows)
    return manifest
