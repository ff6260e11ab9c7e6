"""`inhouse lsp`: start the language server on stdio (what editors launch) or TCP (for debugging)."""

from __future__ import annotations

import logging

import typer

from core.errors import ConfigError


def lsp(
    ctx: typer.Context,
    tcp: str | None = typer.Option(None, "--tcp", help="Listen on HOST:PORT instead of stdio (for debugging)."),
    stdio: bool = typer.Option(True, "--stdio/--no-stdio", help="Speak LSP on stdin/stdout (the default)."),
    backend_url: str | None = typer.Option(None, "--backend-url", help="Completion backend (default from config)."),
    backend_kind: str | None = typer.Option(None, "--backend-kind", help="tgi or openai."),
    adapter: str | None = typer.Option(None, "--adapter", help="LoRA adapter id to complete with."),
    fim_format: str | None = typer.Option(None, "--fim-format", help="FIM format (default: from the backend)."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="tokenizer.json or model directory."),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the language server (inline completions for any LSP editor)."""
    from core.config import resolve_section
    from lsp.config import LspConfig
    from lsp.handlers import create_server

    cfg = resolve_section(ctx.obj, LspConfig, backend_url=backend_url, backend_kind=backend_kind, adapter=adapter,
                          fim_format=fim_format, tokenizer=tokenizer, log_level=log_level)
    # Logs go to stderr (stdout carries JSON-RPC); the root handler is set up by the CLI entry point.
    logging.getLogger("lsp").setLevel(cfg.log_level.upper())
    logging.getLogger("core").setLevel(cfg.log_level.upper())
    server = create_server(cfg)
    if tcp:
        host, _, port = tcp.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"`--tcp` must be HOST:PORT, got {tcp!r}")
        server.start_tcp(host, int(port))
    elif stdio:
        server.start_io()
    else:
        raise ConfigError("`--no-stdio` needs `--tcp HOST:PORT`")
