"""The `inhouse` console script: one Typer app with a sub-app or command per component.

This is the composition root and the process edge: it may import every component (through the table below,
by module path), puts the `--config` path in Typer's context for each command to resolve its own section,
sets up logging, catches every error and prints one clear line (a traceback only with --debug). The components'
CLI modules import nothing heavy (torch and friends load inside the commands).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from core import __version__
from core.artifacts import git_sha
from core.config import Invocation
from core.errors import InhouseError
from core.usage import no_usage_reports

# (name on the command line, "module:attribute", "group" for a Typer sub-app or "command" for a function)
COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("corpus", "finetune.corpus.cli:app", "group"),
    ("train", "finetune.cli:train", "command"),
    ("eval", "finetune.cli:eval_command", "command"),
    ("dpo", "finetune.cli:dpo", "command"),
    ("export", "finetune.cli:export", "command"),
    ("model", "finetune.model_cli:app", "group"),
    ("serve", "server.cli:serve", "command"),
    ("lsp", "lsp.cli:lsp", "command"),
    ("verif-env", "verifenv.cli:verif_env", "command"),
    ("gateway", "gateway.cli:gateway", "command"),
    ("admin", "gateway.cli:app", "group"),
    ("adapters", "gateway.registry_cli:app", "group"),
    ("cycle", "flywheel.cli:cycle", "command"),
)

# The config modules of every component: imported so `--config` files are checked against all sections.
CONFIG_MODULES = ("finetune.corpus.config", "finetune.config", "server.config", "lsp.config", "verifenv.config",
                  "core.client", "gateway.config", "flywheel.config")

app = typer.Typer(
    name="inhouse",
    help="inhouse: a private, on-premises code assistant trained on your own repositories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default: ./inhouse.toml)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
) -> None:
    ctx.obj = Invocation(config_file=config, debug=debug)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config is not None and not config.is_file():
        raise InhouseError(f"config file {str(config)!r} does not exist")


@app.command()
def version() -> None:
    """Print the version and the git sha."""
    typer.echo(f"inhouse {__version__} (git {git_sha()})")


@app.command()
def doctor() -> None:
    """Check the installation: tree-sitter grammars, optional components."""
    from core import languages

    ok = True
    for lang_id, problem in languages.available().items():
        typer.echo(f"{'ok  ' if problem is None else 'FAIL'} grammar {lang_id}" + (f": {problem}" if problem else ""))
        ok = ok and problem is None
    for name, target, _kind in COMPONENTS:
        module = target.split(":")[0]
        try:
            importlib.import_module(module)
            typer.echo(f"ok   component {name}")
        except Exception as exc:  # report, never crash: this is the diagnosis command
            ok = False
            typer.echo(f"FAIL component {name}: {exc}")
    raise typer.Exit(0 if ok else 1)


def _unavailable(name: str, error: Exception) -> Callable[[], None]:
    def command() -> None:
        raise InhouseError(f"`inhouse {name}` is not available in this installation: {error}")

    command.__doc__ = f"(unavailable: {error})"
    return command


def _register() -> None:
    for name, target, kind in COMPONENTS:
        module_name, attr = target.split(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # the component is not part of this installation
            obj, kind = _unavailable(name, exc), "command"
        except (ImportError, AttributeError) as exc:
            obj, kind = _unavailable(name, exc), "command"
        if kind == "group":
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


def _load_config_modules() -> None:
    for module in CONFIG_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    no_usage_reports()
    debug = "--debug" in argv or os.environ.get("INHOUSE_DEBUG") == "1"
    _load_config_modules()
    _register()
    try:
        # Outside standalone mode, typer returns a command's `typer.Exit` code, and 130 for Ctrl-C.
        code = app(args=argv, prog_name="inhouse", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("inhouse: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("inhouse: interrupted", err=True)
        return 130
    except Exception as exc:  # the process edge: one clear line, a traceback only with --debug
        # A usage error from the command-line parser (typer vendors click privately, so it is known by what it
        # offers): its own message, exit 2.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        if debug:
            raise
        prefix = "error" if isinstance(exc, InhouseError) else f"unexpected error ({type(exc).__name__})"
        typer.echo(f"inhouse: {prefix}: {exc}", err=True)
        if not isinstance(exc, InhouseError):
            typer.echo("inhouse: run again with --debug for the traceback", err=True)
        return 2 if isinstance(exc, InhouseError) else 1
    if code == 130:
        typer.echo("inhouse: interrupted", err=True)
    return code if isinstance(code, int) else 0



if __name__ == "__main__":
    sys.exit(main())
