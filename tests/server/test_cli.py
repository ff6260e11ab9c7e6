"""`inhouse serve` as a subprocess (what the language server and VS Code tests start), and the [serve] config."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.config import resolve
from core.errors import ConfigError
from core.launch import serve_subprocess
from server.config import ServeConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_serve_subprocess_answers_and_stops(tiny_model_dir, tmp_path):
    with serve_subprocess(tiny_model_dir, tmp_path / "serve.log", args=["--max-stop-sequences", "8", "--threads", "1"],
                          env={"INHOUSE_SERVE_THREADS": "2"}) as url:
        info = httpx.get(f"{url}/info").json()
        assert info["max_stop_sequences"] == 8 and info["fim_format"] == "starcoder"
        assert (info["engine"], info["engine_weights"]) == ("llama.cpp", "F32")  # a tiny model stays F32
        assert (info["engine_threads"], info["engine_threads_from"]) == (1, "--threads")  # the flag beats the env
        r = httpx.post(f"{url}/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 3}})
        assert r.status_code == 200 and r.json()["generated_text"]
    with pytest.raises(httpx.TransportError):  # stopped on exit
        httpx.get(f"{url}/health", timeout=1)


def test_serve_reports_a_missing_model_in_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(["serve", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "is not a model directory" in err and "Traceback" not in err


def test_config_section_precedence_and_validation(tmp_path):
    cfg_file = tmp_path / "inhouse.toml"
    cfg_file.write_text("[serve]\nport = 9000\nmax_batch_size = 4\n", encoding="utf-8")
    cfg = resolve(ServeConfig, config_file=cfg_file, env={"INHOUSE_SERVE_PORT": "9100"}, overrides={"host": "0.0.0.0"})
    assert (cfg.port, cfg.max_batch_size, cfg.host) == (9100, 4, "0.0.0.0")
    with pytest.raises(ConfigError, match="`max_batch_size` must be > 0, got 0"):
        ServeConfig(max_batch_size=0)
    with pytest.raises(ConfigError, match="`max_total_tokens` must be > max_input_tokens"):
        ServeConfig(max_input_tokens=100, max_total_tokens=100)
    with pytest.raises(ConfigError, match="`weights` must be one of auto, int8, float, got 'int4'"):
        ServeConfig(weights="int4")
    with pytest.raises(ConfigError, match="`threads` must be >= 0, got -1"):
        ServeConfig(threads=-1)


def test_empty_api_key_file_is_refused_before_loading(tmp_path):
    from server.app import create_app

    key = tmp_path / "key"
    key.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="`api_key_file` .* is empty"):
        create_app(tmp_path / "no-model-needed", api_key_file=str(key))
