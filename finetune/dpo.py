"""`inhouse dpo`: preference-tune a team's adapter on the pairs the gateway exported (what users kept over what
they were shown), with TRL's DPOTrainer; reads top to bottom.

pairs (validated) → tokenizer and base model → the current adapter, trainable → TRL copies it into a frozen
"ref" adapter (the reference model) → DPO steps within a budget → DPO loss on the pairs → a complete adapter
directory (weights, tokenizer, inhouse.json with the current adapter's profile) built aside and renamed into
place. Called by finetune/cli.py; `inhouse cycle` runs it as a subprocess.

The reference is the current adapter, frozen, not the base: DPO keeps the tuned policy near its reference,
and the adapter that passed the exam is what should be kept near (the base would pull the tuned adapter back
toward untuned completions); the policy starts equal to it, so the DPO loss starts at ln 2.
The pairs' prompts are the rendered FIM prompts the language server sent, stored verbatim by the gateway, and
they are tokenized here as the model server tokenizes a prompt (alone, with the profile's BOS rule); each
completion is tokenized on its own and followed by the EOS token (a suggestion is a whole middle; in the FIM
training examples the end token follows it). TRL's own tokenization (prompt + completion as one text) would
merge tokens across the cursor and train on prompts the server never sends.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from core.artifacts import atomic_directory, file_sha256, read_info, write_info, write_json_atomic
from core.completion.profile import PROFILE_KEY, profile_of_info
from core.config import to_dict
from core.errors import ConfigError, ModelError
from finetune.config import DpoConfig

log = logging.getLogger(__name__)

FIELDS = ("prompt", "chosen", "rejected")
CONFIG_FILE = "inhouse_dpo_config.json"
METRICS_FILE = "metrics.jsonl"


def read_pairs(path: str | Path) -> list[dict[str, str]]:
    """The preference pairs of a JSONL file (`inhouse admin suggestions export`); a ConfigError naming the file
    and line for anything else."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--preferences {str(path)!r} cannot be read: {exc}") from exc
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{where}: not a JSON object: {exc}") from exc
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: must be a JSON object with {', '.join(FIELDS)}, got {type(row).__name__}")
        for name in FIELDS:
            value = row.get(name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: `{name}` must be a non-empty string, got {str(value)[:60]!r}")
        if row["chosen"] == row["rejected"]:
            raise ConfigError(f"{where}: `chosen` and `rejected` are the same text: no preference")
        pairs.append({name: row[name] for name in FIELDS})
    if not pairs:
        raise ConfigError(f"--preferences {str(path)!r} holds no pairs (export some with "
                          "`inhouse admin suggestions export`)")
    return pairs


def dpo(base: str | Path, adapter: str | Path, preferences: str | Path, out: str | Path, cfg: DpoConfig, *,
        overwrite: bool = False, run_metadata: dict[str, str] | None = None) -> Path:
    """DPO-tune `adapter` (of `base`) on `preferences` into the adapter directory `out`; returns `out`."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback, set_seed
    from trl import DPOConfig, DPOTrainer

    # --- 1. inputs ------------------------------------------------------------------------------------------------
    base, adapter, preferences, out = Path(base).resolve(), Path(adapter).resolve(), Path(preferences), Path(out)
    if not (base / "config.json").is_file():
        raise ModelError(f"--base {str(base)!r} is not a model directory (no config.json)")
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(f"--adapter {str(adapter)!r} is not an adapter directory (no adapter_config.json)")
    if out.exists() and not overwrite:
        raise ModelError(f"output {str(out)!r} already exists (use --overwrite to replace it)")
    pairs = read_pairs(preferences)
    current = read_info(adapter)
    if current.get("base_model") and Path(current["base_model"]).resolve() != base:
        log.warning("the adapter was trained on %s, not on --base %s", current["base_model"], base)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)

    # --- 2. tokenizer, base model and the current adapter (trainable; TRL freezes a copy as the reference) -------
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    add_special = _bos_rule(current, adapter, base)
    kept, too_long = _encode(pairs, tokenizer, add_special, cfg.max_length)
    if not kept:
        raise ConfigError(f"every pair of {str(preferences)!r} is longer than `max_length` {cfg.max_length} tokens")
    cuda = torch.cuda.is_available()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter,
                                      is_trainable=True)
    model.config.use_cache = False

    # --- 3. DPO -----------------------------------------------------------------------------------------------------
    with atomic_directory(out, overwrite=overwrite) as tmp:
        steps = cfg.max_steps or max(1, math.ceil(len(kept) / cfg.batch_size))
        args = DPOConfig(output_dir=str(tmp / "trainer"), beta=cfg.beta, learning_rate=cfg.lr, max_steps=steps,
                         per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
                         seed=cfg.seed, data_seed=cfg.seed, logging_steps=1, save_strategy="no", report_to=[],
                         use_cpu=not cuda, max_length=None, activation_checkpointing=cfg.gradient_checkpointing,
                         disable_dropout=True, dataloader_num_workers=0, disable_tqdm=True,
                         bf16=False, fp16=False)  # full precision, as `inhouse train` without --bf16
        started = time.monotonic()

        class Budget(TrainerCallback):
            def on_step_end(self, _args, state, control, **_kwargs):
                if cfg.max_minutes and time.monotonic() - started > cfg.max_minutes * 60:
                    log.info("time budget of %.1f minutes spent at step %d", cfg.max_minutes, state.global_step)
                    control.should_training_stop = True
                return control

        class Pretokenized(DPOTrainer):
            def _prepare_dataset(self, dataset, *_args, **_kwargs):
                return dataset  # already prompt_ids / chosen_ids / rejected_ids, tokenized as the server does

        trainer = Pretokenized(model=model, args=args, train_dataset=Dataset.from_list(kept),
                               processing_class=tokenizer, callbacks=[Budget()])
        trainer.remove_callback(PrinterCallback)  # stdout stays clean; each step's log goes to metrics.jsonl
        try:
            trainer.train()
            scored = kept[:cfg.eval_limit] if cfg.eval_limit else kept
            final = trainer.evaluate(Dataset.from_list(scored))
        finally:
            # The Trainer leaves accelerate's process-wide state behind; a later `train` in the same process
            # (a test run, a notebook) could not then pick its own precision.
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
        elapsed = time.monotonic() - started

        # --- 4. save: the adapter, tokenizer, inhouse.json, resolved config and the step log --------------------
        model.save_pretrained(str(tmp), selected_adapters=["default"])  # the trained adapter, not TRL's "ref" copy
        tokenizer.save_pretrained(tmp)
        history = [h for h in trainer.state.log_history if "loss" in h]
        with (tmp / METRICS_FILE).open("w", encoding="utf-8") as fh:
            for record in trainer.state.log_history:
                fh.write(json.dumps(record) + "\n")
        write_json_atomic(tmp / CONFIG_FILE, {"dpo": to_dict(cfg), "base": str(base), "adapter": str(adapter),
                                              "preferences": str(preferences), **(run_metadata or {})})
        _remove_tree(tmp / "trainer")
        info = {
            "kind": "adapter", "method": "dpo", "base_model": str(base),
            "fim_format": current.get("fim_format"), PROFILE_KEY: current.get(PROFILE_KEY),
            "init_adapter": str(adapter), "init_adapter_sha256": _weights_sha256(adapter),
            "preferences": str(preferences), "preferences_sha256": file_sha256(preferences),
            "pairs": len(pairs), "pairs_used": len(kept), "pairs_too_long": too_long, "beta": cfg.beta,
            "steps": trainer.state.global_step, "elapsed_s": round(elapsed, 2),
            "dpo_loss_start": math.log(2),  # the policy equals its reference before the first step
            "dpo_loss": final.get("eval_loss"), "reward_accuracy": final.get("eval_rewards/accuracies"),
            "reward_margin": final.get("eval_rewards/margins"), "pairs_scored": len(scored),
            "first_step_loss": history[0]["loss"] if history else None,
            **(run_metadata or {})}
        write_info(tmp, {k: v for k, v in info.items() if v is not None})
    log.info("DPO adapter written to %s (%d steps, DPO loss %.4f on %d pairs)", out, info["steps"],
             info["dpo_loss"] or float("nan"), len(scored))
    return out


def _bos_rule(current: dict, adapter: Path, base: Path) -> bool:
    """Whether the server adds special tokens to this adapter's prompts (its profile's BOS rule, else the base's;
    without either, TGI's default: yes)."""
    profile = profile_of_info(current, where=f"adapter {str(adapter)!r}") or \
        profile_of_info(read_info(base), where=f"base model {str(base)!r}")
    return profile.bos.add_special_tokens if profile is not None else True


def _encode(pairs: list[dict[str, str]], tokenizer, add_special: bool, max_length: int
            ) -> tuple[list[dict[str, list[int]]], int]:
    """Token ids of each pair (prompt as the server encodes it; each completion alone, then EOS), keeping those
    whose prompt + longer completion fit `max_length`; and how many did not fit."""
    eos = tokenizer.eos_token_id
    kept = []
    for pair in pairs:
        row = {"prompt_ids": tokenizer(pair["prompt"], add_special_tokens=add_special)["input_ids"],
               "chosen_ids": tokenizer(pair["chosen"], add_special_tokens=False)["input_ids"] + [eos],
               "rejected_ids": tokenizer(pair["rejected"], add_special_tokens=False)["input_ids"] + [eos]}
        if len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= max_length:
            kept.append(row)
    if len(kept) < len(pairs):
        log.warning("%d of %d pairs are longer than max_length %d tokens and were left out",
                    len(pairs) - len(kept), len(pairs), max_length)
    return kept, len(pairs) - len(kept)


def _weights_sha256(adapter: Path) -> str | None:
    weights = adapter / "adapter_model.safetensors"
    return file_sha256(weights) if weights.is_file() else None


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
