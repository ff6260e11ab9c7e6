"""Config sections of `inhouse train` ([train]), `inhouse eval` ([eval]) and `inhouse dpo` ([dpo]): frozen
dataclasses, all defaulted.

Resolved once by finetune/cli.py (defaults < inhouse.toml < INHOUSE_TRAIN_*/INHOUSE_EVAL_*/INHOUSE_DPO_* env <
flags) and passed down; train.py, exam.py and dpo.py never read the environment. The defaults and their
reasons: docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import config

# Every attention and MLP projection of the Llama/Qwen/StarCoder2/Gemma families peft knows by these names.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

LOSS_MODES = ("full", "middle")
EXAM_MODES = ("l2r", "psm", "spm", "l2r+ctx", "psm+ctx", "spm+ctx")
EXAM_METRICS = ("exact_match", "edit_similarity", "identifier_precision", "identifier_recall", "syntax_valid")
GATE_RULES = ("not_worse", "better")


@config.section("train")
@dataclass(frozen=True)
class TrainConfig:
    # LoRA: rank 16 / alpha 32 on every projection; nothing else trainable, no new tokens (TGI/vLLM can serve it).
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scaling (alpha / r multiplies the update)
    lora_dropout: float = 0.05  # dropout on the LoRA path
    target_modules: tuple[str, ...] = DEFAULT_TARGETS  # projections that get LoRA (all attention and MLP)
    # Data: which dataset objectives to train on, loss mask, sequence length and packing.
    objectives: tuple[str, ...] = ("psm", "spm", "l2r")  # row objectives trained on: psm, spm, l2r
    loss: str = "full"            # "full": whole example, sentinels masked; "middle": the middle (+ end token) only
    seq_len: int = 256  # tokens per training sequence
    pack: bool = True             # several examples per sequence, each attending only to itself
    data_workers: int = 0         # processes tokenizing the train split (0: one under 20k rows, else every core)
    data_cache: str = ""          # where the tokenized split is cached ("": datasets' cache, $HF_DATASETS_CACHE)
    # Optimisation.
    batch_size: int = 8  # sequences per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 2e-4  # peak learning rate (AdamW)
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_ratio: float = 0.05  # share of steps warming the learning rate up
    min_lr_ratio: float = 0.1  # cosine schedule floor, as a share of lr
    max_grad_norm: float = 1.0  # gradient clipping norm
    epochs: float = 1.0  # passes over the training rows
    max_steps: int = 0            # 0: as many as `epochs` takes
    max_minutes: float = 0.0      # 0: no time budget; else stop (and save) when the budget is spent
    seed: int = 0  # random seed (data order, LoRA init)
    # Bookkeeping.
    eval_every: int = 50          # dev loss every N optimizer steps (0: only at the end)
    dev_limit: int = 64           # dev rows scored each time (x each FIM order; a forward pass each on CPU)
    save_every: int = 50          # checkpoint every N steps (0: only at the end)
    keep_checkpoints: int = 2  # complete checkpoints kept on disk
    log_every: int = 1  # metrics.jsonl line every N steps
    # Hardware: these take effect on a CUDA GPU.
    bf16: bool = False  # bf16 mixed precision (CUDA only)
    qlora: bool = False  # 4-bit base weights with bitsandbytes (CUDA only)
    gradient_checkpointing: bool = False  # recompute activations to save memory
    threads: int = 0              # torch intra-op threads on CPU (0: torch's default)
    report_to: str = ""           # "": metrics.jsonl only; "tensorboard" or "mlflow": also accelerate's tracker

    def __post_init__(self) -> None:
        config.require(self.lora_r > 0, "lora_r", "> 0", self.lora_r)
        config.require(self.lora_alpha > 0, "lora_alpha", "> 0", self.lora_alpha)
        config.require(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "in [0, 1)", self.lora_dropout)
        config.require(len(self.target_modules) > 0, "target_modules", "non-empty", self.target_modules)
        config.require(bool(self.objectives) and set(self.objectives) <= {"psm", "spm", "l2r"}, "objectives",
                       "a non-empty subset of psm, spm, l2r", self.objectives)
        config.require(self.loss in LOSS_MODES, "loss", f"one of {', '.join(LOSS_MODES)}", self.loss)
        config.require(self.seq_len >= 16, "seq_len", ">= 16", self.seq_len)
        config.require(self.batch_size > 0, "batch_size", "> 0", self.batch_size)
        config.require(self.grad_accum > 0, "grad_accum", "> 0", self.grad_accum)
        config.require(self.lr > 0, "lr", "> 0", self.lr)
        config.require(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "in [0, 1)", self.warmup_ratio)
        config.require(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "in [0, 1]", self.min_lr_ratio)
        config.require(self.max_grad_norm >= 0, "max_grad_norm", ">= 0", self.max_grad_norm)
        config.require(self.epochs > 0, "epochs", "> 0", self.epochs)
        config.require(self.max_steps >= 0, "max_steps", ">= 0", self.max_steps)
        config.require(self.max_minutes >= 0, "max_minutes", ">= 0", self.max_minutes)
        config.require(self.eval_every >= 0, "eval_every", ">= 0", self.eval_every)
        config.require(self.save_every >= 0, "save_every", ">= 0", self.save_every)
        config.require(self.keep_checkpoints >= 1, "keep_checkpoints", ">= 1", self.keep_checkpoints)
        config.require(self.dev_limit >= 0, "dev_limit", ">= 0", self.dev_limit)
        config.require(self.log_every >= 1, "log_every", ">= 1", self.log_every)
        config.require(self.threads >= 0, "threads", ">= 0", self.threads)
        config.require(self.data_workers >= 0, "data_workers", ">= 0 (0: automatic)", self.data_workers)
        config.require(self.report_to in ("", "tensorboard", "mlflow"), "report_to",
                       '"tensorboard", "mlflow" or empty', self.report_to)


@config.section("eval")
@dataclass(frozen=True)
class EvalConfig:
    modes: tuple[str, ...] = EXAM_MODES       # the base in every prompting mode a user could give it (--compare)
    tuned_modes: tuple[str, ...] = ()         # the tuned model's extra modes (empty: only its own profile's)
    limit: int = 0                            # 0: every eval row
    max_prompt_tokens: int = 0                # 0: each profile's own budget (what the editor sends); else override
    concurrency: int = 8                      # requests in flight to the server (it batches them)
    request_timeout_s: float = 600.0          # seconds one request may wait and run (a CPU queue is slow)
    bootstrap: int = 2000                     # paired bootstrap resamples for every difference
    seed: int = 0  # seed of the bootstrap resampling and row order
    threads: int = 0  # CPU threads of the embedded server the exam starts (0: the server's choice, half the CPUs)
    # The gate (--incumbent, --gate-only, --compare): may the candidate replace the incumbent (or the base)?
    gate_metrics: tuple[str, ...] = ("exact_match", "edit_similarity")  # metrics the candidate must not lose on
    gate_rule: str = "not_worse"  # "not_worse": no gate metric significantly worse; "better": also every mean up
    gate_margin: float = 0.0  # points of loss tolerated: eligible iff each interval's upper end >= -gate_margin

    def __post_init__(self) -> None:
        config.require(bool(self.gate_metrics) and set(self.gate_metrics) <= set(EXAM_METRICS), "gate_metrics",
                       f"a non-empty subset of {', '.join(EXAM_METRICS)}", self.gate_metrics)
        config.require(self.gate_rule in GATE_RULES, "gate_rule", f"one of {', '.join(GATE_RULES)}", self.gate_rule)
        config.require(0.0 <= self.gate_margin <= 100.0, "gate_margin", "in [0, 100] (points)", self.gate_margin)
        config.require(bool(self.modes) and set(self.modes) <= set(EXAM_MODES), "modes",
                       f"a non-empty subset of {', '.join(EXAM_MODES)}", self.modes)
        config.require(set(self.tuned_modes) <= set(EXAM_MODES), "tuned_modes",
                       f"a subset of {', '.join(EXAM_MODES)}", self.tuned_modes)
        config.require(self.limit >= 0, "limit", ">= 0", self.limit)
        config.require(self.max_prompt_tokens == 0 or self.max_prompt_tokens >= 32, "max_prompt_tokens",
                       "0 or >= 32", self.max_prompt_tokens)
        config.require(self.concurrency >= 1, "concurrency", ">= 1", self.concurrency)
        config.require(self.request_timeout_s > 0, "request_timeout_s", "> 0", self.request_timeout_s)
        config.require(self.bootstrap >= 100, "bootstrap", ">= 100", self.bootstrap)
        config.require(self.threads >= 0, "threads", ">= 0", self.threads)


@config.section("dpo")
@dataclass(frozen=True)
class DpoConfig:
    beta: float = 0.1  # DPO's beta: how far the tuned adapter may move from the current one (higher: less far)
    lr: float = 5e-5  # learning rate (AdamW, linear decay)
    batch_size: int = 4  # preference pairs per optimizer step
    max_steps: int = 0  # 0: one pass over the pairs
    max_minutes: float = 0.0  # 0: no time budget; else stop (and save) when the budget is spent
    max_length: int = 2048  # tokens of prompt + completion; longer pairs are left out (counted)
    eval_limit: int = 256  # pairs scored after training for the reported DPO loss (0: all)
    gradient_checkpointing: bool = False  # recompute activations to save memory
    seed: int = 0  # random seed (pair order)
    threads: int = 0  # torch intra-op threads on CPU (0: torch's default)

    def __post_init__(self) -> None:
        config.require(self.beta > 0, "beta", "> 0", self.beta)
        config.require(self.lr > 0, "lr", "> 0", self.lr)
        config.require(self.batch_size > 0, "batch_size", "> 0", self.batch_size)
        config.require(self.max_steps >= 0, "max_steps", ">= 0", self.max_steps)
        config.require(self.max_minutes >= 0, "max_minutes", ">= 0", self.max_minutes)
        config.require(self.max_length >= 16, "max_length", ">= 16", self.max_length)
        config.require(self.eval_limit >= 0, "eval_limit", ">= 0", self.eval_limit)
        config.require(self.threads >= 0, "threads", ">= 0", self.threads)
