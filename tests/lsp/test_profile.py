"""The language server and the completion profile: behind a TGI-like server whose /info has no profile it says
so (status and message) and sends nothing; given a profile directory in the settings it completes with it, and
the status shows the profile in use. A real `inhouse lsp` subprocess against a TGI-shaped fake on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.lsp.conftest import inline_params, lsp_client, open_doc
from tests.lsp.test_e2e import items

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TGI_INFO = {"model_id": "bigcode/starcoder2-3b", "max_input_tokens": 4095, "max_total_tokens": 4096,
            "max_stop_sequences": 4, "version": "3.3.6"}


@contextmanager
def tgi_like() -> Iterator[tuple[str, list[dict]]]:
    """/info without a profile (as real TGI answers) and /generate echoing a fixed middle; records requests."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _json(self, data: dict) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._json(TGI_INFO)

        def do_POST(self) -> None:
            seen.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self._json({"generated_text": "radius ** 2\n", "details": {"generated_tokens": 3,
                                                                      "finish_reason": "eos_token"}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


TEXT = "import math\n\n\ndef area_of_circle(radius):\n    return math.pi * \n"


async def test_no_profile_behind_tgi_is_said_clearly_and_nothing_is_sent(tmp_path):
    with tgi_like() as (url, seen):
        async with lsp_client({"backendUrl": url}, tmp_path) as client:
            ready = await client.wait_for_status("ready")
            assert "no completion profile for the base model" in ready["detail"], ready
            assert "set `profile`" in ready["detail"]
            uri = open_doc(client, tmp_path / "geometry.py", TEXT, "python")
            assert items(await client.text_document_inline_completion_async(inline_params(uri, 4, 22))) == []
            assert seen == []  # no request in a guessed format
            assert any("no completion profile" in m.message for m in client.messages)


async def test_a_profile_directory_in_the_settings_is_used_and_shown(tmp_path, tiny_model_dir):
    with tgi_like() as (url, seen):
        options = {"backendUrl": url, "profile": str(tiny_model_dir), "promptOrder": "psm"}
        async with lsp_client(options, tmp_path) as client:
            ready = await client.wait_for_status("ready")
            assert ready["detail"] is None and ready["profile"].startswith("starcoder PSM + context"), ready
            uri = open_doc(client, tmp_path / "geometry.py", TEXT, "python")
            [item] = items(await client.text_document_inline_completion_async(inline_params(uri, 4, 22)))
            assert item.insert_text == "radius ** 2"
            [request] = seen
            assert request["inputs"].startswith("<repo_name>ws<file_sep><fim_prefix>geometry.py\nimport math")
            assert request["inputs"].endswith("<fim_middle>")
            assert request["parameters"]["max_new_tokens"] == 48  # single-line: the profile's bound
