"""Fixtures for the language server tests: the real embedded server with the tiny model (a subprocess,
once per session) and pytest-lsp clients driving `python -m app.cli lsp` subprocesses."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pygls.protocol import default_converter
from pytest_lsp.client import register_lsp_features

from lsp.status import STATUS_NOTIFICATION
from core.launch import serve_subprocess
from core.launch import free_port  # noqa: F401 (tests import it from here)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def backend_url(tiny_model_dir, tmp_path_factory):
    """`inhouse serve` with the tiny model on a free port; stopped at the end of the session."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_subprocess(tiny_model_dir, log, env={"INHOUSE_CONFIG": str(_empty_config(tmp_path_factory))}) as url:
        yield url


def _empty_config(factory) -> Path:
    path = factory.getbasetemp() / "inhouse-empty.toml"
    if not path.exists():
        path.write_text("")
    return path


def _plain(params: Any) -> dict[str, Any]:
    if isinstance(params, dict):
        return params
    if hasattr(params, "_asdict"):  # pygls structures unknown notifications' params as named tuples
        return dict(params._asdict())
    return dict(vars(params))


class StatusClient(LanguageClient):
    """The pytest-lsp client, recording `$/inhouse/status` notifications."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statuses: list[dict[str, Any]] = []

        @self.feature(STATUS_NOTIFICATION)
        def on_status(client: StatusClient, params: Any) -> None:
            client.statuses.append(_plain(params))

    async def wait_for_status(self, state: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        import asyncio

        while time.monotonic() < deadline:
            for s in reversed(self.statuses):
                if s.get("state") == state:
                    return s
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {state!r} status within {timeout}s; got {self.statuses}")


def make_client() -> StatusClient:
    """pytest-lsp's test client (its default handlers record messages, progress...) plus the status handler."""
    client = StatusClient(converter_factory=default_converter)
    register_lsp_features(client)
    return client


@contextlib.asynccontextmanager
async def lsp_client(options: dict[str, Any], tmp_path: Path, root: Path | None = None) -> AsyncIterator[StatusClient]:
    """A pytest-lsp client connected to a fresh `python -m app.cli lsp` subprocess, initialized with `options`."""
    config_file = tmp_path / "inhouse-empty.toml"
    config_file.write_text("")
    env = {**os.environ, "INHOUSE_CONFIG": str(config_file), "PYTHONUNBUFFERED": "1"}
    config = ClientServerConfig(server_command=[sys.executable, "-m", "app.cli", "lsp"], client_factory=make_client,
                                server_env=env)
    client = await config.start()
    assert isinstance(client, StatusClient)
    root = root or tmp_path
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
        initialization_options=options,
    ))
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


def open_doc(client: LanguageClient, path: Path, text: str, language_id: str, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)))
    return uri


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked))
