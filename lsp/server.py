"""The pygls 2 language server: inline completions (LSP 3.18), a completion-item fallback, settings,
commands, status and cancellation. Handlers stay thin; `Session` (session.py) does the work.

Every request handler catches everything at its edge: a failed completion answers an empty result, logs
one line and tells the user at most once every few minutes; the server never crashes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from core import __version__, languages
from core.completion.cache import CompletionCache
from core.completion.context import open_documents
from core.completion.pipeline import CompletionInput
from core.completion.symbols import SymbolIndex
from core.errors import BackendTimeoutError, BackendUnavailableError, ConfigError, InhouseError, OverloadedError
from lsp.adoption import AdoptionReporter, repository_name
from lsp.config import LspConfig, apply_client_settings
from lsp.indexer import index_in_background
from lsp.positions import split_at
from lsp.session import Answer, Session
from lsp.status import State, Status
from lsp.telemetry import Telemetry

log = logging.getLogger(__name__)

ACCEPTED_COMMAND = "inhouse.accepted"
TOGGLE_COMMAND = "inhouse.toggle"


@dataclass
class InFlight:
    key: tuple[int, int]  # (document version, cursor offset)
    task: asyncio.Task
    waiters: int = 1


@dataclass
class Shown:
    id: str
    uri: str
    language_id: str
    text: str
    offset: int
    settled: bool = False


class InhouseLanguageServer(LanguageServer):
    def __init__(self, cfg: LspConfig | None = None) -> None:
        super().__init__(name="inhouse", version=__version__)
        self.base_cfg = cfg or LspConfig()
        self.cfg = self.base_cfg
        self.cache = CompletionCache()
        self.index = SymbolIndex()
        self.session: Session | None = None
        self.status = Status(self._notify, self.window_show_message, self.cfg.message_interval_s)
        self.telemetry = Telemetry(self.cfg.telemetry, Path(self.cfg.telemetry_path) if self.cfg.telemetry_path else None)
        self.recent: OrderedDict[str, None] = OrderedDict()  # uris, most recently edited last
        self.inflight: dict[str, InFlight] = {}
        self.generating = 0
        self.shown: dict[str, Shown] = {}
        self.stale_dropped = 0
        self._slow: str | None = None  # the slow-backend note of the status while the last request timed out
        self.superseded = 0
        self._background: set[asyncio.Task] = set()
        self.adoption = AdoptionReporter(self.shown, self._source, lambda uri: repository_name(self.workspace, uri))
        self.telemetry.sink = self.adoption.record

    # -- plumbing ------------------------------------------------------------------------------------------
    def _notify(self, method: str, params: Any) -> None:
        self.protocol.notify(method, params)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    @property
    def encoding(self) -> str:
        enc = getattr(self.workspace, "position_encoding", None) or "utf-16"
        return str(getattr(enc, "value", enc))

    def apply_settings(self, options: Any, where: str) -> None:
        """Apply editor settings on top of the config file's; report rejected values; rebuild the session."""
        cfg, problems = apply_client_settings(self.cfg, options if isinstance(options, dict) else None)
        for problem in problems:
            log.warning("%s: %s", where, problem)
        if problems:
            self.status.warn("; ".join(problems), types.MessageType.Warning)
        changed = cfg != self.cfg
        self.cfg = cfg
        self.status.interval_s = cfg.message_interval_s
        self.telemetry.enabled = cfg.telemetry
        self.telemetry.path = Path(cfg.telemetry_path).expanduser() if cfg.telemetry_path else None
        self.adoption.configure(cfg.gateway_url, cfg.gateway_token, cfg.adapter)
        if self.session is None or changed:
            old = self.session
            try:
                self.session = Session(cfg, cache=self.cache, index=self.index)
            except ConfigError as exc:  # a profile file that cannot be used: reported, then ignored
                log.warning("%s: %s", where, exc)
                self.status.warn(str(exc), types.MessageType.Warning)
                self.cfg = cfg = dataclasses.replace(cfg, profile=None)
                self.session = Session(cfg, cache=self.cache, index=self.index)
            if old is not None:
                self._spawn(old.aclose())
            if old is not None and old.cfg.backend_url == cfg.backend_url and old.cfg.backend_kind == cfg.backend_kind:
                self.session.pipeline.info = old.pipeline.info
            else:
                self.cache.clear()

    async def connect(self) -> None:
        """Ask the backend for /info and publish the resulting state."""
        session = self.session
        if session is None:
            return
        if not self.cfg.enabled:
            self.status.set(State.DISABLED, adapter=self.cfg.adapter or "")
            return
        try:
            info = await session.refresh_info()
        except BackendTimeoutError as exc:
            # It accepted the connection: slow (a loaded machine or a model still loading), not down.
            log.warning("backend %s: %s", self.cfg.backend_url, exc)
            self._slow = f"slow backend: /info timed out after {self.cfg.timeout_s:g} s"
            self.status.set(State.READY, adapter=self.cfg.adapter or "", detail=self._slow)
            self.status.warn(f"the completion backend at {self.cfg.backend_url} is slow to answer")
            return
        except InhouseError as exc:
            log.warning("backend %s: %s", self.cfg.backend_url, exc)
            self.status.set(State.UNREACHABLE, detail=str(exc))
            self.status.warn(f"cannot reach the completion backend at {self.cfg.backend_url}")
            return
        self._slow = None
        profile, problem = session.profile_status()
        self.status.set(State.READY, model=info.model_id, adapter=self.cfg.adapter or "", detail=problem,
                        profile=profile or "")
        if problem:  # never a silent default format: no completions until a profile is given
            self.status.warn(problem, types.MessageType.Error)

    # -- documents -------------------------------------------------------------------------------------------
    def touch(self, uri: str) -> None:
        self.recent.pop(uri, None)
        self.recent[uri] = None
        while len(self.recent) > 50:
            self.recent.popitem(last=False)

    def _source(self, uri: str) -> str | None:
        doc = self.workspace.text_documents.get(uri)
        return doc.source if doc is not None else None

    def relative_path(self, uri: str) -> str:
        try:
            path = Path(to_fs_path(uri) or uri)
        except Exception:
            return uri
        for folder in self.workspace.folders.values():
            root = Path(to_fs_path(folder.uri) or "")
            if root.parts and path.is_relative_to(root):
                return str(path.relative_to(root))
        root = self.workspace.root_path
        if root and path.is_relative_to(root):
            return str(path.relative_to(root))
        return path.name

    def context_documents(self, uri: str) -> dict[str, str]:
        """The recently edited documents, most recent first, under the runner's one rule (`open_documents`)."""
        recent = ((self.relative_path(other), self.workspace.text_documents[other].source)
                  for other in reversed(self.recent) if other in self.workspace.text_documents)
        return open_documents(recent, self.relative_path(uri))

    # -- completion ------------------------------------------------------------------------------------------
    async def suggest(self, uri: str, position: types.Position) -> tuple[str, types.Range, Shown] | None:
        """The suggestion at a position (None for none), superseding older requests for the same document."""
        if not self.cfg.enabled or self.session is None:
            return None
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            log.info("completion for unknown document %s: not open", uri)
            return None
        version = doc.version
        text = doc.source
        cursor = split_at(text, position.line, position.character, self.encoding)
        crlf = "\r\n" in cursor.prefix[-2000:] or "\r\n" in cursor.suffix[:2000]
        prefix, suffix = cursor.prefix.replace("\r\n", "\n"), cursor.suffix.replace("\r\n", "\n")
        lang = languages.get(doc.language_id or "") or languages.detect(doc.filename or "")
        language_id = lang.id if lang else (doc.language_id or "plaintext")
        path = self.relative_path(uri)
        inp = CompletionInput(path=path, prefix=prefix, suffix=suffix, language_id=language_id,
                              documents=self.context_documents(uri))
        self._settle_previous(uri, prefix, cursor.offset)

        key = (version, cursor.offset)
        entry = self.inflight.get(uri)
        if entry is not None and not entry.task.done() and entry.key == key:
            entry.waiters += 1  # the same cursor asked again (inline and completion together): one generation
        else:
            if entry is not None and not entry.task.done():
                entry.task.cancel()  # a newer request for this document supersedes the older one
                self.superseded += 1
            entry = InFlight(key, asyncio.ensure_future(self._answer(self.session, uri, inp, cursor.offset)))
            self.inflight[uri] = entry
        try:
            answer = await asyncio.shield(entry.task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                entry.waiters -= 1
                if entry.waiters == 0:
                    entry.task.cancel()  # the client cancelled the only request waiting for it
                raise
            log.debug("request for %s superseded", path)
            return None
        finally:
            if entry.task.done() and self.inflight.get(uri) is entry:
                del self.inflight[uri]
        if answer is None or not answer.text:
            return None
        current = self.workspace.text_documents.get(uri)
        if current is None or current.version != version:
            self.stale_dropped += 1
            log.info("completion %s dropped: the document changed while it was generated", path)
            return None
        suggestion = answer.text.replace("\n", "\r\n") if crlf else answer.text
        pos = types.Position(line=cursor.line, character=cursor.character)
        shown = Shown(uuid.uuid4().hex[:12], uri, language_id, answer.text, cursor.offset)
        self.shown[uri] = shown
        self.telemetry.record("shown", id=shown.id, language=language_id, chars=len(answer.text),
                              cached=answer.cached, multiline=answer.multiline,
                              latency_ms=round((answer.timings or {}).get("total", 0.0), 1))
        return suggestion, types.Range(start=pos, end=pos), shown

    def _settle_previous(self, uri: str, prefix: str, offset: int) -> None:
        """A new request after a shown suggestion that was not typed into nor accepted: it was dismissed."""
        shown = self.shown.get(uri)
        if shown is None or shown.settled:
            return
        typed_len = offset - shown.offset
        typed = prefix[len(prefix) - typed_len:] if 0 < typed_len <= len(prefix) else "" if typed_len == 0 else None
        if typed is not None and shown.text.startswith(typed) and len(typed) < len(shown.text):
            return  # the user is typing the suggestion: still on screen
        shown.settled = True
        self.telemetry.record("dismissed", id=shown.id, language=shown.language_id, chars=len(shown.text))

    async def _answer(self, session: Session, uri: str, inp: CompletionInput, end: int) -> Answer | None:
        if self.cfg.debounce_ms:
            await asyncio.sleep(self.cfg.debounce_ms / 1000)
        started = time.perf_counter()
        generating = False

        def on_request() -> None:
            nonlocal generating
            generating = True
            self.generating += 1
            self.status.set(State.GENERATING)

        try:
            answer = await session.complete(uri, inp, end=end, on_request=on_request)
        except BackendTimeoutError as exc:
            # Reached but too slow (a loaded machine): an empty result, not an unreachable backend.
            log.warning("completion %s timed out after %.0f ms: %s", inp.path, (time.perf_counter() - started) * 1000,
                        exc)
            self._slow = f"slow backend: a request timed out after {self.cfg.timeout_s:g} s"
            self.status.warn(f"the completion backend at {self.cfg.backend_url} is slow (no answer within "
                             f"{self.cfg.timeout_s:g} s); raise timeoutMs if this persists")
            return None
        except (BackendUnavailableError, OverloadedError) as exc:
            log.warning("completion %s failed after %.0f ms: %s", inp.path, (time.perf_counter() - started) * 1000, exc)
            if isinstance(exc, BackendUnavailableError):
                self.status.set(State.UNREACHABLE, detail=str(exc))
                self.status.warn(f"the completion backend at {self.cfg.backend_url} is unreachable")
            return None
        except InhouseError as exc:
            log.warning("completion %s failed: %s", inp.path, exc)
            self.status.warn(f"completion failed: {exc}")
            return None
        else:
            self._slow = None
            if generating and self.status.state is State.UNREACHABLE:  # it answered: reachable again
                self.status.set(State.READY, model=session.info.model_id if session.info else None, detail=None)
        finally:
            if generating:
                self.generating -= 1
            # However the request ended (answer, cancel, supersede, error, timeout): with none left in flight
            # the status leaves "generating" for ready (an error above may have set unreachable; keep it).
            if self.generating == 0 and self.status.state is State.GENERATING:
                self._settle_status(session)
        t = answer.timings or {}
        log.info("completion %s %s:%d chars=%d cached=%s mode=%s tokens=%d+%d context=%.1fms prompt=%.1fms "
                 "backend=%.1fms post=%.1fms total=%.1fms reason=%s", inp.language_id, inp.path,
                 inp.prefix.count("\n") + 1, len(answer.text), answer.cached,
                 "multi" if answer.multiline else "single", answer.prompt_tokens, answer.generated_tokens,
                 t.get("context", 0.0), t.get("prompt", 0.0), t.get("backend", 0.0), t.get("postprocess", 0.0),
                 t.get("total", 0.0), answer.reason)
        return answer

    def _settle_status(self, session: Session) -> None:
        """The idle state: disabled when off, else ready (with the slow-backend note while it applies)."""
        if not self.cfg.enabled:
            self.status.set(State.DISABLED, detail=None)
            return
        profile, problem = session.profile_status()
        self.status.set(State.READY, model=session.info.model_id if session.info else None,
                        detail=self._slow or problem, profile=profile or "")

    def accepted_command(self, shown: Shown, text: str, pos: types.Position) -> types.Command:
        args = {"id": shown.id, "uri": shown.uri, "languageId": shown.language_id, "line": pos.line,
                "character": pos.character, "text": text, "suggestion": text, "full": True}
        return types.Command(title="inhouse: accepted", command=ACCEPTED_COMMAND, arguments=[args])

    def on_accepted(self, args: Any) -> None:
        data = args if isinstance(args, dict) else {}
        uri = str(data.get("uri", ""))
        shown = self.shown.get(uri)
        if shown is not None and (data.get("id") in (None, shown.id)):
            shown.settled = True
            self.cache.clear(uri)
        self.telemetry.record("accepted", id=data.get("id") or (shown.id if shown else None),
                              language=data.get("languageId") or (shown.language_id if shown else None),
                              chars=len(str(data.get("text", ""))), full=bool(data.get("full", True)))


def _empty_inline() -> types.InlineCompletionList:
    return types.InlineCompletionList(items=[])


def create_server(cfg: LspConfig | None = None) -> InhouseLanguageServer:
    """The server with every feature registered (a fresh instance per call, for tests and the CLI)."""
    server = InhouseLanguageServer(cfg)

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
        uri = params.text_document.uri
        ls.recent.pop(uri, None)
        ls.shown.pop(uri, None)
        ls.cache.clear(uri)
        entry = ls.inflight.pop(uri, None)
        if entry is not None:
            entry.task.cancel()

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
        before = (ls.cfg.backend_url, ls.cfg.backend_kind, ls.cfg.adapter, ls.cfg.enabled)
        ls.apply_settings(settings, "workspace/didChangeConfiguration")
        if (ls.cfg.backend_url, ls.cfg.backend_kind, ls.cfg.adapter, ls.cfg.enabled) != before:
            await ls.connect()

    @server.command(ACCEPTED_COMMAND)
    def accepted(ls: InhouseLanguageServer, *args: Any) -> None:
        ls.on_accepted(args[0] if args else None)

    @server.command(TOGGLE_COMMAND)
    async def toggle(ls: InhouseLanguageServer, *args: Any) -> dict[str, bool]:
        wanted = args[0] if args and isinstance(args[0], bool) else not ls.cfg.enabled
        ls.apply_settings({"enabled": wanted}, TOGGLE_COMMAND)
        if wanted:
            await ls.connect()
        else:
            for entry in list(ls.inflight.values()):
                entry.task.cancel()
            ls.status.set(State.DISABLED)
        return {"enabled": wanted}

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: InhouseLanguageServer, params: None) -> None:
        for task in [e.task for e in ls.inflight.values()] + list(ls._background):
            task.cancel()
        if ls.session is not None:
            await ls.session.aclose()
        await ls.adoption.aclose()

    return server


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
