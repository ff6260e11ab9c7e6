"""The language server's state, on a pygls 2 `LanguageServer` subclass: settings and session, status, open
documents, requests in flight and suggestions on screen. The LSP handlers (lsp/handlers.py) stay thin and call
its methods; `Session` (session.py) runs each cursor through the completion runner.

Every request handler catches everything at its edge: a failed completion answers an empty result, logs
one line and tells the user at most once every few minutes; the server never crashes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from core import __version__, languages
from core.completion.cache import CompletionCache
from core.completion.pipeline import CompletionInput
from core.completion.symbols import SymbolIndex
from core.errors import BackendTimeoutError, BackendUnavailableError, ConfigError, InhouseError, OverloadedError
from lsp.adoption import ANCHOR, AdoptionReporter, repository_name
from lsp.config import LspConfig, apply_client_settings
from lsp.documents import RecentDocuments, folder_name, relative_path
from lsp.positions import split_at
from lsp.session import Answer, Session
from lsp.status import State, Status
from lsp.suggestions import InFlight, Shown, accepted_command, still_on_screen
from lsp.telemetry import Telemetry

log = logging.getLogger(__name__)



class InhouseLanguageServer(LanguageServer):
    def __init__(self, cfg: LspConfig | None = None) -> None:
        super().__init__(name="inhouse", version=__version__)
        self.base_cfg = cfg or LspConfig()
        self.cfg = self.base_cfg
        self.cache = CompletionCache()
        self.index = SymbolIndex()
        self.session: Session | None = None
        self.status = Status(self._notify, self.window_show_message, self.cfg.message_interval_s)
        self.telemetry = Telemetry(self.cfg.telemetry,
                                   Path(self.cfg.telemetry_path) if self.cfg.telemetry_path else None)
        self.documents = RecentDocuments()
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
        await self.adoption.refresh_policy()  # whether completions go with a suggestion id (one request)
        profile, problem = session.profile_status()
        self.status.set(State.READY, model=info.model_id, adapter=self.cfg.adapter or "", detail=problem,
                        profile=profile or "")
        if problem:  # never a silent default format: no completions until a profile is given
            self.status.warn(problem, types.MessageType.Error)

    # -- documents -------------------------------------------------------------------------------------------
    def touch(self, uri: str) -> None:
        self.documents.touch(uri)

    def close_document(self, uri: str) -> None:
        """The editor closed it: forget it, its suggestion and cache, and stop its generation."""
        self.documents.forget(uri)
        self.shown.pop(uri, None)
        self.cache.clear(uri)
        entry = self.inflight.pop(uri, None)
        if entry is not None:
            entry.task.cancel()

    def _source(self, uri: str) -> str | None:
        doc = self.workspace.text_documents.get(uri)
        return doc.source if doc is not None else None

    def relative_path(self, uri: str) -> str:
        return relative_path(self.workspace, uri)

    def context_documents(self, uri: str) -> dict[str, str]:
        return self.documents.context(self.workspace, uri)

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
                              documents=self.context_documents(uri), repo_name=folder_name(self.workspace, uri))
        self._settle_previous(uri, prefix, cursor.offset)

        key = (version, cursor.offset)
        entry = self.inflight.get(uri)
        if entry is not None and not entry.task.done() and entry.key == key:
            entry.waiters += 1  # the same cursor asked again (inline and completion together): one generation
        else:
            if entry is not None and not entry.task.done():
                entry.task.cancel()  # a newer request for this document supersedes the older one
                self.superseded += 1
            sid = uuid.uuid4().hex[:12] if self.adoption.stores_suggestions else None
            entry = InFlight(key, asyncio.ensure_future(self._answer(self.session, uri, inp, cursor.offset, sid)))
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
        shown = Shown(answer.suggestion_id or uuid.uuid4().hex[:12], uri, language_id, answer.text, cursor.offset,
                      stored=answer.suggestion_id is not None, lead=answer.lead,
                      before=cursor.prefix[-ANCHOR:], after=cursor.suffix[:ANCHOR])
        self.shown[uri] = shown
        self.telemetry.record("shown", id=shown.id, language=language_id, chars=len(answer.text),
                              cached=answer.cached, multiline=answer.multiline,
                              latency_ms=round((answer.timings or {}).get("total", 0.0), 1))
        return suggestion, types.Range(start=pos, end=pos), shown

    def _settle_previous(self, uri: str, prefix: str, offset: int) -> None:
        """A new request after a shown suggestion that was not typed into nor accepted: it was dismissed."""
        shown = self.shown.get(uri)
        if shown is None or shown.settled or still_on_screen(shown, prefix, offset):
            return
        shown.settled = True
        self.telemetry.record("dismissed", id=shown.id, language=shown.language_id, chars=len(shown.text))

    async def _answer(self, session: Session, uri: str, inp: CompletionInput, end: int,
                      suggestion_id: str | None = None) -> Answer | None:
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
            answer = await session.complete(uri, inp, end=end, on_request=on_request, suggestion_id=suggestion_id)
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
        return accepted_command(shown, text, pos)

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

    async def change_configuration(self, settings: Any) -> None:
        """New editor settings; reconnect when the backend, adapter or on/off changed."""
        before = (self.cfg.backend_url, self.cfg.backend_kind, self.cfg.adapter, self.cfg.enabled)
        self.apply_settings(settings, "workspace/didChangeConfiguration")
        if (self.cfg.backend_url, self.cfg.backend_kind, self.cfg.adapter, self.cfg.enabled) != before:
            await self.connect()

    async def toggle(self, wanted: bool) -> None:
        """Completions on (reconnect) or off (stop what is in flight)."""
        self.apply_settings({"enabled": wanted}, "inhouse.toggle")
        if wanted:
            await self.connect()
        else:
            for entry in list(self.inflight.values()):
                entry.task.cancel()
            self.status.set(State.DISABLED)

    async def close(self) -> None:
        """Shutdown: stop every task, close the backend and the adoption reporter."""
        for task in [e.task for e in self.inflight.values()] + list(self._background):
            task.cancel()
        if self.session is not None:
            await self.session.aclose()
        await self.adoption.aclose()
