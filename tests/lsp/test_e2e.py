"""End to end: pytest-lsp drives `python -m app.cli lsp` subprocesses backed by the real embedded server
(`inhouse serve`) with the tiny model. Expected suggestions come from the same pipeline run directly in
this process on the prefix/suffix the cursor must mean, so a wrong position shows up as a wrong text."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from core.completion.pipeline import CompletionInput
from lsp.config import LspConfig
from lsp.handlers import TOGGLE_COMMAND
from lsp.suggestions import ACCEPTED_COMMAND
from lsp.session import Session
from tests.lsp.conftest import free_port, inline_params, lsp_client, open_doc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MAX_TOKENS = 6


# These cursors give the tiny random model a suggestion in PSM with healing: the settings override the order of
# the tiny model's profile (SPM), which also tests the override path of the profile through a real client.
OVERRIDES = {"promptOrder": "psm", "healing": True, "maxTokens": MAX_TOKENS, "maxTokensSingleLine": MAX_TOKENS}


def settings(url: str, tokenizer, **extra) -> dict:
    return {"backendUrl": url, "tokenizer": str(tokenizer), "indexWorkspace": False, **OVERRIDES, **extra}


async def reference(url: str, tokenizer, path: str, prefix: str, suffix: str, language: str = "python") -> str:
    """The suggestion the pipeline gives for this exact prefix/suffix, straight against the backend."""
    session = Session(LspConfig(backend_url=url, prompt_order="psm", healing=True, max_tokens=MAX_TOKENS,
                                max_tokens_single_line=MAX_TOKENS, tokenizer=str(tokenizer)))
    try:
        # the workspace folder of lsp_client is named "ws": the server names it as the repository in prompts
        inp = CompletionInput(path, prefix, suffix, language, repo_name="ws")
        answer = await session.complete("reference", inp)
    finally:
        await session.aclose()
    return answer.text


def items(result) -> list[types.InlineCompletionItem]:
    return list(result.items if isinstance(result, types.InlineCompletionList) else result or [])


async def test_inline_completion_and_completion_fallback(backend_url, tiny_model_dir, tmp_path):
    text = "import math\nx = compute()\n"
    expected = await reference(backend_url, tiny_model_dir, "main.py", "import math\nx = compute(", ")\n")
    assert expected, "the tiny model gives a suggestion here (if not, pick another cursor)"
    async with lsp_client(settings(backend_url, tiny_model_dir), tmp_path) as client:
        ready = await client.wait_for_status("ready")
        assert ready["model"] == tiny_model_dir.name
        uri = open_doc(client, tmp_path / "main.py", text, "python")
        result = await client.text_document_inline_completion_async(inline_params(uri, 1, 12))
        [item] = items(result)
        assert item.insert_text == expected
        assert item.range == types.Range(start=types.Position(1, 12), end=types.Position(1, 12))
        assert item.command is not None and item.command.command == ACCEPTED_COMMAND

        # The completion-item fallback: one item carrying the whole suggestion as a text edit.
        completion = await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(1, 12)))
        [citem] = completion.items
        assert citem.text_edit.new_text == expected
        assert citem.text_edit.range == item.range
        # Every request for a document that is not open answers empty, not an error.
        unknown = await client.text_document_inline_completion_async(
            inline_params((tmp_path / "nope.py").as_uri(), 0, 0))
        assert items(unknown) == []


async def test_cache_hit_when_typing_as_suggested(backend_url, tiny_model_dir, tmp_path):
    async with lsp_client(settings(backend_url, tiny_model_dir), tmp_path) as client:
        await client.wait_for_status("ready")
        uri = open_doc(client, tmp_path / "c.py", "y = compute()\n", "python")
        [first] = items(await client.text_document_inline_completion_async(inline_params(uri, 0, 12)))
        suggestion = first.insert_text
        assert len(suggestion) >= 2
        generating = sum(1 for s in client.statuses if s["state"] == "generating")
        # Type the first character of the suggestion (incremental sync), ask again one column further.
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(0, 12), end=types.Position(0, 12)), text=suggestion[0])]))
        [second] = items(await client.text_document_inline_completion_async(inline_params(uri, 0, 13)))
        assert second.insert_text == suggestion[1:]
        # Served from the cache: no new generation was started (each one shows a "generating" status).
        await asyncio.sleep(0.2)
        assert sum(1 for s in client.statuses if s["state"] == "generating") == generating


async def test_cancellation_and_superseding(backend_url, tiny_model_dir, tmp_path):
    # A debounce makes the requests slow enough to cancel deterministically.
    async with lsp_client(settings(backend_url, tiny_model_dir, debounceMs=1500), tmp_path) as client:
        await client.wait_for_status("ready")
        uri = open_doc(client, tmp_path / "k.py", "z = compute()\n", "python")
        # pytest-lsp sends a request when its coroutine runs: a task, so it goes out before the cancel.
        pending = asyncio.ensure_future(client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 0, 12), msg_id="cancel-me"))
        await asyncio.sleep(0.3)
        client.cancel_request(types.CancelParams(id="cancel-me"))
        with pytest.raises(JsonRpcException) as info:
            await asyncio.wait_for(pending, 10)
        assert "cancel" in str(info.value).lower()

        # A newer request for the same document supersedes an older one: the older answers empty.
        older = asyncio.ensure_future(client.text_document_inline_completion_async(inline_params(uri, 0, 12)))
        await asyncio.sleep(0.3)
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(1, 0), end=types.Position(1, 0)), text="w = compute()\n")]))
        newer = await client.text_document_inline_completion_async(inline_params(uri, 1, 12))
        assert items(await older) == []
        assert len(items(newer)) == 1
        # The same cursor asked twice at once (an editor sending inline and completion requests together):
        # one generation answers both.
        generating = sum(1 for s in client.statuses if s["state"] == "generating")
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(2, 0), end=types.Position(2, 0)), text="q = compute()\n")]))
        both = await asyncio.gather(
            client.text_document_inline_completion_async(inline_params(uri, 2, 12)),
            client.text_document_completion_async(types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(2, 12))))
        [inline_item] = items(both[0])
        assert [c.text_edit.new_text for c in both[1].items] == [inline_item.insert_text]
        await asyncio.sleep(0.2)
        assert sum(1 for s in client.statuses if s["state"] == "generating") == generating + 1
        # The server is alive and well after all that.
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"inhouse": {"debounceMs": 0}}))
        assert len(items(await client.text_document_inline_completion_async(inline_params(uri, 0, 12)))) == 1
        # Nothing in flight any more, however the requests ended (cancelled, superseded, answered): ready.
        await asyncio.sleep(0.2)
        assert client.statuses[-1]["state"] == "ready", client.statuses


async def test_backend_down(tmp_path, tiny_model_dir, capfd):
    url = f"http://127.0.0.1:{free_port()}"
    async with lsp_client(settings(url, tiny_model_dir, timeoutMs=2000), tmp_path) as client:
        status = await client.wait_for_status("unreachable")
        assert "unreachable" == status["state"]
        uri = open_doc(client, tmp_path / "d.py", "w = compute()\n", "python")
        for _ in range(3):
            result = await client.text_document_inline_completion_async(inline_params(uri, 0, 12))
            assert items(result) == []
        completion = await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 12)))
        assert list(completion.items) == []
        # One message for the user however many requests failed; a log line each on stderr.
        assert len(client.messages) == 1 and client.messages[0].type == types.MessageType.Warning
    err = capfd.readouterr().err
    assert "unreachable" in err or "cannot reach" in err


# Each line puts a different kind of character before the cursor: 2-byte UTF-8 (ä), a combining mark
# (a + U+0308), CJK (錯誤: 1 UTF-16 unit each), an emoji outside the BMP (😋: 2 UTF-16 units); CRLF ends.
UNICODE_LINES = ['s = "ä"; f();', 's = "a\u0308"; f();', 's = "錯誤"; f();', 's = "😋"; f();']


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


async def test_unicode_positions(backend_url, tiny_model_dir, tmp_path):
    text = "x = 1\r\n" + "\r\n".join(UNICODE_LINES) + "\r\n"
    async with lsp_client(settings(backend_url, tiny_model_dir), tmp_path) as client:
        await client.wait_for_status("ready")
        uri = open_doc(client, tmp_path / "u.py", text, "python")
        lines = text.split("\r\n")
        for n, line in enumerate(UNICODE_LINES, start=1):
            column = line.index("f(") + 2  # right after "f(", in code points
            character = utf16_len(line[:column])
            prefix = "\n".join(lines[:n]) + "\n" + line[:column]
            suffix = line[column:] + "\n" + "\n".join(lines[n + 1:])
            expected = await reference(backend_url, tiny_model_dir, "u.py", prefix, suffix)
            assert expected, line
            result = await client.text_document_inline_completion_async(inline_params(uri, n, character))
            [item] = items(result)
            assert item.insert_text == expected, line
            assert item.range.start == types.Position(n, character)
        # A character past the end of the line means the end of the line; a line past the end is handled too.
        past = await client.text_document_inline_completion_async(inline_params(uri, 1, 500))
        end_of_line = await client.text_document_inline_completion_async(
            inline_params(uri, 1, utf16_len(UNICODE_LINES[0])))
        assert [i.insert_text for i in items(past)] == [i.insert_text for i in items(end_of_line)]
        assert isinstance(items(await client.text_document_inline_completion_async(inline_params(uri, 99, 3))), list)


async def test_settings_commands_telemetry_and_bad_input(backend_url, tiny_model_dir, tmp_path):
    events = tmp_path / "events.jsonl"
    opts = settings(backend_url, tiny_model_dir, telemetry=True, telemetryPath=str(events),
                    enabledLanguages=["python"])
    async with lsp_client(opts, tmp_path) as client:
        await client.wait_for_status("ready")
        uri = open_doc(client, tmp_path / "t.py", "y = compute()\n", "python")
        go_uri = open_doc(client, tmp_path / "t.go", "package m\n\nvar v = compute()\n", "go")
        assert items(await client.text_document_inline_completion_async(inline_params(go_uri, 2, 16))) == []
        [item] = items(await client.text_document_inline_completion_async(inline_params(uri, 0, 12)))
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=ACCEPTED_COMMAND, arguments=item.command.arguments))

        toggled = await client.workspace_execute_command_async(types.ExecuteCommandParams(command=TOGGLE_COMMAND))
        assert toggled == {"enabled": False}
        await client.wait_for_status("disabled")
        assert items(await client.text_document_inline_completion_async(inline_params(uri, 0, 12))) == []
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command=TOGGLE_COMMAND))
        await client.wait_for_status("ready")

        # A setting of the wrong type is reported and ignored; the server keeps working.
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"inhouse": {"maxTokens": "lots", "enabledLanguages": []}}))
        await asyncio.sleep(0.3)
        assert any("maxTokens" in m.message for m in client.messages)
        assert len(items(await client.text_document_inline_completion_async(inline_params(go_uri, 2, 16)))) <= 1

        # Malformed params (written raw: the client library would refuse them): an error for that request
        # only, the server keeps answering.
        client.protocol._send_data({"jsonrpc": "2.0", "id": "malformed", "method": types.TEXT_DOCUMENT_INLINE_COMPLETION,
                                    "params": {"textDocument": {"uri": 5}, "position": "here"}})
        assert len(items(await client.text_document_inline_completion_async(inline_params(uri, 0, 12)))) == 1
        # A huge document is answered from a window around the cursor.
        huge = "".join(f"value_{i} = {i}\n" for i in range(150_000)) + "last = compute()\n"
        huge_uri = open_doc(client, tmp_path / "huge.py", huge, "python")
        result = await client.text_document_inline_completion_async(inline_params(huge_uri, 150_000, 15))
        assert len(items(result)) <= 1
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [e["event"] for e in lines]
    assert "shown" in kinds and "accepted" in kinds
    assert all("compute" not in json.dumps(e) for e in lines)  # no code leaves the editor, even locally


def test_free_port_is_free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))
