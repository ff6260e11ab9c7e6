"""`inhouse eval`: the company's exam on held-out files, graded through the path the editor uses.

Every row goes through `core.completion.pipeline.CompletionPipeline` (should_complete → build_prompt → request →
postprocess), as a request to a completion server: by default `inhouse serve` started here with the base and the
adapter; `--backend-url` grades a running deployment (the embedded server, TGI or vLLM) instead. Each run is a
completion profile: the base in every prompting mode asked for (orders × context, `--compare`), the tuned adapter
in its own profile (the one the editor uses) and any variants asked for. Runs are scored (finetune/metrics.py)
and compared with paired bootstrap intervals. Each cursor sees its repository as the language server does in an
editor on it: the workspace symbol index of the repository, and the held-out file's neighbours open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import posixpath
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.artifacts import atomic_directory, read_info
from core.client import BackendInfo, ClientConfig, CompletionBackend, create_backend
from core.completion.context import open_documents, walk_order
from core.completion.pipeline import CompletionInput, CompletionPipeline
from core.completion.profile import CompletionProfile, profile_of_info
from core.completion.prompt import load_tokenizer
from core.completion.symbols import SymbolIndex
from core.config import to_dict
from core.errors import ConfigError, CorpusError, ModelError
from finetune import data as D
from finetune import metrics as M
from finetune.config import EvalConfig

log = logging.getLogger(__name__)

HEADLINE_METRICS = ("exact_match", "edit_similarity")
COMPARED_METRICS = M.METRICS
TUNED_ID = "tuned"  # the adapter's id on the server the exam starts (its runs: "tuned/<mode>")
INCUMBENT_ID = "incumbent"  # the incumbent's (the gate's reference: the team's current adapter)


@dataclass(frozen=True)
class Task:
    """One eval row: a cursor in a held-out file."""

    id: int
    repo: str
    path: str
    language: str
    kind: str
    prefix: str
    middle: str
    suffix: str


def load_tasks(dataset: Path, limit: int, seed: int) -> list[Task]:
    """The eval rows (a seeded sample of `limit` of them when limit > 0), FIM rows only."""
    rows = [r for r in D.load_rows(dataset, "eval") if r.get("objective", "psm") != "l2r"]
    if not rows:
        raise CorpusError(f"dataset {str(dataset)!r} has no FIM rows in its eval split")
    ids = list(range(len(rows)))
    if limit and limit < len(rows):
        ids = sorted(random.Random(seed).sample(ids, limit))
    return [Task(i, rows[i].get("repo", ""), rows[i].get("path", ""), rows[i]["language"], rows[i].get("kind", "?"),
                 rows[i]["prefix"], rows[i]["middle"], rows[i]["suffix"]) for i in ids]


def load_documents(dataset: Path) -> dict[str, dict[str, str]]:
    """repo -> {path: content} from the dataset's files/ shard (the other files a workspace would hold)."""
    docs: dict[str, dict[str, str]] = {}
    for r in D.load_rows(dataset, "files", columns=("repo", "path", "content"), required=False):
        docs.setdefault(r["repo"], {})[r["path"]] = r["content"]
    return docs


def check_model_dirs(base: str | Path, adapter: str | Path | None = None, flag: str = "--adapter") -> None:
    """A ModelError naming the flag unless `base` is a model directory and `adapter` (if given) a peft adapter:
    callers check before hours of work, not when they first load the adapter."""
    if not (Path(base) / "config.json").is_file():
        raise ModelError(f"--base {str(base)!r} is not a model directory (no config.json)")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelError(f"{flag} {str(adapter)!r} is not a peft adapter (no adapter_config.json)")


@dataclass(frozen=True)
class ExamRecord:
    """One graded cursor of one run: what the runner answered for a task, and its scores."""

    id: int  # the task's
    kind: str  # the task's span kind
    language: str
    completion: str  # the post-processed text the editor would show
    raw: str  # the model's text before post-processing
    reason: str  # why the runner answered as it did (core.completion's reason)
    prompt_tokens: int
    tokens: int  # generated tokens
    latency_ms: float
    scores: dict[str, float]  # finetune/metrics.py `score`: every metric of M.METRICS

    def to_dict(self) -> dict[str, Any]:
        """The record as examples.jsonl holds it (and metrics.summarize reads it): the scores inline."""
        return {"id": self.id, "kind": self.kind, "language": self.language, "completion": self.completion,
                "raw": self.raw, "reason": self.reason, "prompt_tokens": self.prompt_tokens, "tokens": self.tokens,
                "latency_ms": self.latency_ms, **self.scores}


@dataclass(frozen=True)
class Run:
    """One graded run: which model (the base, or an adapter id on the server) under which profile."""

    key: str                  # "base/spm+ctx", "tuned/spm"
    adapter_id: str | None
    profile: CompletionProfile


def task_input(task: Task, documents: dict[str, dict[str, str]]) -> CompletionInput:
    """The cursor as the language server sees it in an editor on the repository: the held-out file, and as open
    documents its neighbours (the other files of its folder, by name), under the language server's own rule."""
    folder = posixpath.dirname(task.path)
    repo = documents.get(task.repo, {})
    neighbours = ((p, repo[p]) for p in sorted(repo) if posixpath.dirname(p) == folder)
    return CompletionInput(task.path, task.prefix, task.suffix, task.language, open_documents(neighbours, task.path),
                           task.repo)


def workspace_index(files: dict[str, str]) -> SymbolIndex:
    """The repository's symbol index, read in the order the language server's workspace index reads a folder
    (the order decides which of several same-named definitions come first)."""
    index = SymbolIndex()
    for path in sorted(files, key=walk_order):
        index.update(path, files[path])
    return index


async def grade_run(backend: CompletionBackend, run: Run, tasks: list[Task], documents, references,
                    info: BackendInfo | None, tokenizer: Any, cfg: EvalConfig, progress=None,
                    indexes: dict[str, SymbolIndex] | None = None) -> list[ExamRecord]:
    """Every task through the runner under `run`'s profile, `cfg.concurrency` requests in flight; one scored
    record per task, in task order. The editor's view of each repository: its workspace index (`indexes`, built
    here when not given) and the held-out file's neighbours open."""
    indexes = indexes if indexes is not None else {repo: workspace_index(files) for repo, files in documents.items()}
    pipelines = {repo: CompletionPipeline(backend, run.profile, adapter_id=run.adapter_id, tokenizer=tokenizer,
                                          info=info, profile_source=run.key, index=indexes.get(repo))
                 for repo in {t.repo for t in tasks}}
    gate = asyncio.Semaphore(cfg.concurrency)

    async def one(i: int, t: Task) -> ExamRecord:
        async with gate:
            out = await pipelines[t.repo].complete(task_input(t, documents))
        if progress is not None:
            progress.update(1)
        scores = M.score(t.prefix, t.middle, t.suffix, out.text, t.language, references[i])
        return ExamRecord(t.id, t.kind, t.language, out.text, out.result.text if out.result else "", out.reason,
                          out.prompt.tokens if out.prompt else 0, out.result.generated_tokens if out.result else 0,
                          round(out.timings.get("total", 0.0), 1), scores)

    return list(await asyncio.gather(*(one(i, t) for i, t in enumerate(tasks))))


def summarize_run(records: list[ExamRecord]) -> dict[str, Any]:
    rows = [r.to_dict() for r in records]
    return {"overall": M.summarize(rows)["overall"], "by_kind": M.summarize(rows, lambda r: r["kind"]),
            "by_language": M.summarize(rows, lambda r: r["language"])}


def best_mode(runs: dict[str, dict[str, Any]], model: str) -> str:
    """The model's best mode on the exam: exact match, then edit similarity."""
    candidates = [name for name in runs if name.startswith(f"{model}/")]
    return max(candidates, key=lambda n: (runs[n]["overall"]["exact_match"], runs[n]["overall"]["edit_similarity"]))


def compare_runs(records: dict[str, list[ExamRecord]], a: str, b: str, cfg: EvalConfig) -> dict[str, Any]:
    """b - a for every metric, overall and per span kind, with paired bootstrap 95% intervals."""
    ra, rb = records[a], records[b]
    out: dict[str, Any] = {"a": a, "b": b, "overall": {}, "by_kind": {}}
    for metric in COMPARED_METRICS:
        out["overall"][metric] = M.paired_bootstrap([r.scores[metric] for r in ra], [r.scores[metric] for r in rb],
                                                    cfg.bootstrap, cfg.seed).as_dict()
    for kind in sorted({r.kind for r in ra}):
        idx = [i for i, r in enumerate(ra) if r.kind == kind]
        out["by_kind"][kind] = {m: M.paired_bootstrap([ra[i].scores[m] for i in idx], [rb[i].scores[m] for i in idx],
                                                      cfg.bootstrap, cfg.seed).as_dict() for m in HEADLINE_METRICS}
    return out


def plan_runs(base_profile: CompletionProfile, tuned_profile: CompletionProfile | None, tuned_id: str | None,
              cfg: EvalConfig, *, compare: bool, gate: bool = False, gate_only: bool = False,
              incumbent_profile: CompletionProfile | None = None, incumbent_id: str | None = None) -> list[Run]:
    """The base in every mode of `cfg.modes` (its own profile's mode among them) when there is no adapter or with
    --compare, else in its own profile for the gate; the incumbent in its own profile; the adapter in its own
    profile, then in each of `cfg.tuned_modes` (not with `gate_only`: the gate's three runs and no more)."""
    def budget(p: CompletionProfile) -> CompletionProfile:
        return dataclasses.replace(p, max_prompt_tokens=cfg.max_prompt_tokens) if cfg.max_prompt_tokens else p

    runs: list[Run] = []
    if tuned_profile is None or compare:
        modes = dict.fromkeys((*cfg.modes, base_profile.mode)) if compare else dict.fromkeys(cfg.modes)
        runs += [Run(f"base/{m}", None, budget(base_profile.variant(m) if m != base_profile.mode else base_profile))
                 for m in modes]
    elif gate:
        runs.append(Run(f"base/{base_profile.mode}", None, budget(base_profile)))
    if incumbent_profile is not None:
        runs.append(Run(f"incumbent/{incumbent_profile.mode}", incumbent_id, budget(incumbent_profile)))
    if tuned_profile is not None:
        runs.append(Run(f"tuned/{tuned_profile.mode}", tuned_id, budget(tuned_profile)))
        runs += [Run(f"tuned/{m}", tuned_id, budget(tuned_profile.variant(m)))
                 for m in cfg.tuned_modes if m != tuned_profile.mode and not gate_only]
    return runs


@contextlib.contextmanager
def adapters_for_server(adapters: dict[str, Path]) -> Iterator[Path | None]:
    """A temporary adapters directory for `inhouse serve`: each adapter's top-level files (peft files and
    inhouse.json) under its id, hard-linked where the filesystem allows."""
    if not adapters:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="inhouse-exam-adapters-"))
    try:
        for adapter_id, src in adapters.items():
            dst = root / adapter_id
            dst.mkdir()
            for f in Path(src).iterdir():
                if f.is_file():
                    try:
                        os.link(f, dst / f.name)
                    except OSError:
                        shutil.copy2(f, dst / f.name)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def exam_server(base: Path, adapters: dict[str, Path], cfg: EvalConfig, log_file: Path) -> Iterator[str]:
    """`inhouse serve` with the base and `adapters` on a free 127.0.0.1 port, for the exam's whole run."""
    from core.launch import serve_subprocess

    with adapters_for_server(adapters) as adapters_dir:
        args = ["--max-batch-size", str(cfg.concurrency),
                "--max-concurrent-requests", str(max(128, 2 * cfg.concurrency))]
        if adapters_dir is not None:
            args += ["--adapters", str(adapters_dir)]
        # The server's own choice (half the CPUs) unless told: with every CPU, the exam on this 2-core machine
        # took 1.3-1.6 s a cursor while nothing else ran and 24-84 s while one other process did (each
        # decoding step waits for its slowest thread; docs/serving.md, "Threads").
        if cfg.threads:
            args += ["--threads", str(cfg.threads)]
        log.info("starting the embedded server for the exam (log: %s)", log_file)
        with serve_subprocess(base, log_file, args=args, ready_timeout_s=300) as url:
            yield url


def _profile(info: BackendInfo | None, adapter_id: str | None, local: Path | None, what: str
             ) -> CompletionProfile:
    """The profile the server reports for this model, else the one its directory holds: what the editor uses."""
    if info is not None:
        reported = info.adapter_profiles.get(adapter_id) if adapter_id else info.profile
        if reported is not None:
            return reported
    if local is not None:
        found = profile_of_info(read_info(local), where=str(local))
        if found is not None:
            return found
    raise ConfigError(f"no completion profile for {what}: the server reports none in /info and "
                      f"{str(local) if local else 'no local directory'!r} holds none (inhouse.json)")


async def grade_all(url: str, runs_for: Any, tasks: list[Task], documents, references, tokenizer, cfg: EvalConfig,
                    api_key_file: str | None = None
                    ) -> tuple[list[Run], dict[str, list[ExamRecord]], dict[str, float]]:
    """Ask the server at `url` for /info, plan the runs from its profiles (`runs_for(info)`), grade each."""
    from tqdm import tqdm

    backend = create_backend(ClientConfig(url=url, timeout_s=cfg.request_timeout_s, api_key_file=api_key_file))
    try:
        info = await backend.info()
        runs = runs_for(info)
        records: dict[str, list[ExamRecord]] = {}
        seconds: dict[str, float] = {}
        indexes = {repo: workspace_index(files) for repo, files in documents.items()}
        with tqdm(total=len(runs) * len(tasks), desc="exam", unit="cursor", dynamic_ncols=True) as bar:
            for run in runs:
                bar.set_postfix_str(run.key)
                t0 = time.perf_counter()
                records[run.key] = await grade_run(backend, run, tasks, documents, references, info, tokenizer,
                                                   cfg, bar, indexes)
                seconds[run.key] = round(time.perf_counter() - t0, 2)
                log.info("%s: %d rows done (%.0fs)", run.key, len(tasks), seconds[run.key])
        return runs, records, seconds
    finally:
        await backend.aclose()


def wants_gate(*, compare: bool = False, incumbent: str | Path | None = None, incumbent_id: str | None = None,
               gate_only: bool = False) -> bool:
    """Whether an exam with a candidate decides the gate: with --compare, an incumbent, or --gate-only."""
    return compare or incumbent is not None or incumbent_id is not None or gate_only


def _check_gate_flags(tuned_id: str | None, backend_url: str | None, compare: bool, incumbent: str | Path | None,
                      incumbent_id: str | None, gate_only: bool) -> None:
    if backend_url is None and incumbent_id is not None:
        raise ConfigError("--incumbent-id names an adapter on a running server: give --backend-url too")
    if backend_url is not None and incumbent is not None and incumbent_id is None:
        raise ConfigError("--backend-url with --incumbent: give --incumbent-id, the incumbent's id on that server")
    if (incumbent is not None or incumbent_id is not None or gate_only) and tuned_id is None:
        raise ConfigError("the gate needs the candidate: --adapter (or --adapter-id with --backend-url)")
    if gate_only and compare:
        raise ConfigError("--gate-only grades the gate's runs only and --compare every mode of the base: give one")
    if incumbent_id is not None and incumbent_id == tuned_id:
        raise ConfigError(f"--incumbent-id {incumbent_id!r} is the candidate's --adapter-id: the gate compares two "
                          "adapters")


def run_exam(base: str | Path, dataset: str | Path, out: str | Path, cfg: EvalConfig, *,
             adapter: str | Path | None = None, compare: bool = False, overwrite: bool = False,
             backend_url: str | None = None, adapter_id: str | None = None, api_key_file: str | None = None,
             run_metadata: dict[str, str] | None = None, incumbent: str | Path | None = None,
             incumbent_id: str | None = None, gate_only: bool = False) -> dict[str, Any]:
    """Run the exam and write report.json, report.md, examples.jsonl and the charts into `out`.

    Without `backend_url` the exam starts `inhouse serve` with `base` (and `adapter`, and `incumbent`); with it,
    it grades that server, the tuned runs on `adapter_id` and the incumbent's on `incumbent_id` (profiles from
    /info, else from the directories). With an incumbent, --gate-only or --compare the report holds the gate
    (finetune/gate.py): the candidate against the incumbent, else against the base in its own profile.
    """
    from finetune import gate as G
    from finetune.report import write_report

    base, dataset, out = Path(base), Path(dataset), Path(out)
    check_model_dirs(base, adapter)
    check_model_dirs(base, incumbent, "--incumbent")
    if backend_url is None and adapter_id is not None:
        raise ConfigError("--adapter-id names an adapter on a running server: give --backend-url too")
    if backend_url is not None and adapter is not None and adapter_id is None:
        raise ConfigError("--backend-url with --adapter: give --adapter-id, the adapter's id on that server")
    tuned_id = adapter_id if backend_url is not None else (TUNED_ID if adapter is not None else None)
    if compare and tuned_id is None:
        raise ConfigError("--compare needs the tuned model: --adapter (or --adapter-id with --backend-url)")
    _check_gate_flags(tuned_id, backend_url, compare, incumbent, incumbent_id, gate_only)
    inc_id = incumbent_id if backend_url is not None else (INCUMBENT_ID if incumbent is not None else None)
    gate = tuned_id is not None and wants_gate(compare=compare, incumbent=incumbent, incumbent_id=incumbent_id,
                                               gate_only=gate_only)
    manifest = D.read_manifest(dataset)
    tasks = load_tasks(dataset, cfg.limit, cfg.seed)
    documents = load_documents(dataset)
    references = [M.parse_span(t.language, t.prefix, t.middle, t.suffix) for t in tasks]
    tokenizer = load_tokenizer(base)
    editor: dict[str, str] = {}

    def runs_for(info: BackendInfo) -> list[Run]:
        base_profile = _profile(info, None, base, "the base model")
        tuned_profile = _profile(info, tuned_id, Path(adapter) if adapter else None, f"adapter {tuned_id!r}") \
            if tuned_id else None
        inc_profile = _profile(info, inc_id, Path(incumbent) if incumbent else None, f"incumbent {inc_id!r}") \
            if inc_id else None
        editor.update(base=base_profile.mode, **({"tuned": tuned_profile.mode} if tuned_profile else {}),
                      **({"incumbent": inc_profile.mode} if inc_profile else {}))
        runs = plan_runs(base_profile, tuned_profile, tuned_id, cfg, compare=compare, gate=gate, gate_only=gate_only,
                         incumbent_profile=inc_profile, incumbent_id=inc_id)
        log.info("exam: %d rows, runs %s", len(tasks), ", ".join(r.key for r in runs))
        return runs

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inhouse-exam-") as scratch:
        if backend_url is not None:
            runs, records, seconds = asyncio.run(grade_all(backend_url, runs_for, tasks, documents, references,
                                                           tokenizer, cfg, api_key_file))
        else:
            served = {TUNED_ID: Path(adapter)} if adapter else {}
            if incumbent is not None:
                served[INCUMBENT_ID] = Path(incumbent)
            with exam_server(base, served, cfg, Path(scratch) / "serve.log") as url:
                runs, records, seconds = asyncio.run(grade_all(url, runs_for, tasks, documents, references,
                                                               tokenizer, cfg))
    summary: dict[str, dict[str, Any]] = {}
    for run in runs:
        recs = records[run.key]
        summary[run.key] = dict(summarize_run(recs), seconds=seconds[run.key], profile=run.profile.to_dict(),
                                profile_text=run.profile.describe())
        log.info("%s: exact match %.3f, edit similarity %.3f (%.0fs)", run.key,
                 summary[run.key]["overall"]["exact_match"], summary[run.key]["overall"]["edit_similarity"],
                 seconds[run.key])

    comparisons = []
    headline = None
    if compare:
        base_best = best_mode(summary, "base")
        tuned_keys = [r.key for r in runs if r.key.startswith("tuned/")]
        tuned_main = f"tuned/{editor['tuned']}"
        for key in tuned_keys:
            comparisons.append(dict(compare_runs(records, base_best, key, cfg), role="tuned vs base best mode"))
            same = "base/" + key.split("/", 1)[1]
            if same in records and same != base_best:
                comparisons.append(dict(compare_runs(records, same, key, cfg), role="tuned vs base, same mode"))
        headline = {"base_best_mode": base_best, "tuned_mode": tuned_main,
                    **next(c for c in comparisons if c["a"] == base_best and c["b"] == tuned_main)}
    decision = None
    if gate:
        def compared(a: str, b: str, role: str) -> dict[str, Any]:
            found = next((c for c in comparisons if c["a"] == a and c["b"] == b), None)
            if found is None:
                found = dict(compare_runs(records, a, b, cfg), role=role)
                comparisons.append(found)
            return found

        candidate, base_own = f"tuned/{editor['tuned']}", f"base/{editor['base']}"
        versus_base = compared(base_own, candidate, "candidate vs base, own profiles")
        if inc_id is not None:
            compared(base_own, f"incumbent/{editor['incumbent']}", "incumbent vs base, own profiles")
            decision = G.judge(compared(f"incumbent/{editor['incumbent']}", candidate,
                                        "candidate vs incumbent, own profiles"), "incumbent", cfg)
        else:
            decision = G.judge(versus_base, "base", cfg)
        log.info("gate against the %s: %s", decision["against"],
                 "eligible" if decision["eligible"] else "not eligible")
    report = {
        "dataset": str(dataset.resolve()), "dataset_manifest_sha256": D.manifest_hash(dataset),
        "base": str(base.resolve()), "adapter": str(Path(adapter).resolve()) if adapter else None,
        "adapter_info": read_info(adapter) if adapter else None,  # step and elapsed_s for learning curves
        "backend": backend_url or "embedded (inhouse serve, started by the exam)", "adapter_id": tuned_id,
        "incumbent": str(Path(incumbent).resolve()) if incumbent else None, "incumbent_id": inc_id,
        "incumbent_info": read_info(incumbent) if incumbent else None, "gate": decision,
        "editor_profiles": {k: f"{k}/{v}" for k, v in editor.items()},
        "fim_format": runs[0].profile.fim_format, "n": len(tasks), "config": to_dict(cfg), "runs": summary,
        "comparisons": comparisons, "headline": headline, "seconds": round(time.perf_counter() - started, 1),
        "splits": manifest.get("splits"), **(run_metadata or {}),
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        with open(tmp / "examples.jsonl", "w", encoding="utf-8") as fh:
            for key, recs in records.items():
                for rec in recs:
                    fh.write(json.dumps({"run": key, **rec.to_dict()}) + "\n")
        with open(tmp / "tasks.jsonl", "w", encoding="utf-8") as fh:
            for t in tasks:
                fh.write(json.dumps(asdict(t)) + "\n")
        write_report(tmp, report)
    return report
