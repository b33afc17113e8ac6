"""Optional execution settings of a training run: memory layout, compilation, reduced precision.

None of them changes what is computed (up to floating-point rounding), and all are off by default:

* ``--channels-last``: networks and batches in NHWC memory order, which cuDNN's tensor-core
  convolutions and oneDNN prefer; on other back ends it may cost more than it saves.
* ``--compile``: ``torch.compile`` every network of the method *in place* (``nn.Module.compile``),
  so state-dict keys, checkpoints and ``sesim translate`` are unaffected. The first steps are slow
  (compilation); ``--compile-backend`` picks the compiler (``inductor`` needs a C++ compiler on CPU).
* ``--precision bf16``: the training step runs under ``torch.autocast`` with bfloat16. Weights,
  optimiser states and losses stay float32 and bfloat16 needs no loss scaling. Float32 stays the
  default: reduced precision is known to destabilise GAN training in this family of models
  (see the public CUT / F-LSeSim issue trackers), so use it where speed matters and watch the losses.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

log = logging.getLogger("sesim")

PRECISIONS = ("fp32", "bf16")


def to_channels_last(method: nn.Module) -> None:
    """Put every 4-D parameter and buffer of ``method`` in channels-last order (in place)."""
    method.to(memory_format=torch.channels_last)


def batch_to_channels_last(batch: dict) -> dict:
    """Images ``(N, C, H, W)`` of a batch dict -> the same values in channels-last order."""
    return {k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.dim() == 4 else v
            for k, v in batch.items()}


def compile_networks(method: nn.Module, backend: str = "inductor") -> list[str]:
    """``torch.compile`` in place each direct submodule of ``method`` that holds parameters
    (generators, discriminators, heads, losses); returns their names."""
    names = []
    for name, module in method.named_children():
        if next(module.parameters(), None) is not None:
            module.compile(backend=backend)
            names.append(name)
    log.info("compiled with torch.compile (backend %s): %s", backend, ", ".join(names))
    return names


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """The context a training step runs in: nothing for fp32, bfloat16 autocast for bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
