"""Continued training (`inhouse train --init-adapter DIR`): start from an existing adapter, not a fresh LoRA.

The flywheel retrains a team's current adapter on fresh code: its LoRA config is the run's (a conflicting
`--lora-r` etc. is refused, naming both values), its weights are the starting point and stay trainable, and it
must have been trained for this base (the base it names, its FIM format and every tensor's shape are checked
before any work). Called by finetune/train.py; the adapter's path and content hash go into inhouse.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.artifacts import file_sha256, read_info
from core.errors import ConfigError, ModelError
from finetune.checkpoint import ADAPTER_FILE
from finetune.config import TrainConfig

log = logging.getLogger(__name__)

# TrainConfig field -> adapter_config.json key: the LoRA settings an init adapter decides.
LORA_FIELDS = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
               "target_modules": "target_modules"}
_LORA_PARTS = {"lora_A": 1, "lora_B": 0}  # tensor axis that must equal the module's in (1) / out (0) features


@dataclass(frozen=True)
class InitAdapter:
    """An adapter a run starts from: where it is, what it holds (sha256 of its weights file), its LoRA config."""

    path: Path
    sha256: str
    peft_config: dict[str, Any]
    info: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """What inhouse.json and the run's config record as `init_adapter`."""
        return {"path": str(self.path), "sha256": self.sha256, "base_model": self.info.get("base_model"),
                "steps": self.info.get("steps"), "chosen_step": self.info.get("chosen_step")}



def read_init_adapter(path: str | Path, base: Path, fim_format: str) -> InitAdapter:
    """The adapter at `path`, refused (ModelError) unless it is a safetensors LoRA adapter trained for `base`
    in `fim_format`. The base identity: the same directory, or one with the same config.json and the same
    `source` in inhouse.json (a copy); where the recorded base no longer exists the shapes decide (checked
    later, on the loaded model, by `check_shapes`)."""
    path = Path(path).resolve()
    config_file = path / "adapter_config.json"
    if not config_file.is_file() or not (path / ADAPTER_FILE).is_file():
        raise ModelError(f"--init-adapter {str(path)!r} is not a peft adapter (needs adapter_config.json and "
                         f"{ADAPTER_FILE})")
    try:
        peft_config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"--init-adapter {str(path)!r}: adapter_config.json is unreadable: {exc}") from exc
    if str(peft_config.get("peft_type", "LORA")).upper() != "LORA":
        raise ModelError(f"--init-adapter {str(path)!r} is a {peft_config.get('peft_type')} adapter, not LoRA")
    info = read_info(path)
    if info.get("fim_format") and info["fim_format"] != fim_format:
        raise ModelError(f"--init-adapter {str(path)!r} was trained in FIM format {info['fim_format']!r}, this "
                         f"run trains in {fim_format!r}")
    trained_for = info.get("base_model") or peft_config.get("base_model_name_or_path")
    if trained_for and not _same_base(Path(trained_for), base):
        raise ModelError(f"--init-adapter {str(path)!r} was trained for another base model ({trained_for}), "
                         f"not for --base {str(base)!r}")
    return InitAdapter(path, file_sha256(path / ADAPTER_FILE), peft_config, info)


def _same_base(recorded: Path, base: Path) -> bool:
    if not recorded.exists():
        log.warning("the init adapter's base %s no longer exists: only the tensor shapes are checked", recorded)
        return True
    if recorded.resolve() == base.resolve():
        return True
    try:
        same_config = json.loads((recorded / "config.json").read_text(encoding="utf-8")) == json.loads(
            (base / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return same_config and read_info(recorded).get("source") == read_info(base).get("source")


def _lora_value(field: str, value: Any) -> Any:
    if field == "target_modules":
        return tuple(sorted(value)) if isinstance(value, (list, tuple, set)) else (value,)
    return value


def resolve_lora(cfg: TrainConfig, init: InitAdapter, explicit: Collection[str] = ()) -> TrainConfig:
    """`cfg` with the init adapter's LoRA settings. A setting given (a name in `explicit`: a flag, the config file
    or the environment; any value other than the default counts as given) that differs from the adapter's is a
    ConfigError naming both values: the run cannot change the adapter's shape."""
    defaults = TrainConfig()
    changes: dict[str, Any] = {}
    for field, key in LORA_FIELDS.items():
        if key not in init.peft_config:
            continue
        theirs = _lora_value(field, init.peft_config[key])
        ours = _lora_value(field, getattr(cfg, field))
        given = field in explicit or getattr(cfg, field) != getattr(defaults, field)
        if given and ours != theirs:
            raise ConfigError(f"`{field}` is {_show(ours)} but --init-adapter {str(init.path)!r} was trained with "
                              f"{key} = {_show(theirs)}: leave `{field}` unset to continue its training")
        changes[field] = theirs if field == "target_modules" else init.peft_config[key]
    return dataclasses.replace(cfg, **changes)


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else repr(value)


def lora_config(init: InitAdapter):
    """peft's LoraConfig of the init adapter, trainable (every setting it was trained with: rank patterns,
    rsLoRA, DoRA...); the base it names is this run's (peft fills it in)."""
    from peft import LoraConfig

    known = {f.name for f in dataclasses.fields(LoraConfig)}
    kwargs = {k: v for k, v in init.peft_config.items()
              if k in known and k not in ("inference_mode", "base_model_name_or_path", "revision")}
    return LoraConfig(**dict(kwargs, inference_mode=False))


def check_shapes(model: Any, init: InitAdapter, base: Path) -> dict[str, Any]:
    """The init adapter's weights, once every LoRA tensor is found to attach to a module of `model` with its
    shape (a ModelError naming the adapter and the base otherwise)."""
    from safetensors.torch import load_file
    from torch import nn

    weights = load_file(str(init.path / ADAPTER_FILE))
    shapes = {name: (m.in_features, m.out_features) for name, m in model.named_modules()
              if isinstance(m, nn.Linear)}
    bad = []
    for key, tensor in weights.items():
        parts = key.removeprefix("base_model.model.").split(".")
        kind = next((p for p in parts if p in _LORA_PARTS), None)
        module = ".".join(parts[:parts.index(kind)]) if kind else key
        if kind is None or module not in shapes or tensor.dim() != 2:
            bad.append(f"{key} (no such LoRA module in the model)")
            continue
        axis = _LORA_PARTS[kind]
        want = shapes[module][0] if axis == 1 else shapes[module][1]
        if tensor.shape[axis] != want:
            bad.append(f"{module} ({kind} has {tensor.shape[axis]} {'inputs' if axis else 'outputs'}, the base "
                       f"{want})")
    if bad:
        raise ModelError(f"--init-adapter {str(init.path)!r} was trained for another base model than --base "
                         f"{str(base)!r}: {len(bad)} tensors do not fit, e.g. {'; '.join(bad[:3])}")
    return weights


def load_weights(peft_model: Any, weights: dict[str, Any], init: InitAdapter) -> None:
    """Put the init adapter's weights into the freshly wrapped peft model; every LoRA weight must be set."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    expected = set(get_peft_model_state_dict(peft_model))
    missing = sorted(expected - set(weights))
    if missing:
        raise ModelError(f"--init-adapter {str(init.path)!r} lacks {len(missing)} LoRA weights of its own config, "
                         f"e.g. {missing[:3]}")
    result = set_peft_model_state_dict(peft_model, weights)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ModelError(f"--init-adapter {str(init.path)!r} does not match the model (unexpected keys "
                         f"{unexpected[:3]})")
    log.info("starting from adapter %s (sha256 %s)", init.path, init.sha256[:12])
