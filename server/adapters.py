"""The adapters directory: one peft LoRA adapter per sub-directory, its name the `adapter_id` of a request.

The directory is read on every lookup, so an adapter copied in (e.g. by `inhouse export`) is served without a
restart, and one removed is no longer accepted. An id is a plain name: it can never reach outside the
directory (no separators, no `..`, and the resolved path must sit directly inside it). Used by `server.app`;
the engine loads an adapter into the model on its first request, once `check_adapter` has found that every
tensor of it fits the served model (else a 422 naming both bases or the modules it cannot map).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.artifacts import read_info
from core.completion.profile import CompletionProfile, profile_of_info
from core.errors import ConfigError, ModelError, ValidationError

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CONFIG = "adapter_config.json"


def adapter_mtime(path: Path) -> float:
    """The newest modification time of an adapter's files (a changed adapter is reloaded)."""
    return max((p.stat().st_mtime for p in path.iterdir() if p.is_file()), default=0.0)


@dataclass(frozen=True)
class Adapter:
    id: str
    path: Path
    fim_format: str | None
    profile: CompletionProfile | None = None  # how the adapter is asked (inhouse.json; derived for older ones)


class AdapterDirectory:
    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory).resolve() if directory else None
        if self.directory is not None and not self.directory.is_dir():
            raise ModelError(f"adapters directory {str(directory)!r} does not exist")
        self._profiles: dict[Path, tuple[float, CompletionProfile | None]] = {}

    def profile(self, adapter_id: str, path: Path) -> CompletionProfile | None:
        """The adapter's profile, read again only when its files change (a derived one is logged once)."""
        mtime = adapter_mtime(path)
        cached = self._profiles.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, profile_of_info(read_info(path), where=f"adapter {adapter_id!r}"))
            self._profiles[path] = cached
        return cached[1]

    def profiles(self) -> dict[str, dict]:
        """adapter id -> its profile as JSON, for /info; an adapter whose profile is unreadable is left out and
        logged (requests naming it get a 422 that says why)."""
        out: dict[str, dict] = {}
        if self.directory is None:
            return out
        for adapter_id in self.ids():
            try:
                profile = self.profile(adapter_id, self.directory / adapter_id)
            except (ConfigError, ModelError) as exc:
                log.warning("adapter %s: %s", adapter_id, exc)
                continue
            if profile is not None:
                out[adapter_id] = profile.to_dict()
        return out

    def ids(self) -> list[str]:
        """The adapters present now, sorted."""
        if self.directory is None:
            return []
        return sorted(p.name for p in self.directory.iterdir()
                      if p.is_dir() and _ID.match(p.name) and (p / _CONFIG).is_file())

    def resolve(self, adapter_id: str, field: str = "adapter_id") -> Adapter:
        """The adapter a request names; a 422 (ValidationError) for anything not in the directory."""
        available = self.ids()
        listing = ", ".join(available) if available else "none"
        if self.directory is None:
            raise ValidationError(f"`{field}` must be one of the loaded adapters (none: the server runs without "
                                  f"--adapters), got {adapter_id!r}")
        if not _ID.match(adapter_id) or ".." in adapter_id:
            raise ValidationError(f"`{field}` must be a plain adapter name matching {_ID.pattern} "
                                  f"(available: {listing}), got {adapter_id!r}")
        path = (self.directory / adapter_id).resolve()
        if path.parent != self.directory or not (path / _CONFIG).is_file():
            raise ValidationError(f"`{field}` must name an adapter in the adapters directory "
                                  f"(available: {listing}), got {adapter_id!r}")
        try:
            profile = self.profile(adapter_id, path)
        except (ConfigError, ModelError) as exc:
            raise ValidationError(f"`{field}` names adapter {adapter_id!r}, whose inhouse.json is unusable: {exc}"
                                  ) from exc
        return Adapter(adapter_id, path, read_info(path).get("fim_format"), profile)


# ---- does an adapter fit the served model? --------------------------------------------------------------------
_PREFIX = "base_model.model."
_LORA_PARTS = {"lora_A": 1, "lora_B": 0, "lora_embedding_A": 1, "lora_embedding_B": 0}  # tensor axis -> in/out


def module_shapes(model: Any) -> dict[str, tuple[int, int]]:
    """Each module a LoRA can attach to, by path: (in, out) features of linears, (rows, dim) of embeddings."""
    from torch import nn

    shapes: dict[str, tuple[int, int]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            shapes[name] = (module.in_features, module.out_features)
        elif isinstance(module, nn.Embedding):
            shapes[name] = (module.num_embeddings, module.embedding_dim)
    return shapes


def safetensors_shapes(model_dir: Path, embeddings: bool = False) -> dict[str, tuple[int, int]]:
    """The module shapes `server.adapters.check_adapter` needs, from the safetensors headers (no weights read):
    (in, out) of each linear layer by module path. Embeddings only when asked: llama.cpp takes no LoRA on them."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, int]] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        try:
            with safe_open(str(file), "numpy") as f:
                for key in f.keys():  # noqa: SIM118 (not a dict)
                    shape = f.get_slice(key).get_shape()
                    if key.endswith(".weight") and len(shape) == 2 and (embeddings or "embed_tokens" not in key):
                        shapes[key.removesuffix(".weight")] = (int(shape[1]), int(shape[0]))
        except Exception as exc:  # safetensors raises its own types for a bad header
            raise ModelError(f"cannot read {str(file)!r} (corrupt or truncated?): {exc}") from exc
    return shapes


def check_adapter(adapter: Adapter, shapes: dict[str, tuple[int, int]], model_name: str) -> None:
    """A 422 (ValidationError) unless every tensor of the adapter attaches to a module of the model with its shape.

    Reads only the safetensors header. Names both bases when the shapes say the adapter was trained for another
    model, and lists the modules the engine cannot map (absent from the model, or not a LoRA tensor).
    """
    from safetensors import safe_open

    weights = adapter.path / "adapter_model.safetensors"
    if not weights.is_file():
        return  # a .bin adapter (or none at all): peft's own loading reports it
    try:
        with safe_open(str(weights), "numpy") as f:
            tensors = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise ValidationError(f"adapter {adapter.id!r}: {weights.name} is corrupt or truncated: {exc}") from exc
    unmapped, mismatched = [], []
    for key, shape in tensors.items():
        parts = key.removeprefix(_PREFIX).split(".")
        kind = next((p for p in parts if p in _LORA_PARTS), None)
        module = ".".join(parts[:parts.index(kind)]) if kind else ".".join(parts[:-1])
        if kind is None or module not in shapes or len(shape) != 2:
            unmapped.append(module or key)
            continue
        axis = _LORA_PARTS[kind]
        want = shapes[module][0] if axis == 1 else shapes[module][1]
        if shape[axis] != want:
            mismatched.append(f"{module} ({kind} has {shape[axis]} {'inputs' if axis else 'outputs'}, "
                              f"the model {want})")
    if mismatched:
        base = _trained_base(adapter.path)
        raise ValidationError(
            f"adapter {adapter.id!r} was trained for another base model ({base}), not for the served model "
            f"{model_name!r}: {len(mismatched)} tensors do not fit, e.g. {'; '.join(mismatched[:3])}")
    if unmapped:
        names = sorted(set(unmapped))
        raise ValidationError(
            f"adapter {adapter.id!r} has modules the engine cannot map onto {model_name!r}: "
            f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''} (only LoRA on the model's linear layers "
            f"and embeddings is served)")


def _trained_base(path: Path) -> str:
    import json

    names = []
    try:
        names.append(json.loads((path / _CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path"))
    except (OSError, ValueError, AttributeError):
        pass
    try:
        names.append(read_info(path).get("base_model"))
    except ModelError:
        pass
    known = [str(n) for n in dict.fromkeys(names) if n]
    return " / ".join(repr(n) for n in known) if known else "its adapter_config.json names none"
