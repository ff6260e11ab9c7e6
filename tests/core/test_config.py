from __future__ import annotations

from dataclasses import dataclass

import pytest

from core import config
from core.errors import ConfigError


@config.section("sample")
@dataclass(frozen=True)
class SampleConfig:
    port: int = 8080
    host: str = "127.0.0.1"
    ratio: float = 0.5
    enabled: bool = True
    languages: tuple[str, ...] = ("python",)
    adapter: str | None = None

    def __post_init__(self):
        config.require(self.port > 0, "port", "> 0", self.port)


def write(tmp_path, text):
    p = tmp_path / "inhouse.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.resolve(SampleConfig, env={}) == SampleConfig()


def test_empty_file_is_valid(tmp_path):
    assert config.resolve(SampleConfig, config_file=write(tmp_path, ""), env={}) == SampleConfig()


def test_precedence_defaults_file_env_flags(tmp_path):
    p = write(tmp_path, "[sample]\nport = 9000\nhost = 'file'\nratio = 0.25\n")
    env = {"INHOUSE_SAMPLE_HOST": "env", "INHOUSE_SAMPLE_RATIO": "0.75", "INHOUSE_SAMPLE_LANGUAGES": "go, rust"}
    cfg = config.resolve(SampleConfig, config_file=p, env=env, overrides={"ratio": 0.9, "adapter": None})
    assert cfg.port == 9000          # file beats default
    assert cfg.host == "env"         # env beats file
    assert cfg.ratio == 0.9          # flag beats env
    assert cfg.languages == ("go", "rust")
    assert cfg.adapter is None       # a flag not given changes nothing


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "[sample]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"inhouse.toml: unknown key 'prot' in section \[sample\]"):
        config.resolve(SampleConfig, config_file=p, env={})


def test_unknown_section(tmp_path):
    p = write(tmp_path, "[nope]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section \[nope\]"):
        config.resolve(SampleConfig, config_file=p, env={})


def test_bad_type_names_the_field(tmp_path):
    p = write(tmp_path, "[sample]\nport = 'eighty'\n")
    with pytest.raises(ConfigError, match=r"\[sample\] port"):
        config.resolve(SampleConfig, config_file=p, env={})


def test_validation_names_field_rule_value(tmp_path):
    with pytest.raises(ConfigError, match=r"`port` must be > 0, got 0"):
        config.resolve(SampleConfig, env={"INHOUSE_SAMPLE_PORT": "0"})


def test_unknown_env_key():
    with pytest.raises(ConfigError, match="INHOUSE_SAMPLE_PROT"):
        config.resolve(SampleConfig, env={"INHOUSE_SAMPLE_PROT": "1"})


def test_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.resolve(SampleConfig, config_file=write(tmp_path, "[sample\n"), env={})


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.resolve(SampleConfig, config_file=tmp_path / "missing.toml", env={})


def test_bool_env_values():
    assert config.resolve(SampleConfig, env={"INHOUSE_SAMPLE_ENABLED": "off"}).enabled is False
    with pytest.raises(ConfigError, match="expected a boolean"):
        config.resolve(SampleConfig, env={"INHOUSE_SAMPLE_ENABLED": "maybe"})


def test_to_dict_round_trip():
    d = config.to_dict(SampleConfig())
    assert d["languages"] == ["python"] and d["port"] == 8080
