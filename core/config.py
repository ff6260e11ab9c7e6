"""Configuration: one TOML file (`inhouse.toml`), a section per component, frozen dataclasses.

Each component owns a frozen dataclass (every field defaulted) and registers it under its section name
with `register_section`. Entry points resolve a section once with `resolve(...)`, with the precedence
defaults < file < `INHOUSE_<SECTION>_<KEY>` environment < CLI flags, and pass the object down.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from core.errors import ConfigError

T = TypeVar("T")

DEFAULT_CONFIG_NAME = "inhouse.toml"
ENV_PREFIX = "INHOUSE_"

_SECTIONS: dict[str, type] = {}


def register_section(name: str, cls: type) -> type:
    """Register a component's frozen dataclass under its TOML section name (idempotent)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    for field in dataclasses.fields(cls):
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name} has no default: every config field needs one")
    _SECTIONS[name] = cls
    return cls


def section(name: str):
    """Class decorator form of `register_section`."""

    def wrap(cls: type[T]) -> type[T]:
        register_section(name, cls)
        return cls

    return wrap


def registered_sections() -> dict[str, type]:
    return dict(_SECTIONS)


def find_config_file(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file to use: an explicit path (must exist), `$INHOUSE_CONFIG`, or ./inhouse.toml if present."""
    env = os.environ if env is None else env
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        return path
    if env.get("INHOUSE_CONFIG"):
        path = Path(env["INHOUSE_CONFIG"])
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} (from INHOUSE_CONFIG) does not exist")
        return path
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def read_file(path: Path | None) -> dict[str, dict[str, Any]]:
    """Parse a config file into {section: {key: value}}; an empty file is valid."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: top-level key {name!r} must be a [section] table")
    return data


def check_sections(data: Mapping[str, Any], path: Path | None) -> None:
    """Every section in the file must belong to a registered component."""
    for name in data:
        if name not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(f"{path}: unknown section [{name}] (known sections: {known})")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Coerce a TOML or environment value to a field's annotated type, naming the field on failure."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            if type(None) in typing.get_args(hint):
                return None
        hint = args[0] if len(args) == 1 else hint
        origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected a boolean, got {value!r}")
        if hint is int:
            if isinstance(value, bool):
                raise ValueError(f"expected an integer, got {value!r}")
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError(f"expected a string, got {value!r}")
            return str(value)
        if origin in (tuple, list):
            items = value.split(",") if isinstance(value, str) else list(value)
            if isinstance(value, str):
                items = [i.strip() for i in items if i.strip()]
            (item_hint, *_rest) = typing.get_args(hint) or (str,)
            return tuple(_coerce(i, item_hint, where) for i in items)
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError(f"expected a table, got {value!r}")
            return dict(value)
        if isinstance(hint, type) and issubclass(hint, str):  # str Enums
            return hint(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def resolve(
    cls: type[T],
    section_name: str | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build a section's config: defaults < file < INHOUSE_<SECTION>_<KEY> env < overrides (CLI flags).

    `overrides` values of None mean "flag not given" and are skipped.
    """
    env = os.environ if env is None else env
    name = section_name or next((n for n, c in _SECTIONS.items() if c is cls), None)
    if name is None:
        raise TypeError(f"{cls.__name__} is not a registered config section")
    path = find_config_file(config_file, env)
    data = read_file(path)
    check_sections(data, path)
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cast(Any, cls))}  # a registered section is a dataclass
    values: dict[str, Any] = {}
    for key, value in data.get(name, {}).items():
        if key not in names:
            raise ConfigError(f"{path}: unknown key {key!r} in section [{name}] (known: {', '.join(sorted(names))})")
        values[key] = _coerce(value, hints[key], f"{path}: [{name}] {key}")
    prefix = f"{ENV_PREFIX}{name.upper().replace('-', '_')}_"
    for var, value in env.items():
        if not var.startswith(prefix):
            continue
        key = var[len(prefix):].lower()
        if key not in names:
            raise ConfigError(f"environment variable {var}: unknown key {key!r} for section [{name}]")
        values[key] = _coerce(value, hints[key], f"environment variable {var}")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in names:
            raise ConfigError(f"unknown option {key!r} for section [{name}]")
        values[key] = _coerce(value, hints[key], f"option --{key.replace('_', '-')}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{name}] {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Invocation:
    """What the `inhouse` entry point resolved before any command runs; it reaches each command as `ctx.obj`."""

    config_file: Path | None = None  # --config; None: $INHOUSE_CONFIG or ./inhouse.toml
    debug: bool = False  # --debug


def resolve_section(invocation: object, cls: type[T], **overrides: Any) -> T:
    """A command resolves its own section: defaults < the `--config` file < env < these CLI flags.

    `invocation` is Typer's `ctx.obj` (an `Invocation`), None when a command runs outside the `inhouse` app.
    """
    config_file = invocation.config_file if isinstance(invocation, Invocation) else None
    return resolve(cls, config_file=config_file, overrides=overrides)


def to_dict(obj: Any) -> dict[str, Any]:
    """A resolved config as plain JSON-ready data (for the `config.json` every run writes)."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(i) for i in v]
        if isinstance(v, Path):
            return str(v)
        if dataclasses.is_dataclass(v):
            return to_dict(v)
        return v

    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def require(condition: bool, field: str, rule: str, value: Any) -> None:
    """Validation in the house style: ``"`lora_r` must be > 0, got 0"``."""
    if not condition:
        raise ConfigError(f"`{field}` must be {rule}, got {value!r}")
