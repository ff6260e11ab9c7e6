"""Int8 weights for the CPU engine: every linear layer of the base model as W8A8 with per-token activation scales.

`quantize_linears(model)` swaps each `nn.Linear` (the attention and MLP projections and the output head) for an
`Int8Linear`: int8 weights with one scale per output channel, and each input row quantized on the fly with its
own scale, then one integer matrix product (`torch._int_mm`, exact int32 sums). Per-row scales keep a row's
result independent of the other rows in the batch and of how its prompt was split between cached and new tokens,
so batched, prefix-reused and single-request decoding agree token for token. `Int8Linear` is an `nn.Linear`
subclass, so peft wraps it with LoRA layers as it wraps a float one. Called by `server.loading`.
"""

from __future__ import annotations

import ctypes
import gc
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

_QMAX = 127.0


class Int8Linear(nn.Linear):
    """y = x @ W.T + b with W in int8 (per output channel scales) and x quantized per row to int8."""

    qweight_t: torch.Tensor  # [in, out] int8
    weight_scale: torch.Tensor  # [out] float32

    def __init__(self, linear: nn.Linear) -> None:
        nn.Module.__init__(self)  # not nn.Linear's: it would allocate a float weight we are about to drop
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / _QMAX).clamp_min(1e-12)
        self.register_buffer("qweight_t", torch.round(w / scale[:, None]).clamp(-_QMAX, _QMAX)
                             .to(torch.int8).t().contiguous())
        self.register_buffer("weight_scale", scale)
        # peft reads the base layer's weight for its device and dtype only (the int8 copy is what computes)
        self.weight = nn.Parameter(torch.empty(0, dtype=torch.float32, device=w.device), requires_grad=False)
        self.bias = (nn.Parameter(linear.bias.detach().float(), requires_grad=False)
                     if linear.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float()
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / _QMAX
        q = torch.round(rows / scale).to(torch.int8)
        out = torch._int_mm(q, self.qweight_t).float().mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_linears(model: nn.Module) -> int:
    """Replace every `nn.Linear` of `model` (in place) by an `Int8Linear`; returns how many were replaced.

    The output head stops sharing its weight with the (float) input embedding: it gets its own int8 copy.
    """
    targets = [(name, module) for name, module in model.named_modules()
               if type(module) is nn.Linear]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module))
    config = getattr(model, "config", None)
    if config is not None:
        config.tie_word_embeddings = False  # the head is no longer the embedding: never re-tie them
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.numel() and tensor.dtype != torch.int8:
            # the loader maps the checkpoint file: a copy lets the mapping (and its resident pages) go
            tensor.data = tensor.data.clone()
    gc.collect()
    _release_freed_memory()
    log.info("int8 weights for %d linear layers", len(targets))
    return len(targets)


def _release_freed_memory() -> None:
    """Give the float weights' pages back to the system (glibc keeps freed arenas otherwise; RSS is reported)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
