"""The llama.cpp engine: the CPU default of `inhouse serve`, llama.cpp's own server run in this process (`xllamacpp`).

Measured side by side in `bench/serve.py`, llama.cpp on a Q4_0 GGUF prefills and decodes several times faster
on a CPU than torch (int8 or float32) on the same prompts; it is what the field runs on CPUs (Tabby, Ollama,
llama.vscode). Prompts are tokenized in Python by the model's own tokenizer (`server.tokenizer`) and sent as
token ids, so the prompt, its BOS rule and the validation are the torch engine's; each generated token comes
back with its id, log-probability and llama.cpp's decoded text, and stop sequences, the hidden healed start and
the TGI/OpenAI events are handled here as on torch. llama.cpp brings its continuous batching over `n_parallel`
slots, prompt-prefix reuse per slot (`cache_prompt`) and per-request LoRA.

- The GGUF of the model and of each adapter are written by `server.gguf_export` on first use and cached beside
  their source (rebuilt when it changes).
- Adapters: llama.cpp loads LoRA files when its server starts and applies them per request (`lora`: id and
  scale). A new or changed adapter therefore starts a new llama.cpp server with the new list and swaps it in;
  requests already running finish on the old one, which is freed after them.
- Token healing and TGI's constrained start: the output must begin with a given text (`required_start`), said to
  llama.cpp as a GBNF grammar (`start_grammar`); its grammar follows UTF-8 across tokens, so a token that ends
  inside a character is allowed where it fits. The text of the answer is llama.cpp's own decoding; a token that
  ends inside a UTF-8 character is not reported on its own by llama.cpp's server (its id is lost to the
  `details.tokens` list; the text is whole, and `generated_tokens` counts it).
- Each request runs in one slot chosen here (`_Slots`): a slot's cached prompt is reused only by the same adapter.
- Cancellation: each streamed token is a callback; returning True stops llama.cpp's task (a disconnect, a stop
  sequence found here).
- llama.cpp's HTTP listener (which `xllamacpp` always starts) is bound to 127.0.0.1 on a free port and locked by a
  random API key: the only way in is this process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import GenerationError, InhouseError, ModelError
from server.adapters import safetensors_shapes
from server.decoding import find_stop
from server.generation import (
    FinishEvent,
    GenerationRequest,
    Handle,
    SamplingParams,
    TokenEvent,
    fail_request,
    visible_text,
)
from server.loading import EngineChoice
from server.metrics import Metrics

log = logging.getLogger(__name__)


def sampling_fields(params: SamplingParams, seed: int | None = None) -> dict[str, Any]:
    """TGI's sampling parameters as llama.cpp's request fields (greedy unless TGI's rule says sample)."""
    if not params.sampling:
        return {"temperature": 0.0, "top_k": 1}
    out: dict[str, Any] = {"temperature": params.temperature if params.temperature is not None else 1.0,
                           "top_k": params.top_k or 0, "top_p": params.top_p if params.top_p is not None else 1.0,
                           "min_p": 0.0}
    if seed is not None:
        out["seed"] = seed
    return out


def penalty_fields(params: SamplingParams, history: int) -> dict[str, Any]:
    """TGI's penalties over the whole history (prompt and output: `history` tokens), as llama.cpp's fields."""
    out: dict[str, Any] = {}
    if params.repetition_penalty is not None:
        out.update(repeat_penalty=params.repetition_penalty, repeat_last_n=history)
    if params.frequency_penalty is not None:
        out.update(frequency_penalty=params.frequency_penalty, repeat_last_n=history)
    return out


@dataclass
class _Run:
    """One request's progress: the text so far, what was returned of it, the events sent, how it ended."""

    handle: Handle
    started: float
    text: str = ""
    emitted: str = ""
    pending: str = ""      # text of a chunk that reported no token yet
    tokens: list[TokenEvent] = field(default_factory=list)
    finish: str | None = None
    reused: int = 0
    count: int = 0         # tokens generated, as llama.cpp counts them (more than `tokens` can hold, see _accept)
    seed: int | None = None


class _Slots:
    """Which of llama.cpp's slots a request runs on (`id_slot`), chosen here rather than by llama.cpp, and room for
    it in the key/value cache the slots share.

    A slot keeps the key/values of its last prompt, and llama.cpp reuses them for the next prompt that shares
    their prefix whatever adapter computed them: a base request after a LoRA request on the same slot would
    decode from the adapter's key/values (seen in tests/server/test_llamacpp.py). So each slot's last adapter
    and tokens are remembered: a request takes the free slot of its own adapter with the longest common
    prefix, and where it has to take another adapter's slot it asks for no reuse.
    The slots share one cache of `capacity` tokens, and llama.cpp fails every running request when it
    overflows ("Context size has been exceeded", measured). So a request is admitted only when its prompt and
    new tokens fit beside what the other slots hold: idle slots' prompts are erased to make room (largest
    first), and otherwise it waits, where a disconnect can still drop it.
    """

    def __init__(self, n: int, capacity: int, erase: Any, keep_idle: int | None = None) -> None:
        self._free = list(range(n))
        self._last: dict[int, tuple[str | None, list[int]]] = {}
        self._cells: dict[int, int] = {}  # tokens a slot holds (idle) or may grow to (running)
        self._capacity = capacity
        self._erase = erase               # erase(slot): leave the slot with one token of key/values
        self._keep_idle = n if keep_idle is None else keep_idle  # idle prompts kept per adapter, newest first
        self._released: dict[int, int] = {}  # slot -> when it was last released (a counter)
        self._clock = 0
        self._cond = threading.Condition()

    def acquire(self, adapter: str | None, prompt: list[int], need: int,
                cancelled: threading.Event) -> tuple[int, bool]:
        """(slot, whether its cached key/values may be reused); waits for a slot and room unless `cancelled`."""
        need = min(need, self._capacity)
        with self._cond:
            while True:
                if cancelled.is_set():
                    raise _Cancelled()
                if self._free:
                    slot = max(self._free, key=lambda s: self._score(s, adapter, prompt))
                    if self._make_room(slot, need):
                        self._free.remove(slot)
                        self._cells[slot] = need
                        reuse = self._score(slot, adapter, prompt)[0] or slot not in self._last
                        self._trim_idle()
                        return slot, reuse
                self._cond.wait(0.05)

    def _score(self, slot: int, adapter: str | None, prompt: list[int]) -> tuple[bool, int]:
        last_adapter, tokens = self._last.get(slot, (None, []))
        same = slot in self._last and last_adapter == adapter
        return same, _common_prefix(tokens, prompt) if same else 0

    def _make_room(self, slot: int, need: int) -> bool:
        held = sum(n for s, n in self._cells.items() if s != slot)
        for idle in sorted((s for s in self._free if s != slot and self._cells.get(s, 0) > 1),
                           key=lambda s: -self._cells[s]):
            if held + need <= self._capacity:
                break
            held -= self._cells[idle] - 1
            self._drop(idle)
        return held + need <= self._capacity

    def _drop(self, idle: int) -> None:
        """Erase an idle slot's prompt: one token of key/values left, nothing to reuse."""
        self._erase(idle)
        self._cells[idle] = 1
        self._last.pop(idle, None)

    def _trim_idle(self) -> None:
        """Erase idle prompts beyond the newest `keep_idle` of each adapter. llama.cpp's attention runs over the
        used range of the shared cache, other slots' cells masked, so each idle prompt kept slows every request:
        a cold 512-token prompt took 0.98 s with one slot, 1.19 s beside three idle 520-token prompts, and 100
        fresh cursors through the language server p50 1.45 s keeping one per adapter, 1.58 s keeping eight."""
        kept: dict[str | None, int] = {}
        for idle in sorted((s for s in self._free if self._cells.get(s, 0) > 1 and s in self._last),
                           key=lambda s: -self._released.get(s, 0)):
            adapter = self._last[idle][0]
            kept[adapter] = kept.get(adapter, 0) + 1
            if kept[adapter] > self._keep_idle:
                self._drop(idle)

    def release(self, slot: int, adapter: str | None, tokens: list[int]) -> None:
        with self._cond:
            self._clock += 1
            self._released[slot] = self._clock
            self._last[slot] = (adapter, tokens)
            self._cells[slot] = len(tokens)
            self._free.append(slot)
            self._cond.notify_all()


class _Cancelled(Exception):
    """The request was cancelled while it waited for a slot."""


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class _Loaded:
    """A running llama.cpp server, the adapters it was started with (their order is their LoRA id), its slots."""

    server: Any
    adapters: tuple[str, ...]
    slots: _Slots


class LlamaCppEngine:
    """The engine interface of `server.engine.Engine` (`submit`, `alive`, `queue_size`, `close`, `vocab`,
    `module_shapes`, `choice`) over llama.cpp. Each request runs on a worker thread that blocks in llama.cpp."""

    def __init__(self, model_dir: Path, tokenizer: Any, gguf: Path, *, choice: EngineChoice, parallel: int,
                 context: int, max_workers: int, metrics: Metrics | None = None, lora_cache: Path | None = None,
                 reuse_prompts: bool = True, keep_idle: int | None = None, repack: bool = True,
                 adapters: tuple[tuple[str, Path], ...] = ()) -> None:
        self.model_dir = model_dir
        self.tokenizer = tokenizer
        self.gguf = gguf
        self.choice = choice
        self.dtype_name = choice.weights  # the GGUF type (/info model_dtype)
        self.device_type = "cpu"
        self.metrics = metrics or Metrics()
        self.module_shapes = safetensors_shapes(model_dir)
        self.parallel, self.context = parallel, context
        self.lora_cache = lora_cache
        self.reuse_prompts = reuse_prompts  # llama.cpp's `cache_prompt` (off: `prefix_cache_entries` 0)
        self.keep_idle = keep_idle  # idle prompts kept per adapter (`idle_prompts`; None: every slot's)
        self.repack = repack  # False: llama.cpp's --no-repack (its repacked kernels crashed a probe, llamacpp_probe)
        self._decoder = getattr(tokenizer, "backend_tokenizer", None) or tokenizer
        self.special_ids = set(tokenizer.all_special_ids) | {
            i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}
        self.eos_ids = {tokenizer.eos_token_id} - {None}
        self._swap_lock = threading.Lock()      # one server (re)start at a time
        self._adapters: dict[str, tuple[float, Path, Path]] = {}  # id -> (mtime, its directory, its GGUF)
        self._waiting = 0
        self._count_lock = threading.Lock()
        self._closing = threading.Event()
        self._loaded = self._start(self._preload(adapters))
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="inhouse-llamacpp")

    # ---- the caller's side -------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self._closing.is_set()

    @property
    def queue_size(self) -> int:
        return self._waiting

    def submit(self, request: GenerationRequest) -> Handle:
        handle = Handle(request, asyncio.get_running_loop())
        with self._count_lock:
            self._waiting += 1
        self.metrics.queue_size.set(self._waiting)
        self._pool.submit(self._serve, handle)
        return handle

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._loaded = _Loaded(None, (), _Slots(0, 0, None))

    prefill_details = False  # llama.cpp's server returns no log-probabilities of prompt tokens

    def metrics_text(self) -> str:
        """llama.cpp's own Prometheus metrics (`llamacpp:*`: decode calls, tokens, prompt reuse) of the running
        server; they restart with it when an adapter is added."""
        server = self._loaded.server
        return str(server.handle_metrics()) if server is not None else ""

    def counters(self) -> dict[str, float]:
        """`metrics_text` as numbers, e.g. `llamacpp:n_decode_total`."""
        out = {}
        for line in self.metrics_text().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def vocab(self) -> None:
        """Nothing to build: healing is a grammar here, followed by llama.cpp (the torch engine builds an index)."""

    # ---- llama.cpp servers and adapters --------------------------------------------------------------------------
    def _start(self, adapters: tuple[str, ...]) -> _Loaded:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf)
        params.n_parallel = self.parallel
        params.n_ctx = self.context
        params.kv_unified = True          # the slots share one key/value cache of `context` tokens (`_Slots`)
        params.load_mode = xllamacpp.llama_load_mode.LLAMA_LOAD_MODE_NONE  # read, not mapped: the Q4_0 weights
        # are repacked for the CPU's fast kernels, and a mapped file would stay resident beside them (57 MB
        # for SmolLM2, measured)
        params.no_extra_bufts = not self.repack
        params.cache_idle_slots = False   # else an idle slot's prompt is dropped when another slot starts
        params.cpuparams.n_threads = self.choice.threads
        # Prompts on the same threads as decoding: one thread pool. Two pools of different sizes (more threads
        # for prompts) left one pool's idle threads spinning beside the other's work: typing through the
        # language server with one core busy stalled (1 suggestion in 200 keystrokes, 14.5-17.2 s), and the
        # exam's eight concurrent requests decoded at 4 tokens/s (bench/lsp.py, inhouse eval; measured).
        params.cpuparams_batch.n_threads = self.choice.threads
        params.cache_ram_mib = 0          # idle slots keep their prompts in the shared cache instead (`_Slots`)
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.api_keys = [secrets.token_hex(16)]
        params.verbosity = -1
        params.warmup = False
        params.endpoint_metrics = True
        params.lora_init_without_apply = True  # every adapter at scale 0 unless a request names it
        infos = []
        for adapter_id in adapters:
            info = xllamacpp.CommonAdapterLoraInfo()
            info.path = str(self._adapters[adapter_id][2])
            info.scale = 0.0
            infos.append(info)
        params.lora_adapters = infos
        t0 = time.monotonic()
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:
            raise ModelError(f"llama.cpp could not load {str(self.gguf)!r}: {exc}") from exc
        log.info("llama.cpp server on %s with %d adapters started in %.2f s", self.gguf.name, len(adapters),
                 time.monotonic() - t0)
        return _Loaded(server, adapters, _Slots(self.parallel, self.context, lambda slot: _erase(server, slot),
                                                keep_idle=self.keep_idle))

    def _preload(self, adapters: tuple[tuple[str, Path], ...]) -> tuple[str, ...]:
        """The adapters present at start, exported and loaded with the model: adding one later restarts llama.cpp
        (and empties its prompt caches). One that cannot be exported is left for its first request to report."""
        from server.adapters import adapter_mtime
        from server.gguf_cache import adapter_gguf

        loaded = []
        for adapter_id, path in adapters:
            if not (path / "adapter_model.safetensors").is_file():
                continue
            try:
                lora = adapter_gguf(path, self.model_dir, cache_dir=self.lora_cache)
            except InhouseError as exc:
                log.warning("adapter %s not loaded at start: %s", adapter_id, exc)
                continue
            self._adapters[adapter_id] = (adapter_mtime(path), path, lora)
            loaded.append(adapter_id)
        return tuple(loaded)

    def _lora_for(self, request: GenerationRequest) -> tuple[_Loaded, list[dict[str, Any]]]:
        """The server to run `request` on and its `lora` field; (re)starts a server when its adapter is new or
        changed on disk."""
        adapter_id, path = request.adapter_id, request.adapter_path
        if adapter_id is None or path is None:
            return self._loaded, []
        from server.adapters import adapter_mtime

        mtime = adapter_mtime(path)

        def current() -> bool:  # the running server has this version of the adapter
            return self._adapters.get(adapter_id, (None, None))[:2] == (mtime, path) and (
                adapter_id in self._loaded.adapters)

        if not current():
            with self._swap_lock:
                if not current():
                    self._load_adapter(adapter_id, path, mtime)
        loaded = self._loaded
        index = loaded.adapters.index(adapter_id)
        return loaded, [{"id": index, "scale": 1.0}]

    def _load_adapter(self, adapter_id: str, path: Path, mtime: float) -> None:
        from server.gguf_cache import adapter_gguf

        weights = path / "adapter_model.safetensors"
        if not weights.is_file():
            raise GenerationError(f"adapter {adapter_id!r} could not be loaded: {path} has no "
                                  "adapter_model.safetensors")
        try:
            lora = adapter_gguf(path, self.model_dir, cache_dir=self.lora_cache)
        except InhouseError as exc:
            raise GenerationError(f"adapter {adapter_id!r} could not be loaded: {exc}") from exc
        previous = self._adapters.get(adapter_id)
        self._adapters[adapter_id] = (mtime, path, lora)
        current = tuple(a for a in self._adapters if self._adapters[a][1].is_dir())
        try:
            self._loaded = self._start(current)
        except InhouseError as exc:
            if previous is None:
                self._adapters.pop(adapter_id)
            else:
                self._adapters[adapter_id] = previous
            raise GenerationError(f"adapter {adapter_id!r} could not be loaded: {exc}") from exc
        log.info("loaded adapter %s from %s", adapter_id, path)

    # ---- one request, on a worker thread -------------------------------------------------------------------------
    def _serve(self, handle: Handle) -> None:
        with self._count_lock:
            self._waiting -= 1
        self.metrics.queue_size.set(self._waiting)
        if handle.cancelled.is_set() or self._closing.is_set():
            self.metrics.failure("cancelled")
            return
        self.metrics.queue_duration.observe(time.monotonic() - handle.enqueued_at)
        try:
            self._generate(handle)
        except Exception as exc:  # a failure of one request must not take the others down
            fail_request(handle, self.metrics, exc, "generation")

    def _generate(self, handle: Handle) -> None:
        req = handle.request  # decoder_input_details never gets here: ServerState.prepare answers it with a 422
        run = _Run(handle=handle, started=time.monotonic())
        loaded, lora = self._lora_for(req)
        history = len(req.input_ids) + req.max_new_tokens  # the most tokens this request holds in the cache
        try:
            slot, reusable = loaded.slots.acquire(req.adapter_id, req.input_ids, history, handle.cancelled)
        except _Cancelled:
            self.metrics.failure("cancelled")
            return
        try:
            self._decode(handle, run, loaded, slot, {
                "cache_prompt": self.reuse_prompts and reusable, "n_probs": 1, "lora": lora, "ignore_eos": False,
                "id_slot": slot, **sampling_fields(req.sampling, self._seed(req)),
                **penalty_fields(req.sampling, history)})
        finally:
            loaded.slots.release(slot, req.adapter_id, [*req.input_ids, *(t.id for t in run.tokens)])

    def _seed(self, req: GenerationRequest) -> int | None:
        """The request's seed, or one drawn here when it samples without one (reported back, as TGI does)."""
        if not req.sampling.sampling:
            return None
        return req.sampling.seed if req.sampling.seed is not None else random.randrange(2**32)

    def _decode(self, handle: Handle, run: _Run, loaded: _Loaded, slot: int, body: dict[str, Any]) -> None:
        """One streamed llama.cpp call: a token event per token it reports, the text as llama.cpp decoded it."""
        req = handle.request
        if "seed" in body:
            run.seed = int(body["seed"])
        if req.required_start:
            body["grammar"] = start_grammar(req.required_start)
        last: dict[str, Any] = {}

        def on_chunk(chunk: dict[str, Any]) -> bool:
            if "choices" not in chunk:  # an error from llama.cpp
                last["error"] = chunk
                return True
            choice = chunk["choices"][0]
            if "usage" in chunk:
                last["usage"] = chunk["usage"]
            if chunk.get("timings") and "timings" not in last:
                last["timings"] = chunk["timings"]
            self._accept(run, [(int(e["id"]), float(e["logprob"]))
                               for e in (choice.get("logprobs") or {}).get("content") or []], choice.get("text") or "")
            if choice.get("finish_reason"):
                last["finish_reason"] = choice["finish_reason"]
            # llama.cpp ends at `n_predict` and at its end tokens by itself (its last chunk brings the usage);
            # stopping it here is for a stop sequence found in the text, an end token of this model's own that
            # llama.cpp does not stop at, or a cancelled request
            return run.finish in ("stop_sequence", "eos_token") or handle.cancelled.is_set()

        loaded.server.handle_completions({**body, "prompt": list(req.input_ids), "n_predict": req.max_new_tokens,
                                          "stream": True, "timings_per_token": True}, on_chunk)
        if "error" in last:
            raise GenerationError(f"llama.cpp failed: {_message(last['error'])}")
        if handle.cancelled.is_set() and run.finish is None:
            self.metrics.failure("cancelled")
            return
        run.reused = int((last.get("timings") or {}).get("cache_n", 0))
        if run.finish is None:
            run.finish = "eos_token" if last.get("finish_reason") == "stop" else "length"
        count = int((last.get("usage") or {}).get("completion_tokens", 0))
        if run.finish not in ("stop_sequence", "eos_token") and count > len(run.tokens):
            run.count = count  # tokens that ended inside a UTF-8 character are not reported one by one
        self._finish(run)

    def _accept(self, run: _Run, tokens: list[tuple[int, float]], text: str) -> None:
        """A chunk: its tokens (id, log-probability) and the text they complete. llama.cpp reports a token that ends
        inside a UTF-8 character only with the text, so the chunk's text goes with its last reported token."""
        req = run.handle.request
        run.pending += text
        for i, (token, logprob) in enumerate(tokens):
            if run.finish is not None:
                return
            piece = run.pending if i == len(tokens) - 1 else ""
            if i == len(tokens) - 1:
                run.pending = ""
            if token in self.eos_ids or (piece == "" and token in self.special_ids):
                if token in self.eos_ids:
                    run.finish = "eos_token"
                delta = self._decoder.decode([token], skip_special_tokens=False)
            else:
                before = len(run.text)
                run.text += piece
                end = find_stop(run.text, before, req.stop) if req.stop else None
                if end is not None:
                    run.text = run.text[:end]
                    run.finish = "stop_sequence"
                elif len(run.tokens) + 1 >= req.max_new_tokens:
                    run.finish = "length"
                visible = visible_text(run.text, run.handle.request.hidden_start)
                delta = visible[len(run.emitted):]
                run.emitted = visible
            event = TokenEvent(len(run.tokens), token, delta, logprob, token in self.special_ids)
            run.tokens.append(event)
            run.handle.emit(event)

    def _finish(self, run: _Run) -> None:
        req = run.handle.request
        count = max(run.count, len(run.tokens))
        self.metrics.success(time.monotonic() - run.started, count)
        self.metrics.prefix_reused.inc(run.reused)
        run.handle.emit(FinishEvent(visible_text(run.text, req.hidden_start), run.finish or "length", count, run.seed,
                                    len(req.input_ids), tuple(run.tokens), (), run.reused))


def start_grammar(text: str) -> str:
    """A GBNF grammar: the output starts with `text`, then anything. Token healing and TGI's constrained start
    become this; llama.cpp's grammar follows UTF-8 across tokens, so a token ending inside a character fits."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return f'root ::= "{"".join(out)}" .*'


def _erase(server: Any, slot: int) -> None:
    """Replace a slot's cached prompt by one token (a one-token call without reuse): room in the shared cache."""
    out = server.handle_completions({"prompt": [0], "n_predict": 1, "cache_prompt": False, "id_slot": slot,
                                     "temperature": 0.0, "top_k": 1})
    if "choices" not in out:
        raise GenerationError(f"llama.cpp could not free slot {slot}: {_message(out)}")


def _message(out: dict[str, Any]) -> str:
    error = out.get("error", out)
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)
