"""Training checkpoints: written atomically every N steps, found again by `--resume` after a crash or kill -9.

A checkpoint is a directory `checkpoints/step-XXXXXXXX/` holding the adapter (peft layout, so `inhouse eval
--adapter` can score it for a learning curve), the optimizer state, the RNG states and `state.json` (the training
loop's `TrainState`: step, tokens, the planned number of steps, the best dev loss). It is written under a
temporary name and renamed when complete, so a half-written checkpoint is never seen. Called by
finetune/train.py on the main process only (DDP replicas hold identical states).
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.artifacts import atomic_directory, write_json_atomic
from core.errors import ModelError

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
ADAPTER_FILE = "adapter_model.safetensors"  # with adapter_config.json: loadable by peft (learning curves)
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.pt"
_NAME = re.compile(r"^step-(\d{8})$")


@dataclass
class TrainState:
    """What the training loop carries from step to step and a resume needs back; `state.json` holds it.

    Mutable: the loop updates it in place every step. The file's keys are the field names, unversioned: fields
    have only ever been added (`init_adapter_sha256` with --init-adapter, `best_dev` with completion profiles), so
    `from_dict` gives a field an older file lacks its default. `best_dev` is written once a dev evaluation ran."""

    planned_steps: int                 # the last step of the cosine schedule (refitted to a time budget)
    step: int = 0                      # optimizer steps done
    elapsed_s: float = 0.0             # training seconds so far, across resumes
    tokens: int = 0                    # tokens seen (all processes)
    best_dev_loss: float | None = None  # the lowest mean dev loss so far
    best_step: int | None = None       # the step that scored it (its checkpoint is never pruned)
    best_dev: dict[str, float] = field(default_factory=dict)  # that evaluation: dev_loss, dev_loss_psm...
    budget_fixed: bool = False         # the schedule has been fitted to the time budget once
    init_adapter_sha256: str | None = None  # the --init-adapter the run started from (a resume must agree)

    def to_dict(self) -> dict[str, Any]:
        """As `state.json` holds it."""
        data: dict[str, Any] = {"step": self.step, "planned_steps": self.planned_steps, "elapsed_s": self.elapsed_s,
                                "tokens": self.tokens, "best_dev_loss": self.best_dev_loss,
                                "best_step": self.best_step, "budget_fixed": self.budget_fixed,
                                "init_adapter_sha256": self.init_adapter_sha256}
        if self.best_dev:
            data["best_dev"] = dict(self.best_dev)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        """From `state.json`, of this version or an older one (a missing field takes its default)."""
        unknown = sorted(set(data) - _STATE_KEYS)
        if unknown:
            log.warning("checkpoint state has fields this version does not know, ignored: %s", unknown)
        best_loss, best_step = data.get("best_dev_loss"), data.get("best_step")
        return cls(planned_steps=int(data["planned_steps"]), step=int(data["step"]),
                   elapsed_s=float(data.get("elapsed_s", 0.0)), tokens=int(data.get("tokens", 0)),
                   best_dev_loss=None if best_loss is None else float(best_loss),
                   best_step=None if best_step is None else int(best_step),
                   best_dev={str(k): float(v) for k, v in (data.get("best_dev") or {}).items()},
                   budget_fixed=bool(data.get("budget_fixed", False)),
                   init_adapter_sha256=data.get("init_adapter_sha256"))


_STATE_KEYS = frozenset(TrainState.__dataclass_fields__)


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"step-{step:08d}"


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temporary `.partial` directories never match)."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _NAME.match(path.name)
        if m and (path / STATE_FILE).is_file() and (path / ADAPTER_FILE).is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


def adapter_state(model) -> dict[str, Any]:
    """The trainable LoRA weights of a peft model, detached on CPU."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().to("cpu").contiguous() for k, v in get_peft_model_state_dict(model).items()}


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: Path, state: TrainState, adapter: dict[str, Any], optimizer_state: dict[str, Any] | None,
                    adapter_config: dict[str, Any] | None = None, info: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint of `state.step` atomically; the state JSON goes last so only complete directories
    count.

    `optimizer_state` is None for sharded runs (FSDP, DeepSpeed): a resume there restarts the optimizer moments.
    """
    import torch
    from safetensors.torch import save_file

    target = checkpoint_dir(out_dir, state.step)
    with atomic_directory(target, overwrite=True) as tmp:
        save_file(adapter, str(tmp / ADAPTER_FILE), metadata={"format": "pt"})
        if adapter_config is not None:
            write_json_atomic(tmp / "adapter_config.json", adapter_config)
        if info is not None:
            write_json_atomic(tmp / "inhouse.json", info)
        if optimizer_state is not None:
            torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
        torch.save(rng_state(), tmp / RNG_FILE)
        write_json_atomic(tmp / STATE_FILE, state.to_dict())
    log.info("checkpoint %s", target)
    return target


def read_state(path: Path) -> TrainState:
    try:
        return TrainState.from_dict(json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"checkpoint {str(path)!r} is unreadable: {exc!r}") from exc


def read_adapter_weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / ADAPTER_FILE))


def load_adapter_weights(path: Path, model) -> None:
    """Put a checkpoint's LoRA weights into a peft model."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, read_adapter_weights(path))
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ModelError(f"checkpoint {str(path)!r} does not match this model (unexpected keys {unexpected[:3]})")


def load_checkpoint(path: Path, model, optimizer) -> TrainState:
    """Restore weights, optimizer and RNG states; returns the saved loop state."""
    import torch

    path = Path(path)
    load_adapter_weights(path, model)
    if (path / OPTIMIZER_FILE).is_file():
        optimizer.load_state_dict(torch.load(path / OPTIMIZER_FILE, map_location="cpu", weights_only=False))
    else:
        log.warning("checkpoint %s has no optimizer state (a sharded run): optimizer moments restart", path)
    set_rng_state(torch.load(path / RNG_FILE, map_location="cpu", weights_only=False))
    return read_state(path)


def prune(out_dir: Path, keep: int, protect: set[int]) -> None:
    """Remove all but the newest `keep` checkpoints, never one whose step is in `protect` (the best on dev)."""
    found = list_checkpoints(out_dir)
    for step, path in found[:-keep] if keep else found:
        if step not in protect:
            shutil.rmtree(path, ignore_errors=True)
