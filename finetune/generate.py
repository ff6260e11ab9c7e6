"""In-process greedy generation for the exam: batched, bounded, with token healing and per-row stops.

Called by finetune/exam.py. Token healing constrains each row's first tokens to re-type the text the prompt
builder removed from the prefix (a LogitsProcessor over `core.healing.VocabIndex`), exactly what the server
does for the language server; rows stop at the FIM format's stop strings, at their own token bound, or (for
single-line cursors) at the end of the first non-empty line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from core import fim
from core.artifacts import read_info
from core.errors import ModelError
from core.healing import VocabIndex, advance
from core.token_bytes import as_bytes, token_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenRequest:
    prompt: str
    heal: str            # text the output must start with ("" for none)
    max_new_tokens: int
    single_line: bool


@dataclass(frozen=True)
class GenResult:
    text: str            # decoded new text, cut at the first stop string (still starting with `heal`)
    tokens: int
    latency_ms: float    # the batch's wall time shared by its rows


def check_model_dirs(base: str | Path, adapter: str | Path | None = None) -> None:
    """A ModelError naming the flag unless `base` is a model directory and `adapter` (if given) a peft adapter:
    callers check before hours of work, not when they first load the adapter."""
    if not (Path(base) / "config.json").is_file():
        raise ModelError(f"--base {str(base)!r} is not a model directory (no config.json)")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelError(f"--adapter {str(adapter)!r} is not a peft adapter (no adapter_config.json)")


def load_model(base: str | Path, adapter: str | Path | None = None):
    """(tokenizer, model) in eval mode; the adapter applied with peft when given."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_dirs(base, adapter)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return tokenizer, model


def adapter_format(adapter: str | Path) -> str | None:
    return read_info(adapter).get("fim_format")


class Generator:
    """Greedy batched generation for one model; the vocabulary index for healing is built once."""

    def __init__(self, tokenizer, model, fmt: fim.FimFormat) -> None:
        self.tokenizer, self.model, self.fmt = tokenizer, model, fmt
        self.tokenizer.padding_side = "left"
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        size = len(tokenizer)
        # Each token's bytes (latin-1 carried): decoding tokens one by one cannot re-type `ä` or `錯誤`.
        texts = token_bytes(tokenizer.backend_tokenizer)
        self.token_texts = texts[:size] + [""] * (size - len(texts))
        special = set(tokenizer.all_special_ids)
        special |= {tokenizer.convert_tokens_to_ids(s) for s in fmt.sentinels}
        self.index = VocabIndex(self.token_texts, special)
        stop_ids = {tokenizer.convert_tokens_to_ids(s) for s in fmt.stop}
        self.stop_ids = sorted(i for i in stop_ids if isinstance(i, int) and 0 <= i < size and i != tokenizer.unk_token_id)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        enc = self.tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True,
                             add_special_tokens=False)
        width = enc["input_ids"].shape[1]
        rows = _RowState(self, requests, width)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                **enc, do_sample=False, max_new_tokens=max(r.max_new_tokens for r in requests),
                logits_processor=LogitsProcessorList([_HealingProcessor(rows)]),
                stopping_criteria=StoppingCriteriaList([_Stops(rows)]),
                eos_token_id=self.stop_ids or None, pad_token_id=self.pad_id, num_beams=1,
                temperature=None, top_p=None, top_k=None)
        elapsed = (time.perf_counter() - t0) * 1000
        results = []
        for i, req in enumerate(requests):
            ids = out[i, width:].tolist()[:req.max_new_tokens]
            text = fim.cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=False), self.fmt.stop)
            results.append(GenResult(text, len(ids), elapsed / len(requests)))
        return results


class _RowState:
    """Per-row progress through the text to re-type, updated once per generated token."""

    def __init__(self, gen: Generator, requests: list[GenRequest], width: int) -> None:
        self.gen, self.requests, self.width = gen, requests, width
        self.remaining = [as_bytes(r.heal) for r in requests]
        self.seen = [0] * len(requests)

    def update(self, input_ids) -> None:
        for i in range(len(self.requests)):
            new = input_ids[i, self.width + self.seen[i]:].tolist()
            for tid in new:
                if self.remaining[i]:
                    self.remaining[i] = advance(self.remaining[i], self.gen.token_texts[tid])
            self.seen[i] += len(new)


class _HealingProcessor:
    """Only tokens consistent with the text still to re-type are allowed while some remains."""

    def __init__(self, rows: _RowState) -> None:
        self.rows = rows

    def __call__(self, input_ids, scores):
        import torch

        self.rows.update(input_ids)
        for i, remaining in enumerate(self.rows.remaining):
            if not remaining:
                continue
            allowed = self.rows.gen.index.allowed(remaining)
            if allowed:
                keep = torch.full_like(scores[i], float("-inf"))
                keep[torch.tensor(allowed, dtype=torch.long)] = 0
                scores[i] = scores[i] + keep
        return scores


class _Stops:
    """A row is done at a stop string, at its own bound, or after its first non-empty line (single-line)."""

    def __init__(self, rows: _RowState) -> None:
        self.rows = rows

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = []
        gen = self.rows.gen
        for i, req in enumerate(self.rows.requests):
            ids = input_ids[i, self.rows.width:].tolist()
            text = gen.tokenizer.decode(ids, skip_special_tokens=False)
            finished = len(ids) >= req.max_new_tokens or any(s and s in text for s in gen.fmt.stop)
            if not finished and req.single_line:
                after = text[len(req.heal):] if text.startswith(req.heal) else text
                line_end = after.find("\n")
                finished = line_end != -1 and bool(after[:line_end].strip())
            done.append(finished)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
