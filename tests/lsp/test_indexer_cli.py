"""The background symbol index, and `inhouse lsp --tcp` (the debugging transport) as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

from core.completion.symbols import SymbolIndex
from lsp.indexer import index_in_background, source_files
from tests.lsp.conftest import REPO, free_port


async def test_index_in_background_reports_progress(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "geometry.py").write_text("def area(r):\n    return 3.14 * r * r\n")
    (tmp_path / "rtl.v").write_text("module adder(input a, output y);\n  assign y = a;\nendmodule\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("function vendored() {}\n")
    (tmp_path / "notes.txt").write_text("def not_code(): pass\n")
    index = SymbolIndex()
    reports: list[tuple[str, int | None]] = []
    files = await index_in_background(index, [tmp_path], 100, lambda m, p: reports.append((m, p)))
    await asyncio.sleep(0.05)  # progress callbacks are scheduled on the loop
    assert files == 2
    assert index.lookup("area")[0].path == os.path.join("pkg", "geometry.py")
    assert index.lookup("adder") and not index.lookup("vendored")
    assert reports and reports[-1] == ("indexed 2/2 files", 100)
    assert len(list(source_files(tmp_path, 1))) == 1  # the file limit holds


def _frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read_message(sock: socket.socket) -> dict:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    header, _, rest = data.partition(b"\r\n\r\n")
    length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(4096)
    return json.loads(rest[:length])


def test_tcp_transport(tmp_path):
    port = free_port()
    (tmp_path / "empty.toml").write_text("")
    env = {**os.environ, "INHOUSE_CONFIG": str(tmp_path / "empty.toml")}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "lsp", "--tcp", f"127.0.0.1:{port}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "lsp --tcp did not listen"
                time.sleep(0.2)
        with sock:
            sock.sendall(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                 "params": {"processId": None, "rootUri": None, "capabilities": {},
                                            "initializationOptions": {"indexWorkspace": False}}}))
            while True:
                message = _read_message(sock)
                if message.get("id") == 1:
                    break
        caps = message["result"]["capabilities"]
        assert caps["inlineCompletionProvider"] is not None and caps["completionProvider"] is not None
        assert caps["textDocumentSync"]["change"] == 2  # incremental
        assert set(caps["executeCommandProvider"]["commands"]) == {"inhouse.accepted", "inhouse.toggle"}
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_bad_tcp_address_is_a_clear_error(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    env = {**os.environ, "INHOUSE_CONFIG": str(tmp_path / "empty.toml")}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "lsp", "--tcp", "nowhere"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "`--tcp` must be HOST:PORT" in proc.stderr
