"""Where and how a command runs: the torch device, seeding, data-loading workers."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["DeviceError", "resolve_device", "seed_everything", "default_workers"]


class DeviceError(ValueError):
    """The requested device does not exist on this machine (message says what to use instead)."""


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda (``cuda:<local_rank>`` under torchrun), else mps, else cpu; other names as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_workers() -> int:
    """Data-loading processes when not given: one per spare CPU core, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))
