"""server/llamacpp_probe.py: llama.cpp tried on a GGUF in a child process before the server loads it."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest

from core.errors import ModelError
from server import llamacpp_probe
from server.gguf_export import export_model
from server.llamacpp_probe import probe_command, repack_ok, run_probe

ABORT = [sys.executable, "-c", "import os; os.abort()"]


@pytest.fixture(scope="module")
def gguf(tiny_model_dir, tmp_path_factory) -> Path:
    return export_model(tiny_model_dir, tmp_path_factory.mktemp("probe") / "tiny-Q4_0.gguf", "Q4_0")


def test_the_real_probe_passes_and_is_remembered(gguf, tmp_path):
    assert run_probe(gguf, 1, repack=True) is None
    assert run_probe(gguf, 1, repack=False) is None
    assert repack_ok(gguf, 1, tmp_path)
    [record] = tmp_path.glob("probe-*.json")
    assert json.loads(record.read_text()) == {"repack": True, "gguf": str(gguf), "failure": None}
    assert repack_ok(gguf, 1, tmp_path, command=lambda *a: ABORT)  # remembered: no second child


def test_a_crash_with_repacking_serves_without_it(gguf, tmp_path, caplog):
    def crash_when_repacking(path: Path, threads: int, repack: bool) -> list[str]:
        return ABORT if repack else probe_command(path, threads, repack)

    with caplog.at_level(logging.WARNING):
        assert not repack_ok(gguf, 1, tmp_path, command=crash_when_repacking)
    assert "killed by SIGABRT" in caplog.text and "without repacking" in caplog.text
    assert not repack_ok(gguf, 1, tmp_path, command=lambda *a: pytest.fail("probed twice"))


def test_a_crash_either_way_is_a_model_error_naming_it(gguf, tmp_path):
    with pytest.raises(ModelError, match=r"killed by SIGABRT.*INHOUSE_NATIVE=0"):
        repack_ok(gguf, 1, tmp_path, command=lambda *a: ABORT)
    assert not list(tmp_path.glob("probe-*.json"))  # nothing remembered: the next start tries again
    failing = [sys.executable, "-c", "import sys; sys.exit('no such model')"]
    with pytest.raises(ModelError, match="exit 1: no such model"):
        repack_ok(gguf, 1, tmp_path, command=lambda *a: failing)


async def test_the_server_runs_without_repacking_and_says_so(tiny_model_dir, monkeypatch):
    from server.app import create_app

    monkeypatch.setattr(llamacpp_probe, "repack_ok", lambda *a, **k: False)
    app = create_app(tiny_model_dir, None, engine="llamacpp", gguf_type="Q4_0", threads=1, log_level="warning")
    try:
        assert app.state.server.engine.repack is False
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
            info = (await http.get("/info")).json()
            body = (await http.post("/generate", json={"inputs": "def f(", "parameters": {"max_new_tokens": 4}}))
        assert "weights not repacked" in info["engine_build"]
        assert body.status_code == 200 and body.json()["generated_text"] is not None
    finally:
        app.state.server.engine.close()
