"""The generation engine: a queue and one background thread that decodes every active request together.

Requests arrive from the HTTP handlers (`submit`, any thread) and wait in a queue. The engine thread admits
them into the running batch: it prefills each new prompt on its own (reusing cached prompt key/values of the
same adapter, `server.kvcache`), then merges it into the batch; every step is one padded forward over all
active sequences, each with its own adapter (peft mixed-batch LoRA), sampling, stop sequences and healing
constraint. A sequence decoding alone checks a prompt-lookup draft per forward (`server.speculation`).
Tokens travel back to the request's asyncio loop as events on its `Handle`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from core.errors import GenerationError, InhouseError
from core.healing import VocabIndex, advance
from core.token_bytes import as_bytes, build_index
from server import kvcache
from server.adapters import module_shapes
from server.decoding import IncrementalDecoder, find_stop
from server.generation import (  # noqa: F401  (re-exported: the engine's types)
    ErrorEvent,
    FinishEvent,
    GenerationRequest,
    Handle,
    TokenEvent,
    fail_request,
    visible_text,
)
from server.loading import EngineChoice
from server.metrics import Metrics
from server.sampling import Sampler
from server.speculation import prompt_lookup

log = logging.getLogger(__name__)

_PROMPT_TAIL = 4  # prompt tokens decoded with the first generated ones (word-boundary spaces)


def peft_name(adapter_id: str) -> str:
    """The name an adapter has inside peft: its id with `.` spelled out (peft names become module names, which
    cannot hold a dot; the registry serves versions as `team.name.vN`). Injective: `_` doubles, `.` is `_o`."""
    return "ad_" + adapter_id.replace("_", "__").replace(".", "_o")

@dataclass
class _Seq:
    handle: Handle
    sampler: Sampler
    decoder: IncrementalDecoder
    history: torch.Tensor            # prompt + generated ids (for repetition penalties)
    kv_len: int                      # tokens in the key/value cache (all but `next_token`)
    remaining: str                   # bytes (as latin-1) the output still has to re-type
    started: float
    reused: int = 0
    draft_len: int = -1              # the next prompt-lookup draft's length (-1: the engine's default)
    next_token: int = -1
    text: str = ""
    emitted: str = ""
    tokens: list[TokenEvent] = field(default_factory=list)
    prefill: tuple = ()
    finish: str | None = None


class Engine:
    """Owns the model; one thread runs `_loop`. `submit` and `cancel` are safe from any thread."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 8, prefix_cache_entries: int = 4,
                 metrics: Metrics | None = None, choice: EngineChoice | None = None, draft_tokens: int = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.device_type = self.device.type
        self.dtype_name = str(next(model.parameters()).dtype)
        self.choice = choice or EngineChoice("torch", str(next(model.parameters()).dtype).split(".")[-1],
                                             self.device.type, torch.get_num_threads(), "torch's default")
        self.max_batch_size = max_batch_size
        self.draft_tokens = draft_tokens  # prompt-lookup draft length when one sequence decodes (0: off)
        self.module_shapes = module_shapes(model)  # of the base model, before any adapter wraps its layers
        self.metrics = metrics or Metrics()
        self._decoder = getattr(tokenizer, "backend_tokenizer", None) or tokenizer
        self.special_ids = set(tokenizer.all_special_ids) | {
            i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._prefix = kvcache.PrefixCache(prefix_cache_entries)
        self._queue: queue.Queue[Handle] = queue.Queue()
        self._rows: list[_Seq] = []
        self._cache: Any = None  # the batch's DynamicCache
        self._mask: torch.Tensor | None = None
        self._adapters: dict[str, float] = {}  # loaded adapter id -> mtime of its directory's files
        self._vocab: tuple[VocabIndex, list[str]] | None = None
        self._vocab_lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inhouse-engine", daemon=True)
        self._thread.start()

    # ---- the caller's side -------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closing.is_set()

    @property
    def queue_size(self) -> int:
        return self._queue.qsize()

    def submit(self, request: GenerationRequest) -> Handle:
        handle = Handle(request, asyncio.get_running_loop())
        self._queue.put(handle)
        self.metrics.queue_size.set(self._queue.qsize())
        return handle

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    prefill_details = True  # decoder_input_details: the prompt's log-probabilities

    def metrics_text(self) -> str:
        """Engine metrics beyond `server.metrics` (none: this engine reports through it)."""
        return ""

    def vocab(self) -> tuple[VocabIndex, list[str]]:
        """Each token's bytes and the healing index over them (`core.token_bytes`; built once, on first use)."""
        with self._vocab_lock:
            if self._vocab is None:
                self._vocab = build_index(self._decoder, self.special_ids)
            return self._vocab

    # ---- the engine thread ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        with torch.inference_mode():
            while not self._closing.is_set():
                try:
                    self._admit()
                    if self._rows:
                        self._step()
                except Exception as exc:  # the engine thread's edge: fail the batch, keep serving
                    log.exception("decoding step failed")
                    self._fail_batch(GenerationError(f"generation failed: {type(exc).__name__}: {exc}"))
        self._fail_batch(GenerationError("the server is shutting down"))
        while not self._queue.empty():
            self._queue.get_nowait().emit(ErrorEvent(GenerationError("the server is shutting down")))

    def _admit(self) -> None:
        block = not self._rows
        while len(self._rows) < self.max_batch_size:
            try:
                handle = self._queue.get(timeout=0.05) if block else self._queue.get_nowait()
            except queue.Empty:
                break
            block = False
            self.metrics.queue_size.set(self._queue.qsize())
            if handle.cancelled.is_set():
                self.metrics.failure("cancelled")
                continue
            self.metrics.queue_duration.observe(time.monotonic() - handle.enqueued_at)
            try:
                self._prefill(handle)
            except Exception as exc:  # a failure of one prompt must not take the batch down
                fail_request(handle, self.metrics, exc, "prefill")
        self.metrics.batch_size.set(len(self._rows))

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache,
                 adapters: list[str | None], all_logits: bool = False):
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions,
                                  "past_key_values": cache, "use_cache": True, "logits_to_keep": 0 if all_logits else 1}
        if self._adapters:
            kwargs["adapter_names"] = [peft_name(a) if a is not None else "__base__" for a in adapters]
        return self.model(**kwargs)

    def _ensure_adapter(self, request: GenerationRequest) -> None:
        if request.adapter_id is None or request.adapter_path is None:
            return
        from server.adapters import adapter_mtime

        name, path = request.adapter_id, request.adapter_path
        mtime = adapter_mtime(path)
        if self._adapters.get(name) == mtime:
            return
        weights = [p for p in ("adapter_model.safetensors", "adapter_model.bin") if (path / p).is_file()]
        if not weights:
            raise GenerationError(f"adapter {name!r} could not be loaded: {path} has no adapter_model.safetensors")
        from peft import PeftModel

        key = peft_name(name)
        try:
            if name in self._adapters:
                self.model.delete_adapter(key)
                self._prefix.clear(name)
            if not isinstance(self.model, PeftModel):
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=key, is_trainable=False)
            else:
                self.model.load_adapter(str(path), adapter_name=key, is_trainable=False)
        except Exception as exc:  # peft raises many types for a malformed adapter
            self._adapters.pop(name, None)
            if isinstance(self.model, PeftModel) and key in self.model.peft_config:
                self.model.delete_adapter(key)
            raise GenerationError(f"adapter {name!r} could not be loaded: {exc}") from exc
        self.model.eval()
        self._adapters[name] = mtime
        log.info("loaded adapter %s from %s", name, path)

    def _prefill(self, handle: Handle) -> None:
        req = handle.request
        started = time.monotonic()
        self._ensure_adapter(req)
        ids = req.input_ids
        n = len(ids)
        reused, past = (0, None) if req.decoder_input_details else self._prefix.lookup(req.adapter_id, ids)
        cache = kvcache.new_cache(past)
        input_ids = torch.tensor([ids[reused:]], dtype=torch.long, device=self.device)
        positions = torch.arange(reused, n, device=self.device).unsqueeze(0)
        mask = torch.ones((1, n), dtype=torch.long, device=self.device)
        t0 = time.monotonic()
        out = self._forward(input_ids, mask, positions, cache, [req.adapter_id], all_logits=req.decoder_input_details)
        self.metrics.batch_forward("prefill", time.monotonic() - t0)
        self._prefix.store(req.adapter_id, ids, kvcache.layers_of(cache))
        self.metrics.prefix_reused.inc(reused)
        history = torch.tensor(ids, dtype=torch.long, device=self.device)
        seq = _Seq(handle=handle, sampler=Sampler(req.sampling, self.device),
                   decoder=IncrementalDecoder(self._decoder, ids[-_PROMPT_TAIL:]), history=history, kv_len=n,
                   remaining=as_bytes(req.required_start), started=started, reused=reused)
        if req.decoder_input_details:
            seq.prefill = self._prefill_details(ids, out.logits[0])
        self._choose(seq, out.logits[0, -1])
        if seq.finish is not None:
            return
        if self._rows:
            self._mask = kvcache.append_rows(self._cache, self._active_mask(), cache, mask)
        else:
            self._cache, self._mask = cache, mask
        self._rows.append(seq)

    def _prefill_details(self, ids: list[int], logits: torch.Tensor) -> tuple:
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        out: list[tuple[int, str, float | None]] = [
            (ids[0], self._decoder.decode([ids[0]], skip_special_tokens=False), None)]
        for i in range(1, len(ids)):
            out.append((ids[i], self._decoder.decode([ids[i]], skip_special_tokens=False),
                        float(logprobs[i - 1, ids[i]])))
        return tuple(out)

    def _step(self) -> None:
        cancelled = [i for i, s in enumerate(self._rows) if s.handle.cancelled.is_set()]
        if cancelled:
            for _ in cancelled:
                self.metrics.failure("cancelled")
            self._drop(set(cancelled))
            if not self._rows:
                return
        rows = self._rows
        if len(rows) == 1 and self.draft_tokens and self._speculate(rows[0]):
            return
        input_ids = torch.tensor([[s.next_token] for s in rows], dtype=torch.long, device=self.device)
        positions = torch.tensor([[s.kv_len] for s in rows], dtype=torch.long, device=self.device)
        running = self._active_mask()
        mask = torch.cat([running, torch.ones((len(rows), 1), dtype=running.dtype, device=self.device)], dim=1)
        t0 = time.monotonic()
        out = self._forward(input_ids, mask, positions, self._cache, [s.handle.request.adapter_id for s in rows])
        self.metrics.batch_forward("decode", time.monotonic() - t0)
        self._mask = mask
        logits = out.logits[:, -1]
        for i, seq in enumerate(rows):
            seq.kv_len += 1
            self._choose(seq, logits[i])
        done = {i for i, s in enumerate(rows) if s.finish is not None}
        if done:
            self._drop(done)

    def _speculate(self, seq: _Seq) -> bool:
        """One forward over the pending token and a prompt-lookup draft; False when there is no draft to check.

        Each position's token is chosen by the sequence's own sampler, in order, and the draft is kept only as
        far as it agrees: the output is the token-by-token one. The key/values of rejected tokens are cropped.
        """
        req = seq.handle.request
        budget = req.max_new_tokens - len(seq.tokens) - 1
        if (seq.remaining or budget <= 0 or seq.draft_len == 0 or self._mask is None
                or self._mask.shape[1] != seq.kv_len):
            return False  # healing still constrains the choice, or the row is padded (it was batched)
        if seq.draft_len < 0:
            seq.draft_len = self.draft_tokens
        draft = prompt_lookup(seq.history.tolist(), min(seq.draft_len, budget))
        if not draft:
            return False
        ids = [seq.next_token, *draft]
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        positions = torch.arange(seq.kv_len, seq.kv_len + len(ids), device=self.device).unsqueeze(0)
        mask = torch.cat([self._mask, torch.ones((1, len(ids)), dtype=self._mask.dtype, device=self.device)], dim=1)
        t0 = time.monotonic()
        out = self._forward(input_ids, mask, positions, self._cache, [req.adapter_id], all_logits=True)
        self.metrics.batch_forward("decode", time.monotonic() - t0)
        logits = out.logits[0]
        emitted = 0
        for i in range(len(ids)):
            token, logprob = seq.sampler.choose(logits[i].float(), seq.history, None)
            self._accept(seq, token, logprob)
            emitted += 1
            if seq.finish is not None or i == len(draft) or token != draft[i]:
                break
        accepted = emitted - 1
        self.metrics.draft_tokens(len(draft), accepted)
        # A draft the model rejects at once halves the next one (down to none for this request); a fully accepted
        # one doubles it: a prompt the completion does not copy from costs a few wider forwards, no more.
        if accepted == 0:
            seq.draft_len //= 2
        elif accepted == len(draft):
            seq.draft_len = min(self.draft_tokens, seq.draft_len * 2)
        unused = len(ids) - emitted
        if unused:
            self._cache.crop(-unused)
        self._mask = mask[:, :mask.shape[1] - unused]
        seq.kv_len += emitted
        if seq.finish is not None:
            self._drop({0})
        return True

    def _active_mask(self) -> torch.Tensor:
        """The attention mask of the running batch: there is one whenever rows are running."""
        if self._mask is None:
            raise RuntimeError("engine invariant broken: rows are running without an attention mask")
        return self._mask

    def _drop(self, rows: set[int]) -> None:
        keep = [i for i in range(len(self._rows)) if i not in rows]
        self._rows = [self._rows[i] for i in keep]
        if self._rows:
            self._mask = kvcache.keep_rows(self._cache, self._active_mask(), keep)
        else:
            self._cache, self._mask = None, None
        self.metrics.batch_size.set(len(self._rows))

    def _choose(self, seq: _Seq, logits: torch.Tensor) -> None:
        allowed = None
        if seq.remaining:
            index, _texts = self.vocab()
            allowed = index.allowed(seq.remaining) or None
            if allowed is None:
                seq.remaining = ""  # no token fits: give the constraint up rather than emit garbage
        token, logprob = seq.sampler.choose(logits.float(), seq.history, allowed)
        self._accept(seq, token, logprob)

    def _accept(self, seq: _Seq, token: int, logprob: float) -> None:
        req = seq.handle.request
        seq.next_token = token
        seq.history = torch.cat([seq.history, torch.tensor([token], dtype=torch.long, device=self.device)])
        generated = len(seq.tokens) + 1
        if token in self.eos_ids:
            seq.finish = "eos_token"
            delta = self._decoder.decode([token], skip_special_tokens=False)
        else:
            piece = seq.decoder.push(token)
            if seq.remaining:
                seq.remaining = advance(seq.remaining, self.vocab()[1][token])
            before = len(seq.text)
            seq.text += piece
            end = find_stop(seq.text, before, req.stop) if req.stop else None
            if end is not None:
                seq.text = seq.text[:end]
                seq.finish = "stop_sequence"
            elif generated >= req.max_new_tokens:
                seq.finish = "length"
            visible = visible_text(seq.text, seq.handle.request.hidden_start)
            delta = visible[len(seq.emitted):]
            seq.emitted = visible
        event = TokenEvent(generated - 1, token, delta, logprob, token in self.special_ids)
        seq.tokens.append(event)
        seq.handle.emit(event)
        if seq.finish is not None:
            self._finish(seq)

    def _finish(self, seq: _Seq) -> None:
        req = seq.handle.request
        self.metrics.success(time.monotonic() - seq.started, len(seq.tokens))  # before the client can read them
        seq.handle.emit(FinishEvent(visible_text(seq.text, req.hidden_start), seq.finish or "length", len(seq.tokens),
                                    seq.sampler.seed, len(req.input_ids), tuple(seq.tokens), seq.prefill, seq.reused))

    def _fail_batch(self, error: InhouseError) -> None:
        for seq in self._rows:
            self.metrics.failure(error.error_type)
            seq.handle.emit(ErrorEvent(error))
        self._rows, self._cache, self._mask = [], None, None
        self.metrics.batch_size.set(0)
