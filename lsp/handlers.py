"""The LSP handlers of `inhouse lsp`: inline completions (LSP 3.18), a completion-item fallback, documents,
settings, commands and shutdown, each a thin function over `InhouseLanguageServer` (lsp/server.py), as pygls's
examples keep them. `create_server` is what the CLI and the tests start.

Every request handler catches everything at its edge: a failed completion answers an empty result and logs one
line; the server never crashes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from lsp.config import LspConfig
from lsp.indexer import index_in_background
from lsp.server import InhouseLanguageServer
from lsp.suggestions import ACCEPTED_COMMAND

log = logging.getLogger(__name__)

TOGGLE_COMMAND = "inhouse.toggle"


def _empty_inline() -> types.InlineCompletionList:
    return types.InlineCompletionList(items=[])


def create_server(cfg: LspConfig | None = None) -> InhouseLanguageServer:
    """The server with every feature registered (a fresh instance per call, for tests and the CLI)."""
    server = InhouseLanguageServer(cfg)
    register(server)
    return server


def register(server: InhouseLanguageServer) -> None:
    """Every LSP feature and command of inhouse, each a thin handler over the server's methods."""

    @server.feature(types.INITIALIZE)
    def initialize(ls: InhouseLanguageServer, params: types.InitializeParams) -> None:
        ls.apply_settings(params.initialization_options, "initializationOptions")

    @server.feature(types.INITIALIZED)
    async def initialized(ls: InhouseLanguageServer, params: types.InitializedParams) -> None:
        ls._spawn(ls.connect())
        if ls.cfg.index_workspace:
            ls._spawn(_index_workspace(ls))

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: InhouseLanguageServer,
                                params: types.InlineCompletionParams) -> types.InlineCompletionList:
        try:
            found = await ls.suggest(params.text_document.uri, params.position)
        except asyncio.CancelledError:
            raise
        except Exception:  # the handler edge: never an error response for a completion
            log.exception("inline completion failed")
            return _empty_inline()
        if found is None:
            return _empty_inline()
        text, rng, shown = found
        item = types.InlineCompletionItem(insert_text=text, range=rng,
                                          command=ls.accepted_command(shown, text, rng.start))
        return types.InlineCompletionList(items=[item])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=None))
    async def completion(ls: InhouseLanguageServer, params: types.CompletionParams) -> types.CompletionList:
        try:
            found = await ls.suggest(params.text_document.uri, params.position)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("completion failed")
            return types.CompletionList(is_incomplete=True, items=[])
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        text, rng, shown = found
        first = text.strip().split("\n", 1)[0]
        item = types.CompletionItem(
            label=first[:60] + ("…" if len(first) > 60 or "\n" in text.strip() else ""),
            kind=types.CompletionItemKind.Text,
            detail="inhouse",
            documentation=types.MarkupContent(kind=types.MarkupKind.PlainText, value=text),
            text_edit=types.TextEdit(range=rng, new_text=text),
            insert_text_format=types.InsertTextFormat.PlainText,
            filter_text="",
            sort_text="0",
            command=ls.accepted_command(shown, text, rng.start),
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: InhouseLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: InhouseLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.touch(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: InhouseLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.close_document(params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: InhouseLanguageServer,
                                       params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if not settings:
            try:  # the pull model: the client sends an empty notification and answers workspace/configuration
                items = [types.ConfigurationItem(section="inhouse")]
                result = await ls.workspace_configuration_async(types.ConfigurationParams(items=items))
                settings = result[0] if result else None
            except Exception as exc:
                log.warning("workspace/configuration failed: %s", exc)
                return
        await ls.change_configuration(settings)

    @server.command(ACCEPTED_COMMAND)
    def accepted(ls: InhouseLanguageServer, *args: Any) -> None:
        ls.on_accepted(args[0] if args else None)

    @server.command(TOGGLE_COMMAND)
    async def toggle(ls: InhouseLanguageServer, *args: Any) -> dict[str, bool]:
        wanted = args[0] if args and isinstance(args[0], bool) else not ls.cfg.enabled
        await ls.toggle(wanted)
        return {"enabled": wanted}

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: InhouseLanguageServer, params: None) -> None:
        await ls.close()


async def _index_workspace(ls: InhouseLanguageServer) -> None:
    roots = [Path(to_fs_path(f.uri) or "") for f in ls.workspace.folders.values()]
    if not roots and ls.workspace.root_path:
        roots = [Path(ls.workspace.root_path)]
    roots = [r for r in roots if r.parts and r.is_dir()]
    if not roots:
        return
    token = str(uuid.uuid4())
    progress = None
    caps = ls.client_capabilities.window
    if caps is not None and caps.work_done_progress:
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title="inhouse: indexing symbols",
                                                                           percentage=0))

            def progress(message: str, percent: int | None) -> None:
                ls.work_done_progress.report(token, types.WorkDoneProgressReport(message=message,
                                                                                 percentage=percent))
        except Exception as exc:
            log.debug("no work-done progress: %s", exc)
            progress = None
    try:
        await index_in_background(ls.index, roots, ls.cfg.index_max_files, progress)
    except Exception:
        log.exception("symbol index failed")
    finally:
        if progress is not None:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=f"{len(ls.index)} definitions"))
