"""`inhouse train`: LoRA-tune a base model on a corpus dataset; reads top to bottom like a training script.

resolved config → tokenizer and model → peft LoraConfig → data → loop (cosine schedule with warmup, gradient
accumulation and clipping, dev loss every N steps, atomic checkpoints, time budget) → save (adapter, inhouse.json,
inhouse_train_config.json, metrics.jsonl, loss curve). Runs alone or under `accelerate launch` / `torchrun`
(DDP; FSDP and DeepSpeed through the configs in finetune/accelerate/). Called by finetune/cli.py and bench/train.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from core import fim
from core.artifacts import read_info, write_info, write_json_atomic
from core.completion.profile import PROFILE_KEY, CompletionProfile, profile_of_info
from core.config import to_dict
from core.errors import ConfigError, CorpusError, ModelError
from core.usage import no_usage_reports
from finetune import checkpoint as ckpt
from finetune import continued, runlog, trainset
from finetune import data as D
from finetune.config import TrainConfig

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = runlog.TRAIN_CONFIG_FILE
LOSS_CURVE = "loss_curve.png"


def train(base: str | Path, dataset: str | Path, out: str | Path, cfg: TrainConfig, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, run_metadata: dict[str, str] | None = None,
          init_adapter: str | Path | None = None, lora_given: Collection[str] = ()) -> Path:
    """Train an adapter of `base` on `dataset` into `out`; returns `out`.

    `init_adapter`: continue training that adapter (its LoRA config and weights) instead of a fresh LoRA;
    `lora_given`: the LoRA fields the caller set explicitly, which must then agree with it
    (finetune/continued.py)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, gather_object
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, set_seed

    # --- 1. resolved config, inputs and the output directory ------------------------------------------------------
    base, dataset, out = Path(base).resolve(), Path(dataset).resolve(), Path(out)
    if not (base / "config.json").is_file():
        raise ModelError(f"--base {str(base)!r} is not a model directory (no config.json)")
    manifest = D.read_manifest(dataset)
    fmt = fim.get_format(_fim_format(base, manifest))
    init = continued.read_init_adapter(init_adapter, base, fmt.name) if init_adapter is not None else None
    if init is not None:
        if init.path == out.resolve() or out.resolve() in init.path.parents:
            raise ConfigError(f"--init-adapter {str(init.path)!r} is inside --out {str(out)!r}: write the new "
                              "adapter elsewhere (the run would replace what it starts from)")
        cfg = continued.resolve_lora(cfg, init, lora_given)
    cuda = torch.cuda.is_available()
    if cfg.qlora and not cuda:
        raise ConfigError("`qlora` needs a CUDA GPU (bitsandbytes 4-bit); run without --qlora on this machine")
    accelerator = Accelerator(mixed_precision="bf16" if (cfg.bf16 and cuda) else "no", cpu=not cuda,
                              **_tracker_args(cfg, out))
    main = accelerator.is_main_process
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if accelerator.distributed_type == DistributedType.DEEPSPEED and cfg.grad_accum > 1:
        raise ConfigError("`grad_accum` must be 1 under DeepSpeed (set gradient_accumulation_steps in the "
                          "DeepSpeed config instead), got " + str(cfg.grad_accum))
    if cfg.bf16 and not cuda:
        log.warning("--bf16 takes effect on a CUDA GPU only; training in float32")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start_from = _prepare_output(out, resume, overwrite) if main else None
    accelerator.wait_for_everyone()
    if not main:
        start_from = ckpt.latest_checkpoint(out) if resume else None

    # --- 2. tokenizer and model -----------------------------------------------------------------------------------
    tokenizer = AutoTokenizer.from_pretrained(base)
    fim.check_sentinels(fmt, tokenizer)
    model = _load_model(base, cfg, cuda, accelerator.local_process_index)

    # --- 3. LoRA: every attention and MLP projection; no modules_to_save, no new tokens (or the init adapter's) --
    set_seed(cfg.seed)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM") \
        if init is None else continued.lora_config(init)
    init_weights = continued.check_shapes(model, init, base) if init is not None else None
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"`target_modules` {list(cfg.target_modules)} do not fit this model: {exc}") from exc
    if init is not None and init_weights is not None:
        continued.load_weights(model, init_weights, init)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    trainable = [p for p in model.parameters() if p.requires_grad]

    # --- 4. data: tokenize with loss masks (datasets, cached), pack with per-example isolation, fixed order ------
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    base_profile = _base_profile(base, fmt)
    bos_id = D.bos_token_id(tokenizer, base_profile.bos)  # the server encodes prompts with the same rule
    with accelerator.main_process_first():  # the other ranks read what the main one tokenized into the cache
        packed, stats = trainset.load(dataset, tokenizer, fmt, loss=cfg.loss, seq_len=cfg.seq_len,
                                      objectives=cfg.objectives, pad_id=pad_id, packing=cfg.pack, seed=cfg.seed,
                                      bos_id=bos_id, num_proc=cfg.data_workers, cache_dir=cfg.data_cache or None)
    if not stats.examples:
        raise CorpusError(f"no training examples in {dataset} for objectives {list(cfg.objectives)} within "
                          f"seq_len {cfg.seq_len} ({stats.dropped_too_long} rows were longer)")
    if stats.dropped_too_long > 0.1 * stats.rows:
        log.warning("%d of %d FIM rows are longer than seq_len %d and were dropped", stats.dropped_too_long,
                    stats.rows, cfg.seq_len)
    dev = _dev_sets(dataset, tokenizer, fmt, cfg, pad_id, stats, bos_id)
    primary = _primary_mode(dataset, cfg)  # counted over the shards a batch at a time
    plan = D.BatchPlan(len(packed), cfg.batch_size, cfg.grad_accum, accelerator.num_processes, cfg.seed)
    if plan.steps_per_epoch == 0:
        raise CorpusError(f"{len(packed)} packed sequences are fewer than one optimizer step needs "
                          f"(batch_size*grad_accum*processes = {plan.per_step})")
    planned = cfg.max_steps or max(1, math.ceil(cfg.epochs * plan.steps_per_epoch))

    # --- 5. the loop ----------------------------------------------------------------------------------------------
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = ckpt.TrainState(planned_steps=planned, init_adapter_sha256=init.sha256 if init is not None else None)
    if start_from is not None:
        started_from = ckpt.read_state(start_from).init_adapter_sha256
        if started_from != state.init_adapter_sha256:
            raise ConfigError(f"--resume: the run in {str(out)!r} started from the init adapter with sha256 "
                              f"{started_from}, this one from {state.init_adapter_sha256}: give the same "
                              "--init-adapter (or none) as the interrupted run")
        state = ckpt.load_checkpoint(start_from, model, optimizer)
        log.info("resuming from %s (step %d)", start_from, state.step)
        if main:
            runlog.truncate(out / METRICS_FILE, state.step)
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    metrics = runlog.MetricsLog(out / METRICS_FILE, enabled=main)
    if cfg.report_to:
        accelerator.init_trackers(out.name or "inhouse", config=_tracker_config(cfg))
    if state.step == 0:
        metrics.write({"event": "start", "sequences": len(packed), "steps_per_epoch": plan.steps_per_epoch,
                       "planned_steps": planned, "examples": stats.examples, "tokens": stats.tokens,
                       "loss_tokens": stats.loss_tokens, "dropped_too_long": stats.dropped_too_long,
                       "processes": accelerator.num_processes})
    budget_s = cfg.max_minutes * 60.0
    step_times: list[float] = []
    bar = runlog.progress_bar(planned, state.step, enabled=main and progress)
    started = time.perf_counter() - state.elapsed_s
    step = state.step
    while step < state.planned_steps:
        model.train()
        t0 = time.perf_counter()
        micro = [packed.batch(plan.indices(step, m, accelerator.process_index)) for m in range(cfg.grad_accum)]
        targets = sum(int((batch.labels[:, 1:] != D.IGNORE).sum()) for batch in micro)
        loss_sum = torch.zeros((), device=device)
        for m, batch in enumerate(micro):
            sync = contextlib.nullcontext() if m == cfg.grad_accum - 1 else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                out_ = model(input_ids=batch.input_ids.to(device), position_ids=batch.position_ids.to(device),
                             labels=batch.labels.to(device), use_cache=False, num_items_in_batch=max(targets, 1))
                accelerator.backward(out_.loss)
            loss_sum += out_.loss.detach()
        lr = _lr_at(step, state.planned_steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        grad_norm = accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm) if cfg.max_grad_norm > 0 else None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        state.step = step
        dt = time.perf_counter() - t0
        step_times.append(dt)
        tokens = plan.per_step * cfg.seq_len
        state.tokens += tokens
        state.elapsed_s = time.perf_counter() - started
        if step % cfg.log_every == 0 or step == state.planned_steps:
            if accelerator.num_processes > 1:
                loss_sum = accelerator.reduce(loss_sum, reduction="mean")
            loss_val = float(loss_sum)
            record = {"step": step, "loss": round(loss_val, 5), "lr": lr, "tokens": state.tokens,
                      "tokens_per_s": round(tokens / dt, 1), "elapsed_s": round(state.elapsed_s, 2),
                      "epoch": round(step / plan.steps_per_epoch, 4), "batch_hash": D.batch_hash(
                          micro[0].input_ids)}
            if grad_norm is not None:
                record["grad_norm"] = round(float(grad_norm), 4)
            metrics.write(record)
            _track(accelerator, cfg, record, step)
            bar.set_postfix(loss=f"{loss_val:.3f}", tok_s=f"{tokens / dt:,.0f}", refresh=False)
        bar.update(1)
        if budget_s and len(step_times) >= 5 and (not state.budget_fixed or step % REFIT_EVERY == 0):
            fitted = _fit_budget(step, state.elapsed_s, step_times[1:][-REFIT_EVERY:], budget_s, planned)
            if not state.budget_fixed or abs(fitted - state.planned_steps) > 0.1 * state.planned_steps:
                state.planned_steps = fitted
            state.budget_fixed = True
            bar.total = state.planned_steps
        out_of_time = bool(budget_s) and state.elapsed_s >= budget_s
        last = step >= state.planned_steps or out_of_time
        if dev and (last or (cfg.eval_every and step % cfg.eval_every == 0)):  # every rank: same result
            t_dev = time.perf_counter()
            dev_loss = _evaluate(model, dev, cfg.batch_size, device)
            metrics.write({"step": step, "event": "dev", "elapsed_s": round(state.elapsed_s, 2),
                           "dev_seconds": round(time.perf_counter() - t_dev, 2), **dev_loss})
            _track(accelerator, cfg, dev_loss, step)
            if state.best_dev_loss is None or dev_loss["dev_loss"] < state.best_dev_loss:
                state.best_dev_loss, state.best_step = dev_loss["dev_loss"], step
                state.best_dev = dev_loss
        if last or (cfg.save_every and step % cfg.save_every == 0) or state.best_step == step:
            weights = _adapter_weights(accelerator, model, sharded)  # a collective when sharded
            if main and weights is not None:
                ckpt.save_checkpoint(out, state, weights, None if sharded else optimizer.state_dict(),
                                     _peft_config(accelerator.unwrap_model(model)),
                                     {"kind": "adapter", "base_model": str(base), "fim_format": fmt.name,
                                      "step": step, "elapsed_s": round(state.elapsed_s, 2),
                                      PROFILE_KEY: _trained_profile(base_profile, primary, cfg,
                                                                    state.best_dev).to_dict()})
                ckpt.prune(out, cfg.keep_checkpoints, {state.best_step} if state.best_step else set())
        if out_of_time:
            log.info("time budget of %.1f minutes spent at step %d", cfg.max_minutes, step)
            break
    bar.close()
    if cfg.report_to:
        accelerator.end_training()  # flushes and closes the trackers' files

    # --- 6. save: the best adapter on dev, inhouse.json, resolved config, metrics and the loss curve -------------
    weights = _adapter_weights(accelerator, model, sharded)
    hashes = gather_object([_weights_hash(weights) if weights is not None else None])
    accelerator.wait_for_everyone()
    if not main:
        return out
    hashes = [h for h in hashes if h is not None]
    if len(set(hashes)) != 1:
        raise ModelError(f"data-parallel ranks disagree on the trained weights: {hashes}")
    chosen = state.best_step or step
    if chosen != step or weights is None:
        weights = ckpt.read_adapter_weights(ckpt.checkpoint_dir(out, chosen))
    _save_adapter(weights, accelerator.unwrap_model(model), out)
    tokenizer.save_pretrained(out)
    write_json_atomic(out / CONFIG_FILE, {
        "train": to_dict(cfg), "base": str(base), "data": str(dataset), "processes": accelerator.num_processes,
        "rank_weight_hashes": hashes, "init_adapter": init.record() if init is not None else None,
        **(run_metadata or {})})
    metrics.write({"event": "end", "step": step, "chosen_step": chosen, "best_dev_loss": state.best_dev_loss,
                   "elapsed_s": round(state.elapsed_s, 2), "weights_sha256": hashes[0]})
    from finetune.report import plot_loss_curve

    plot_loss_curve(out / METRICS_FILE, out / LOSS_CURVE)
    write_info(out, {
        "kind": "adapter", "base_model": str(base), "fim_format": fmt.name, "dataset": str(dataset),
        "dataset_manifest_sha256": D.manifest_hash(dataset), "steps": step, "chosen_step": chosen,
        "dev_loss": state.best_dev_loss, "objectives": stats.by_objective, "loss": cfg.loss,
        "seq_len": cfg.seq_len, "primary_mode": primary,
        "init_adapter": init.record() if init is not None else None,
        PROFILE_KEY: _trained_profile(base_profile, primary, cfg, state.best_dev).to_dict(),
        **(run_metadata or {})})
    log.info("adapter written to %s (step %d of %d, chosen on dev: %d)", out, step, state.planned_steps, chosen)
    return out


def _fim_format(base: Path, manifest: dict[str, Any]) -> str:
    model_fmt = read_info(base).get("fim_format")
    data_fmt = manifest.get("fim_format")
    if model_fmt and data_fmt and fim.get_format(model_fmt).name != fim.get_format(data_fmt).name:
        raise ConfigError(f"the dataset is rendered in FIM format {data_fmt!r} but the base model uses "
                          f"{model_fmt!r}; rebuild the corpus with --fim-format {model_fmt}")
    name = data_fmt or model_fmt
    if not name:
        raise ConfigError("neither the base model's inhouse.json nor the dataset manifest names a FIM format")
    return name


def _prepare_output(out: Path, resume: bool, overwrite: bool) -> Path | None:
    """Check the output directory; the checkpoint to resume from (None: start fresh)."""
    if out.exists() and overwrite and not resume:
        shutil.rmtree(out)
    if out.exists() and not resume:
        if (out / "inhouse.json").is_file():
            raise ModelError(f"output {str(out)!r} already holds a trained adapter (use --overwrite)")
        if any(out.iterdir()):
            raise ModelError(f"output {str(out)!r} exists and is not empty (use --resume to continue the run "
                             "or --overwrite to start again)")
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        return None
    found = ckpt.latest_checkpoint(out)
    if found is None:
        log.warning("--resume: no complete checkpoint in %s; starting from the beginning", out)
    return found


def _load_model(base: Path, cfg: TrainConfig, cuda: bool, local_rank: int):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if (cfg.bf16 and cuda) else torch.float32}
    if cfg.qlora:
        kwargs["quantization_config"] = qlora_config()
        kwargs["device_map"] = {"": local_rank}
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if cfg.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    model.config.use_cache = False
    return model


def qlora_config():
    """4-bit NF4 with double quantization, bf16 compute (QLoRA); needs bitsandbytes and a CUDA GPU to load."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def _dev_sets(dataset: Path, tokenizer, fmt, cfg: TrainConfig, pad_id: int, stats, bos_id: int | None
              ) -> dict[str, Any]:
    """Dev rows in each FIM order the model trains on, scored on the middle only (what the exam measures)."""
    if cfg.dev_limit == 0:
        return {}
    rows = D.load_rows(dataset, "dev", required=False)[:cfg.dev_limit]
    if not rows:
        log.warning("dataset has no dev split: the last step is kept (no checkpoint choice)")
        return {}
    orders = [o for o in ("psm", "spm") if o in cfg.objectives and stats.by_objective.get(o)] or ["psm"]
    out: dict[str, Any] = {}
    for order in orders:
        examples, _ = D.tokenize_rows(D.dev_rows_in(rows, fmt, order), tokenizer, fmt, "middle", cfg.seq_len,
                                      (order,), bos_id=bos_id)
        if examples:
            out[order] = D.pack(examples, cfg.seq_len, pad_id, packing=cfg.pack, seed=0)
    return out


def _evaluate(model, dev: dict[str, Any], batch_size: int, device) -> dict[str, float]:
    """Mean middle-token loss on the dev split, per FIM order and averaged."""
    import torch

    was_training = model.training
    model.eval()
    result: dict[str, float] = {}
    with torch.no_grad():
        for order, packed in dev.items():
            total, count = 0.0, 0
            for i in range(0, len(packed), batch_size):
                labels = packed.labels[i:i + batch_size]
                n = int((labels[:, 1:] != D.IGNORE).sum())
                if n == 0:
                    continue
                out = model(input_ids=packed.input_ids[i:i + batch_size].to(device),
                            position_ids=packed.position_ids[i:i + batch_size].to(device),
                            labels=labels.to(device), use_cache=False, num_items_in_batch=1)
                total += float(out.loss)
                count += n
            result[f"dev_loss_{order}"] = round(total / max(count, 1), 5)
    result["dev_loss"] = round(sum(result.values()) / len(result), 5)
    model.train(was_training)
    return result


REFIT_EVERY = 10  # steps between refits of the schedule to the time budget


def _lr_at(step: int, planned: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to `min_lr_ratio` of the peak at the planned last step."""
    warmup = max(1, round(cfg.warmup_ratio * planned))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, planned - warmup))
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _fit_budget(step: int, elapsed_s: float, recent: list[float], budget_s: float, ceiling: int) -> int:
    """The planned last step that makes the cosine schedule end when the time budget does: the median of the
    recent step times as the pace, 10% of what is left kept for dev evaluations and checkpoints, never past
    `ceiling` (the plan from --epochs or --max-steps). Refitted every REFIT_EVERY steps (and only when it moves
    by more than 10%), so a slow patch early in the run, another job sharing the CPU, does not shorten the
    whole run, nor a fast one overrun the budget."""
    pace = sorted(recent)[len(recent) // 2]
    left = max(0.0, budget_s - elapsed_s) * 0.9
    return min(ceiling, step + max(1, int(left / max(pace, 1e-6))))


def _primary_mode(dataset: Path, cfg: TrainConfig) -> str:
    """The exam mode an adapter is scored in by default: its main FIM order, with context if it trained so
    (counted a batch of rows at a time by `trainset.objective_counts`)."""
    objectives = trainset.objective_counts(dataset)
    counts = {o: objectives.get(o, {}).get("rows", 0) for o in ("psm", "spm") if o in cfg.objectives}
    order = max(counts, key=lambda o: counts[o]) if counts and max(counts.values()) else "psm"
    fim_rows = sum(objectives.get(o, {}).get("rows", 0) for o in ("psm", "spm"))
    with_context = fim_rows and sum(objectives.get(o, {}).get("context", 0) for o in ("psm", "spm")) * 2 >= fim_rows
    return f"{order}+ctx" if with_context else order


def _tracker_args(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Accelerator arguments for `--report-to`: accelerate's own tracker, logging under OUT/runs."""
    if not cfg.report_to:
        return {}
    import importlib.util

    from accelerate.utils import ProjectConfiguration

    package, wheel = {"tensorboard": ("tensorboard", "tensorboard"),
                      "mlflow": ("mlflow", "mlflow-skinny")}[cfg.report_to]
    if importlib.util.find_spec(package) is None and not (
            package == "tensorboard" and importlib.util.find_spec("tensorboardX") is not None):
        raise ConfigError(f"`report_to` {cfg.report_to} needs the {package} package (pip install "
                          f"'inhouse[distributed]' or pip install {wheel})")
    no_usage_reports()  # MLflow 3 sends usage events to its vendor unless told not to
    return {"log_with": cfg.report_to,
            "project_config": ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "runs"))}


def _tracker_config(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as trackers take hyperparameters: flat scalars (lists joined)."""
    return {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in to_dict(cfg).items()}


def _track(accelerator, cfg: TrainConfig, record: dict[str, Any], step: int) -> None:
    """The numbers of a metrics.jsonl record to the trackers (the main process only logs, accelerate's rule)."""
    if cfg.report_to:
        accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"},
                        step=step)


def _base_profile(base: Path, fmt) -> CompletionProfile:
    """The base model's profile (budgets, healing, BOS rule), or the defaults for its FIM format."""
    profile = profile_of_info(read_info(base), where=f"base model {str(base)!r}")
    return profile if profile is not None else CompletionProfile(fim_format=fmt.name)


def _trained_profile(base_profile: CompletionProfile, primary: str, cfg: TrainConfig,
                     dev: dict[str, float]) -> CompletionProfile:
    """The adapter's profile: the base's, in the FIM order it trained on that scored best on the dev split (its
    main order without a dev split; left-to-right when it trained on no FIM order), with repository context
    when it trained so (`primary`: `_primary_mode`). Never guessed from a model id."""
    scored = {o: dev[f"dev_loss_{o}"] for o in ("psm", "spm") if f"dev_loss_{o}" in dev}
    if scored:
        order = min(scored, key=lambda o: scored[o])
    elif any(o in cfg.objectives for o in ("psm", "spm")):
        order = primary.partition("+")[0]
    else:
        order = "l2r"
    return base_profile.variant(order + ("+ctx" if primary.endswith("+ctx") else ""))


def _adapter_weights(accelerator, model, sharded: bool) -> dict[str, Any] | None:
    """The LoRA weights: each rank's own replica (DDP, one process), or gathered to the main process when sharded
    (None on the others)."""
    from peft import get_peft_model_state_dict

    unwrapped = accelerator.unwrap_model(model)
    if sharded:
        full = accelerator.get_state_dict(model)
        if not accelerator.is_main_process:
            return None
        return {k: v.detach().to("cpu").contiguous()
                for k, v in get_peft_model_state_dict(unwrapped, state_dict=full).items()}
    return ckpt.adapter_state(unwrapped)


def _peft_config(model) -> dict[str, Any]:
    """adapter_config.json as peft writes it for inference."""
    config = model.peft_config["default"].to_dict()
    config["inference_mode"] = True
    for key, value in list(config.items()):
        if isinstance(value, set):
            config[key] = sorted(value)
    return config


def _save_adapter(weights: dict[str, Any], model, out: Path) -> None:
    """peft's adapter files (adapter_config.json, adapter_model.safetensors), written aside and moved into `out`."""
    import copy

    from safetensors.torch import save_file

    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", dir=out))
    try:
        config = copy.deepcopy(model.peft_config["default"])
        config.inference_mode = True
        config.save_pretrained(tmp)
        save_file(weights, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        for item in tmp.iterdir():
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _weights_hash(weights: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(weights.items()):
        digest.update(name.encode())
        digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()
