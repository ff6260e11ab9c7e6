"""`inhouse eval`: the company's exam on held-out files, scored like the language server would be used.

For each eval row and prompting mode (left-to-right, FIM PSM, FIM SPM; each without and with repository
context from `core.completion.context.select_context`), the prompt is built by `core.completion.prompt.
build_prompt`, the middle generated greedily in-process, post-processed by `core.completion.postprocess`
with `decide(...).multiline`, and scored (finetune/metrics.py). `--compare` scores the base in every mode and
the tuned model, and compares the tuned model with the base's best mode with paired bootstrap intervals.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core import fim
from core.artifacts import atomic_directory, read_info
from core.config import to_dict
from core.errors import ConfigError, CorpusError
from core.healing import strip_healed
from finetune import data as D
from finetune import metrics as M
from finetune.config import EvalConfig
from finetune.generate import Generator, GenRequest, check_model_dirs, load_model

log = logging.getLogger(__name__)

HEADLINE_METRICS = ("exact_match", "edit_similarity")
COMPARED_METRICS = M.METRICS


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


@dataclass(frozen=True)
class Prepared:
    request: GenRequest
    multiline: bool


def prepare(task: Task, mode: str, fmt: fim.FimFormat, tokenizer, cfg: EvalConfig,
            documents: dict[str, dict[str, str]]) -> Prepared:
    """The prompt the language server would send for this cursor in this mode."""
    from core.completion.context import select_context
    from core.completion.prompt import CHARS_PER_TOKEN, PromptBudget, build_prompt
    from core.completion.should_complete import decide

    order, _, ctx = mode.partition("+")
    decision = decide(task.prefix, task.suffix, task.language)
    context = ()
    if ctx and fmt.has_repo_layout:
        others = {p: c for p, c in documents.get(task.repo, {}).items() if p != task.path}
        chars = int(cfg.max_prompt_tokens * cfg.context_share * CHARS_PER_TOKEN)
        context = select_context(task.path, task.prefix, task.suffix, others, task.language, chars)
    heal = cfg.heal and order in ("l2r", "spm")
    budget = PromptBudget(max_prompt_tokens=cfg.max_prompt_tokens, suffix_share=cfg.suffix_share,
                          context_share=cfg.context_share if ctx else 0.0)
    built = build_prompt(task.prefix, task.suffix, fmt, budget=budget, tokenizer=tokenizer, context=context,
                         path=task.path if ctx else "", repo_name=task.repo if ctx else "",
                         mode="spm" if order == "spm" else "psm", heal=heal)
    prompt = built.prompt
    if order == "l2r":  # the same prefix (cut and rewound), as plain text after the repository layout
        repo_ctx = fim.RepoContext(task.repo, task.path, built.context) if ctx else None
        prompt = fmt.render_l2r(built.prefix, repo_ctx)[:-len(fmt.eot)]
    max_new = cfg.max_new_tokens_multiline if decision.multiline else cfg.max_new_tokens
    return Prepared(GenRequest(prompt, built.heal, max_new, not decision.multiline), decision.multiline)


def run_mode(gen: Generator, tasks: list[Task], mode: str, cfg: EvalConfig, documents, references) -> list[dict]:
    """Complete and score every task in one mode; one record per task, in task order."""
    from core.completion.postprocess import PostprocessContext, postprocess

    counter_tok = getattr(gen.tokenizer, "backend_tokenizer", gen.tokenizer)  # a `tokenizers.Tokenizer`
    prepared = [prepare(t, mode, gen.fmt, counter_tok, cfg, documents) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: (prepared[i].multiline, len(prepared[i].request.prompt)))
    records: list[dict | None] = [None] * len(tasks)
    for start in range(0, len(order), cfg.batch_size):
        batch = order[start:start + cfg.batch_size]
        results = gen.generate([prepared[i].request for i in batch])
        for i, res in zip(batch, results, strict=True):
            t, p = tasks[i], prepared[i]
            raw = strip_healed(res.text, p.request.heal)
            ctx = PostprocessContext(prefix=t.prefix, suffix=t.suffix, language_id=t.language,
                                     multiline=p.multiline, stop=gen.fmt.stop)
            completion = postprocess(raw, ctx)
            scores = M.score(t.prefix, t.middle, t.suffix, completion, t.language, references[i])
            records[i] = {"id": t.id, "kind": t.kind, "language": t.language, "completion": completion,
                          "raw": raw, "tokens": res.tokens, "latency_ms": res.latency_ms, **scores}
    return [r for r in records if r is not None]


def summarize_run(records: list[dict]) -> dict[str, Any]:
    return {"overall": M.summarize(records)["overall"], "by_kind": M.summarize(records, lambda r: r["kind"]),
            "by_language": M.summarize(records, lambda r: r["language"])}


def best_mode(runs: dict[str, dict[str, Any]], model: str) -> str:
    """The model's best mode on the exam: exact match, then edit similarity."""
    candidates = [name for name in runs if name.startswith(f"{model}/")]
    return max(candidates, key=lambda n: (runs[n]["overall"]["exact_match"], runs[n]["overall"]["edit_similarity"]))


def compare_runs(records: dict[str, list[dict]], a: str, b: str, cfg: EvalConfig) -> dict[str, Any]:
    """b - a for every metric, overall and per span kind, with paired bootstrap 95% intervals."""
    ra, rb = records[a], records[b]
    out: dict[str, Any] = {"a": a, "b": b, "overall": {}, "by_kind": {}}
    for metric in COMPARED_METRICS:
        out["overall"][metric] = M.paired_bootstrap([r[metric] for r in ra], [r[metric] for r in rb],
                                                    cfg.bootstrap, cfg.seed).as_dict()
    for kind in sorted({r["kind"] for r in ra}):
        idx = [i for i, r in enumerate(ra) if r["kind"] == kind]
        out["by_kind"][kind] = {m: M.paired_bootstrap([ra[i][m] for i in idx], [rb[i][m] for i in idx],
                                                      cfg.bootstrap, cfg.seed).as_dict() for m in HEADLINE_METRICS}
    return out


Plan = list[tuple[str, "Path | None", tuple[str, ...]]]  # (model name, adapter or None, modes)


def run_plan(base: Path, dataset: Path, plan: Plan, fmt: fim.FimFormat, tasks: list[Task],
             cfg: EvalConfig) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Every (model, mode) run of the plan on `tasks`: records per run key, and each run's seconds."""
    documents = load_documents(dataset)
    references = [M.parse_span(t.language, t.prefix, t.middle, t.suffix) for t in tasks]
    records: dict[str, list[dict]] = {}
    seconds: dict[str, float] = {}
    for name, adapter_dir, modes in plan:
        tokenizer, model = load_model(base, adapter_dir)
        gen = Generator(tokenizer, model, fmt)
        for mode in modes:
            t0 = time.perf_counter()
            key = f"{name}/{mode}"
            records[key] = run_mode(gen, tasks, mode, cfg, documents, references)
            seconds[key] = round(time.perf_counter() - t0, 2)
            log.info("%s: %d rows done (%.0fs)", key, len(tasks), seconds[key])
        del gen, model
    return records, seconds


def _shard(base: Path, dataset: Path, plan: Plan, fmt_name: str, cfg: EvalConfig, tasks: list[Task], index: int,
           count: int, log_level: int) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """One worker process: its share of the exam's rows, every run of the plan."""
    import torch

    logging.basicConfig(level=log_level, format=f"%(asctime)s exam worker {index + 1}/{count}: %(message)s")
    torch.set_num_threads(max(1, cfg.threads // count) if cfg.threads else 1)
    return run_plan(base, dataset, plan, fim.get_format(fmt_name), tasks, cfg)


def _run_sharded(base: Path, dataset: Path, plan: Plan, fmt_name: str, cfg: EvalConfig, tasks: list[Task],
                 workers: int) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """The rows dealt round-robin to `workers` processes; records merged back in task order.

    On a CPU, N one-thread processes keep N cores busier than one N-thread process does: greedy decoding of a
    small model spends much of its time in per-token overhead that one process cannot spread over threads.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_shard, base, dataset, plan, fmt_name, cfg, tasks[k::workers], k, workers, level)
                   for k in range(workers)]
        parts = [f.result() for f in futures]
    records: dict[str, list[dict]] = {}
    for key in parts[0][0]:
        total = sum(len(p[0][key]) for p in parts)
        merged: list[dict] = [{}] * total
        for k, (recs, _) in enumerate(parts):
            merged[k::workers] = recs[key]
        records[key] = merged
    seconds = {key: max(p[1][key] for p in parts) for key in records}
    return records, seconds


def run_exam(base: str | Path, dataset: str | Path, out: str | Path, cfg: EvalConfig, *,
             adapter: str | Path | None = None, compare: bool = False,
             overwrite: bool = False, run_metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the exam and write report.json, report.md, examples.jsonl and the charts into `out`."""
    import torch

    from finetune.report import write_report

    base, dataset, out = Path(base), Path(dataset), Path(out)
    check_model_dirs(base, adapter)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    manifest = D.read_manifest(dataset)
    fmt_name = (read_info(adapter).get("fim_format") if adapter else None) or read_info(base).get("fim_format") \
        or manifest.get("fim_format")
    if not fmt_name:
        raise ConfigError("no FIM format: neither the model's inhouse.json nor the dataset manifest names one")
    fmt = fim.get_format(fmt_name)
    tasks = load_tasks(dataset, cfg.limit, cfg.seed)
    plan: Plan = []
    if adapter is None or compare:
        plan.append(("base", None, cfg.modes))
    if adapter is not None:
        plan.append(("tuned", Path(adapter), cfg.tuned_modes or cfg.modes))
    workers = max(1, min(cfg.workers, len(tasks)))
    log.info("exam: %d rows, %s, %d worker(s)", len(tasks), ", ".join(f"{n} x {len(m)} modes" for n, _, m in plan),
             workers)

    started = time.perf_counter()
    if workers > 1:
        records, seconds = _run_sharded(base, dataset, plan, fmt.name, cfg, tasks, workers)
    else:
        records, seconds = run_plan(base, dataset, plan, fmt, tasks, cfg)
    runs: dict[str, dict[str, Any]] = {}
    for key, recs in records.items():
        runs[key] = dict(summarize_run(recs), seconds=seconds[key])
        log.info("%s: exact match %.3f, edit similarity %.3f (%.0fs)", key, runs[key]["overall"]["exact_match"],
                 runs[key]["overall"]["edit_similarity"], seconds[key])

    comparisons = []
    headline = None
    if compare:
        base_best = best_mode(runs, "base")
        primary = read_info(adapter).get("primary_mode")
        tuned_modes = [k for k in runs if k.startswith("tuned/")]
        tuned_main = f"tuned/{primary}" if f"tuned/{primary}" in runs else tuned_modes[0]
        for key in tuned_modes:
            comparisons.append(dict(compare_runs(records, base_best, key, cfg), role="tuned vs base best mode"))
            same = "base/" + key.split("/", 1)[1]
            if same in records and same != base_best:
                comparisons.append(dict(compare_runs(records, same, key, cfg), role="tuned vs base, same mode"))
        headline = {"base_best_mode": base_best, "tuned_mode": tuned_main,
                    **next(c for c in comparisons if c["a"] == base_best and c["b"] == tuned_main)}
    report = {
        "dataset": str(dataset.resolve()), "dataset_manifest_sha256": D.manifest_hash(dataset),
        "base": str(base.resolve()), "adapter": str(Path(adapter).resolve()) if adapter else None,
        "adapter_info": read_info(adapter) if adapter else None,  # step and elapsed_s for learning curves
        "fim_format": fmt.name, "n": len(tasks), "config": to_dict(cfg), "runs": runs,
        "comparisons": comparisons, "headline": headline, "seconds": round(time.perf_counter() - started, 1),
        "splits": manifest.get("splits"), **(run_metadata or {}),
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        with open(tmp / "examples.jsonl", "w", encoding="utf-8") as fh:
            for key, recs in records.items():
                for rec in recs:
                    fh.write(json.dumps({"run": key, **rec}) + "\n")
        with open(tmp / "tasks.jsonl", "w", encoding="utf-8") as fh:
            for t in tasks:
                fh.write(json.dumps(asdict(t)) + "\n")
        write_report(tmp, report)
    return report
