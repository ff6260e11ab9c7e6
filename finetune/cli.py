"""`inhouse train`, `inhouse eval`, `inhouse dpo` and `inhouse export`: flags → resolved config → the work in
train/exam/dpo/export.

Plain functions with typer options, registered by app/cli.py. Nothing heavy is imported here: torch,
transformers and peft load inside the commands.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from core.errors import ConfigError

log = logging.getLogger(__name__)

GATE_REFUSED_EXIT = 3  # `inhouse eval --gate-exit-code`: the candidate is not eligible


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def train(
    ctx: typer.Context,
    base: Path = typer.Option(..., "--base", help="Base model directory (config.json, tokenizer, inhouse.json)."),
    data: Path = typer.Option(..., "--data", help="Dataset directory written by `inhouse corpus build`."),
    out: Path = typer.Option(..., "-o", "--out", help="Adapter directory to write."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last complete checkpoint in --out."),
    init_adapter: Path | None = typer.Option(None, "--init-adapter",
                                             help="Start from this adapter (its LoRA config and weights) instead "
                                                  "of a fresh LoRA: continued training for the same base."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="Time budget; stop and save when spent."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps (0: from --epochs)."),
    epochs: float | None = typer.Option(None, "--epochs"),
    lr: float | None = typer.Option(None, "--lr"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Sequences per micro-batch per process."),
    grad_accum: int | None = typer.Option(None, "--grad-accum"),
    seq_len: int | None = typer.Option(None, "--seq-len"),
    loss: str | None = typer.Option(None, "--loss", help="full (sentinels masked) or middle."),
    objectives: str | None = typer.Option(None, "--objectives", help="Comma list of psm, spm, l2r."),
    lora_r: int | None = typer.Option(None, "--lora-r"),
    lora_alpha: int | None = typer.Option(None, "--lora-alpha"),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout"),
    pack: bool | None = typer.Option(None, "--pack/--no-pack", help="Pack several examples per sequence."),
    eval_every: int | None = typer.Option(None, "--eval-every", help="Dev loss every N steps."),
    save_every: int | None = typer.Option(None, "--save-every", help="Checkpoint every N steps."),
    keep_checkpoints: int | None = typer.Option(None, "--keep-checkpoints", help="Newest checkpoints kept (+ best)."),
    dev_limit: int | None = typer.Option(None, "--dev-limit", help="Dev rows scored at each evaluation."),
    bf16: bool | None = typer.Option(None, "--bf16/--no-bf16", help="bf16 mixed precision (CUDA)."),
    qlora: bool | None = typer.Option(None, "--qlora/--no-qlora", help="4-bit base weights (CUDA, bitsandbytes)."),
    gradient_checkpointing: bool | None = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing"),
    seed: int | None = typer.Option(None, "--seed"),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch (0: default)."),
    data_workers: int | None = typer.Option(None, "--data-workers", help="Processes tokenizing the data (0: auto)."),
    report_to: str | None = typer.Option(None, "--report-to", help="tensorboard or mlflow (accelerate's trackers)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """LoRA-tune a base model on a corpus dataset (the best checkpoint on the dev split is kept)."""
    from core.artifacts import run_metadata
    from core.config import resolve_section
    from finetune.config import TrainConfig
    from finetune.train import train as run

    cfg = resolve_section(
        ctx.obj, TrainConfig, max_minutes=max_minutes, max_steps=max_steps, epochs=epochs, lr=lr, batch_size=batch_size,
        grad_accum=grad_accum, seq_len=seq_len, loss=loss, objectives=_csv(objectives), lora_r=lora_r,
        lora_alpha=lora_alpha, lora_dropout=lora_dropout, pack=pack, eval_every=eval_every, save_every=save_every,
        keep_checkpoints=keep_checkpoints, dev_limit=dev_limit,
        bf16=bf16, qlora=qlora, gradient_checkpointing=gradient_checkpointing, seed=seed, threads=threads,
        data_workers=data_workers, report_to=report_to)
    lora_flags = {"lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout}
    run(base, data, out, cfg, resume=resume, overwrite=overwrite, progress=not no_progress,
        run_metadata=run_metadata(), init_adapter=init_adapter,
        lora_given={name for name, value in lora_flags.items() if value is not None})
    typer.echo(f"wrote {out}", err=True)


def dpo(
    ctx: typer.Context,
    base: Path = typer.Option(..., "--base", help="Base model directory."),
    adapter: Path = typer.Option(..., "--adapter", help="The current adapter (the start, and DPO's reference)."),
    preferences: Path = typer.Option(..., "--preferences", help="JSONL pairs from `inhouse admin suggestions "
                                                                "export`."),
    out: Path = typer.Option(..., "-o", "--out", help="Adapter directory to write."),
    beta: float | None = typer.Option(None, "--beta", help="DPO beta (default 0.1)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps (0: one pass over the pairs)."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="Time budget; stop and save when spent."),
    lr: float | None = typer.Option(None, "--lr"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Pairs per optimizer step."),
    seed: int | None = typer.Option(None, "--seed"),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch (0: default)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Preference-tune an adapter (DPO, TRL) on what users kept over what they were shown."""
    from core.artifacts import run_metadata
    from core.config import resolve_section
    from finetune.config import DpoConfig
    from finetune.dpo import dpo as run

    cfg = resolve_section(ctx.obj, DpoConfig, beta=beta, max_steps=max_steps, max_minutes=max_minutes, lr=lr,
                          batch_size=batch_size, seed=seed, threads=threads)
    run(base, adapter, preferences, out, cfg, overwrite=overwrite, run_metadata=run_metadata())
    typer.echo(f"wrote {out}", err=True)


def eval_command(
    ctx: typer.Context,
    base: Path = typer.Option(..., "--base", help="Base model directory."),
    data: Path = typer.Option(..., "--data", help="Dataset directory (its eval split is the exam)."),
    out: Path = typer.Option(..., "-o", "--out", help="Report directory to write."),
    adapter: Path | None = typer.Option(None, "--adapter", help="Adapter directory from `inhouse train`."),
    compare: bool = typer.Option(False, "--compare", help="Score the base in every mode and the tuned model."),
    curve: bool = typer.Option(False, "--curve", help="Learning curve: the base and every checkpoint of --adapter."),
    limit: int | None = typer.Option(None, "--limit", help="Score only N eval rows (0: all)."),
    modes: str | None = typer.Option(None, "--modes", help="Comma list of l2r, psm, spm, l2r+ctx, psm+ctx, spm+ctx."),
    tuned_modes: str | None = typer.Option(None, "--tuned-modes",
                                           help="Extra modes for the tuned model (default: only its own profile's)."),
    max_prompt_tokens: int | None = typer.Option(None, "--max-prompt-tokens",
                                                 help="Override every profile's prompt budget (0: the profiles')."),
    backend_url: str | None = typer.Option(None, "--backend-url",
                                           help="Grade this running server (inhouse serve, TGI, vLLM) instead of "
                                                "starting the embedded one."),
    adapter_id: str | None = typer.Option(None, "--adapter-id", help="With --backend-url: the adapter's id there."),
    incumbent: Path | None = typer.Option(None, "--incumbent",
                                          help="The gate's reference: the current adapter, graded on the same rows "
                                               "in its own profile (the candidate is --adapter)."),
    incumbent_id: str | None = typer.Option(None, "--incumbent-id",
                                            help="With --backend-url: the incumbent's adapter id there."),
    gate_only: bool = typer.Option(False, "--gate-only",
                                   help="Only the gate's runs: the base, the incumbent and the candidate, each in its "
                                        "own profile."),
    gate_exit_code: bool = typer.Option(False, "--gate-exit-code",
                                        help="Exit with status 3 when the candidate is not eligible."),
    api_key_file: Path | None = typer.Option(None, "--api-key-file", help="With --backend-url: its bearer token."),
    concurrency: int | None = typer.Option(None, "--concurrency", help="Requests in flight (default 8)."),
    bootstrap: int | None = typer.Option(None, "--bootstrap", help="Paired bootstrap resamples."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads of the embedded server (0: its choice)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """The exam: complete held-out middles, post-process them like the language server, score, compare; with
    --incumbent (or --gate-only) the gate: may the candidate --adapter replace the incumbent (or the base)?"""
    from core.artifacts import run_metadata
    from core.config import resolve_section
    from finetune.config import EvalConfig
    from finetune.exam import run_exam, wants_gate

    if curve and adapter is None:
        raise ConfigError("--curve needs --adapter (whose checkpoints are the curve's points)")
    if compare and adapter is None and adapter_id is None:
        raise ConfigError("--compare needs --adapter (or --adapter-id with --backend-url): the tuned model to "
                          "compare with the base")
    if compare and curve:
        raise ConfigError("--compare and --curve are two runs: give one of them")
    gated = wants_gate(compare=compare, incumbent=incumbent, incumbent_id=incumbent_id, gate_only=gate_only)
    if curve and gated:
        raise ConfigError("--curve draws a learning curve, not a gate: drop --incumbent, --incumbent-id, --gate-only")
    if gate_exit_code and not gated:
        raise ConfigError("--gate-exit-code needs a gate: give --incumbent (--incumbent-id), --gate-only or "
                          "--compare")
    cfg = resolve_section(ctx.obj, EvalConfig, limit=limit, modes=_csv(modes), tuned_modes=_csv(tuned_modes),
                          max_prompt_tokens=max_prompt_tokens, concurrency=concurrency, bootstrap=bootstrap,
                          threads=threads)
    if curve:
        from finetune.curve import learning_curve

        assert adapter is not None  # --curve without --adapter was refused above
        learning_curve(base, adapter, data, out, cfg, overwrite=overwrite, run_metadata=run_metadata())
        typer.echo((out / "curve.md").read_text(encoding="utf-8"))
        return
    report = run_exam(base, data, out, cfg, adapter=adapter, compare=compare, overwrite=overwrite,
                      backend_url=backend_url, adapter_id=adapter_id,
                      api_key_file=str(api_key_file) if api_key_file else None, run_metadata=run_metadata(),
                      incumbent=incumbent, incumbent_id=incumbent_id, gate_only=gate_only)
    typer.echo((out / "report.md").read_text(encoding="utf-8") if (out / "report.md").is_file() else str(report))
    if gate_exit_code and report.get("gate") and not report["gate"]["eligible"]:
        raise typer.Exit(GATE_REFUSED_EXIT)


def export(
    adapter: Path = typer.Argument(..., help="Adapter directory from `inhouse train`."),
    out: Path = typer.Option(..., "-o", "--out", help="Directory to write."),
    merge: bool = typer.Option(False, "--merge", help="Merge into a full checkpoint (servers without LoRA)."),
    name: str | None = typer.Option(None, "--name", help="Adapter name for TGI/vLLM (default: directory name)."),
    base: Path | None = typer.Option(None, "--base", help="Base model (default: the one in inhouse.json)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Export an adapter: a TGI/vLLM layout with the commands to start each, or a merged checkpoint."""
    from finetune.export import export_layout, export_merged

    if merge:
        export_merged(adapter, out, base=base, overwrite=overwrite)
        typer.echo(f"wrote merged checkpoint {out}")
        return
    commands = export_layout(adapter, out, name=name, base=base, overwrite=overwrite)
    typer.echo(commands)
