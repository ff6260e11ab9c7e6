"""Language server settings: the [lsp] section and the editor's camelCase settings on top."""

from __future__ import annotations

import pytest

from core.config import resolve
from core.errors import ConfigError
from lsp.config import CLIENT_KEYS, LspConfig, apply_client_settings


def test_vscode_initialization_options_are_understood():
    options = {"backendUrl": "http://gpu-box:8080/", "adapter": "team-a", "enabledLanguages": ["python", "go"],
               "maxTokens": 128, "telemetry": True, "tokenizer": "/models/x"}
    cfg, problems = apply_client_settings(LspConfig(), options)
    assert problems == []
    assert cfg.backend_url == "http://gpu-box:8080" and cfg.adapter == "team-a"
    assert cfg.enabled_languages == ("python", "go") and cfg.max_tokens == 128
    assert cfg.telemetry is True and cfg.tokenizer == "/models/x"


def test_section_wrapper_empty_values_and_unknown_keys():
    cfg, problems = apply_client_settings(LspConfig(adapter="a"), {"inhouse": {"adapter": "", "tokenizer": None,
                                                                              "somethingElse": 1, "timeoutMs": 1500}})
    assert problems == [] and cfg.adapter is None and cfg.tokenizer is None and cfg.timeout_s == 1.5


@pytest.mark.parametrize("key, value, fragment", [
    ("maxTokens", "lots", "`maxTokens` must be an integer"),
    ("maxTokens", 0, "`max_tokens` must be >= 1"),
    ("backendUrl", "gpu-box:8080", "`backend_url` must be an http(s) URL"),
    ("enabledLanguages", "python", "list of language ids"),
    ("telemetry", "yes", "true or false"),
    ("fimFormat", "nope", "unknown FIM format"),
])
def test_bad_values_are_reported_and_ignored(key, value, fragment):
    base = LspConfig()
    cfg, problems = apply_client_settings(base, {key: value})
    assert cfg == base
    assert len(problems) == 1 and fragment in problems[0]


def test_config_file_section(tmp_path):
    path = tmp_path / "inhouse.toml"
    path.write_text('[lsp]\nbackend_url = "http://10.0.0.2:9000"\nenabled_languages = ["c", "verilog"]\n')
    cfg = resolve(LspConfig, config_file=path, env={})
    assert cfg.backend_url == "http://10.0.0.2:9000" and cfg.enabled_languages == ("c", "verilog")
    with pytest.raises(ConfigError, match="backend_kind"):
        resolve(LspConfig, config_file=path, env={"INHOUSE_LSP_BACKEND_KIND": "grpc"})


def test_every_client_key_maps_to_a_field():
    fields = set(LspConfig.__dataclass_fields__)
    assert set(CLIENT_KEYS.values()) <= fields
