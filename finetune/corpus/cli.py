"""`inhouse corpus build` and `inhouse corpus stats`: the command-line face of the corpus builder.

Imports nothing heavy at module top; the pipeline loads inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Turn repositories into a fill-in-the-middle dataset and an exam.", no_args_is_help=True)


@app.command("build")
def build(
    ctx: typer.Context,
    repos: list[Path] = typer.Argument(None, metavar="REPO...", help="Repository directories (git or plain)."),
    out: Path = typer.Option(..., "-o", "--out", help="Dataset directory to create."),
    repos_file: Path | None = typer.Option(None, "--repos", help=(
        "repos.toml listing name, path or git url (+ ref), team, visibility.")),
    model: Path | None = typer.Option(None, "--model", help="Model directory: its tokenizer and FIM format."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="A tokenizer.json (needs --fim-format)."),
    fim_format: str | None = typer.Option(None, "--fim-format", help="FIM format name (default: the model's)."),
    eval_since: str | None = typer.Option(None, "--eval-since", help=(
        "Exam = files whose last commit is at or after YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[+HH:MM] (UTC default).")),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (same input + seed = same bytes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes (default: all cores)."),
    executor: str | None = typer.Option(None, "--executor", help='"local" (default): this host; "ray": a Ray cluster.'),
    ray_address: str | None = typer.Option(None, "--ray-address", help="HOST:PORT of the Ray head (--executor ray)."),
    ray_workers: int | None = typer.Option(None, "--ray-workers", help=(
        "Map actors on the Ray cluster, one CPU each (default: one per CPU of the cluster).")),
    clone_dir: Path | None = typer.Option(None, "--clone-dir", metavar="DIR", help=(
        "Where repositories given by url are cloned on each host (default ~/.cache/inhouse/repos).")),
    eval_fraction: float | None = typer.Option(None, "--eval-fraction", help="Share of files for the exam."),
    dev_fraction: float | None = typer.Option(None, "--dev-fraction", help="Share of files for the dev split."),
    max_examples_per_file: int | None = typer.Option(None, "--max-examples-per-file",
                                                     help="Training rows drawn from each file."),
    token_budgets: str | None = typer.Option(None, "--token-budgets",
                                             help='"exact" (default) or "estimate" (approximate cuts, no faster).'),
    cache_dir: Path | None = typer.Option(None, "--cache", metavar="DIR",
                                          help="Per-file cache: only files whose content changed are processed."),
    cache_max_gb: float | None = typer.Option(None, "--cache-max-gb",
                                              help="After the build, trim the cache to this size (0: no limit)."),
    cache_max_age_days: float | None = typer.Option(None, "--cache-max-age-days",
                                                    help="After the build, drop entries unused this long (0: keep)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar on stderr."),
) -> None:
    """Build DATASET from repositories: filter, redact secrets, dedup, split, select spans, render, write."""
    from core.artifacts import run_metadata
    from core.config import resolve_section
    from finetune.corpus import repos as repos_mod
    from finetune.corpus.config import CorpusConfig
    from finetune.corpus.pipeline import build as run

    cfg = resolve_section(
        ctx.obj, CorpusConfig, model=str(model) if model else None, tokenizer=str(tokenizer) if tokenizer else None,
        fim_format=fim_format, eval_since=eval_since, seed=seed, workers=workers, eval_fraction=eval_fraction,
        dev_fraction=dev_fraction, max_examples_per_file=max_examples_per_file, token_budgets=token_budgets,
        executor=executor, ray_address=ray_address, ray_workers=ray_workers,
        clone_dir=str(clone_dir) if clone_dir else None, cache_dir=str(cache_dir) if cache_dir else None,
        cache_max_gb=cache_max_gb, cache_max_age_days=cache_max_age_days)
    specs = repos_mod.from_paths(list(repos or []))
    if repos_file is not None:
        specs += repos_mod.read_repos_toml(repos_file)
    manifest = run(specs, out, cfg, overwrite=overwrite, progress=not no_progress, run_metadata=run_metadata())
    splits = manifest["splits"]
    typer.echo(f"wrote {out}: {manifest['files']} files, train {splits['train']} / dev {splits['dev']} / "
               f"eval {splits['eval']} rows ({manifest['fim_format']})" + _cache_summary(manifest.get("cache")))


def _cache_summary(info: dict | None) -> str:
    if not info:
        return ""
    return (f"; cache: {info['files_processed']} files processed, {info['files_cached']} from the cache "
            f"({info['spans_processed']} / {info['spans_cached']} span choices)")


def _table(title: str, rows: dict, columns: tuple[str, ...] | None = None):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    if columns is None:
        table.add_column("name")
        table.add_column("count", justify="right")
        for key, value in rows.items():
            table.add_row(str(key), str(value))
        return table
    table.add_column("name")
    for col in columns:
        table.add_column(col, justify="right")
    for key, value in rows.items():
        table.add_row(str(key), *(str(value.get(col, 0)) for col in columns))
    return table


@app.command("stats")
def stats(dataset: Path = typer.Argument(..., help="A dataset directory written by `corpus build`.")) -> None:
    """Print a dataset's manifest as tables: per language, per filter, per span kind, secrets, splits."""
    from rich.console import Console

    from core.errors import CorpusError

    path = dataset / "manifest.json"
    if not path.is_file():
        raise CorpusError(f"{str(dataset)!r} is not a corpus dataset (no manifest.json)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: unreadable: {exc}") from exc
    console = Console()
    counts = manifest.get("counts", {})
    console.print(f"dataset {dataset}  format {manifest.get('fim_format')}  tokenizer {manifest.get('tokenizer')}  "
                  f"inhouse {manifest.get('inhouse_version')} ({manifest.get('git_sha')})")
    if manifest.get("eval_cutoff"):
        console.print(f"exam: files whose last commit is at or after {manifest['eval_cutoff']}", soft_wrap=True)
    if manifest.get("cache"):
        console.print(f"cache {manifest['cache']['dir']}:{_cache_summary(manifest['cache'])[len('; cache:'):]}",
                      soft_wrap=True)
    repos = {r["name"]: {"commit": (r.get("commit") or "-")[:12], "discovery": r.get("discovery"),
                         "candidates": r.get("candidates")} for r in manifest.get("repos", [])}
    console.print(_table("repositories", repos, ("commit", "discovery", "candidates")))
    languages = manifest.get("languages", {})
    console.print(_table("per language", languages, ("files", "bytes", "train_rows", "dev_rows", "eval_rows")))
    console.print(_table("filter (files)", counts.get("filter", {})))
    console.print(_table("secrets", counts.get("secrets", {})))
    console.print(_table("dedup", counts.get("dedup", {})))
    console.print(_table("split", counts.get("split", {})))
    kinds: dict[str, dict[str, int]] = {}
    for split_name in ("train", "dev", "eval"):
        for kind, n in counts.get(f"kinds_{split_name}", {}).items():
            kinds.setdefault(kind, {})[split_name] = n
    console.print(_table("span kinds (rows)", dict(sorted(kinds.items())), ("train", "dev", "eval")))
    console.print(_table("render", counts.get("render", {})))
    console.print(_table("parse", counts.get("parse", {})))
    console.print(_table("rows per split", manifest.get("splits", {})))
