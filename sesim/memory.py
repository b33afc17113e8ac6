"""Memory figures for inference: size strings, the machine's available memory, and the peak
memory of whole-image inference estimated from the image size and the generator.

The estimate is measured, not modelled: the generator runs on two small probe images while a
dispatch mode records every tensor storage the forward pass allocates and when it is released;
the peak of the live bytes is fitted as ``a * N * H * W + b`` (activations grow with the pixel
count, the rest does not). ``bench/tiled_memory.py`` compares it with the measured peak RSS.
"""

from __future__ import annotations

import argparse
import os
import re
import weakref
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["parse_size", "MemorySize", "format_size", "available_memory", "current_rss", "return_freed_memory_promptly",
           "whole_image_bytes", "WHOLE_IMAGE_MARGIN"]

#: measured peak RSS growth of whole-image inference over :func:`whole_image_bytes`: oneDNN's
#: convolutions keep a reordered copy of their output, which the dispatch-level count does not see
#: (bench/tiled_memory.py: 1.41 at 2048 px, 1.40 at 4096 px for the paper's ResNet generator)
WHOLE_IMAGE_MARGIN = 1.45

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """``"4G"``, ``"512M"``, ``"1.5g"``, ``"800MB"``, ``"2GiB"`` or a byte count -> bytes (> 0).

    Raises:
        ValueError: not a size, or not positive.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
        if m is None:
            raise ValueError(f"{text!r} is not a memory size; write e.g. 4G, 512M or 1.5G")
        value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return value


class MemorySize:
    """argparse ``type=`` of a memory size (``--max-memory``): a size such as 4G or 512M (bytes), or
    auto (``None``)."""

    def __call__(self, text: str) -> int | None:
        if text.strip().lower() == "auto":
            return None
        try:
            return parse_size(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    @staticmethod
    def bad_values() -> list[str]:
        return ["0", "-1G", "lots", "4X"]


def format_size(n: int | float) -> str:
    """Bytes -> ``"10.3 GB"`` (powers of 1024, one decimal)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _proc_kb(path: str, key: str) -> int | None:
    """The ``key:`` line of a ``/proc`` status file, in bytes (its value is in kB), or None."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int:
    """Bytes the system can give this process now (``MemAvailable`` on Linux, else physical memory)."""
    found = _proc_kb("/proc/meminfo", "MemAvailable")
    if found is not None:
        return found
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def current_rss() -> int:
    """Resident memory of this process now, in bytes (0 where ``/proc`` is missing)."""
    return _proc_kb("/proc/self/status", "VmRSS") or 0


def return_freed_memory_promptly(threshold: int = 1 << 20) -> None:
    """Ask glibc to serve allocations above ``threshold`` bytes with their own mappings, so memory
    freed by a tile goes back to the system at once instead of fragmenting the heap (tiled
    inference allocates thousands of tile-sized blocks; without this its peak RSS is about twice
    its live tensors). No-op on other C libraries."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, int(threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class _LiveBytes(TorchDispatchMode):
    """Tracks bytes of tensor storages created by the ops it sees, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, _types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if not key:
                    continue
                if key not in self.refs:
                    self.refs[key], self.sizes[key] = 0, storage.nbytes()
                    self.current += self.sizes[key]
                    self.peak = max(self.peak, self.current)
                self.refs[key] += 1
                weakref.finalize(t, self._release, key)
        return out

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.refs[key]


@torch.inference_mode()
def _probe_peak(generator: nn.Module, channels: int, side: int, kwargs: dict[str, Any], device) -> int:
    x = torch.zeros(1, channels, side, side, device=device)
    tracker = _LiveBytes()
    with tracker:
        generator(x, **kwargs)
    return tracker.peak


_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[float, float]]" = weakref.WeakKeyDictionary()


def whole_image_bytes(generator: nn.Module, shape: tuple[int, int, int, int], **kwargs: Any) -> int:
    """Estimated peak bytes that whole-image inference of ``(N, C, H, W)`` allocates, beyond the
    input (which the caller holds) and the weights. ``kwargs`` go to the generator (``style=``).

    Fitted from probes of 8 and 16 times the generator's stride (cached per generator)."""
    n, c, h, w = shape
    coeffs = _CACHE.get(generator)
    if coeffs is None:
        stride = int(getattr(generator, "stride", 4))
        device = next(generator.parameters()).device
        small, large = 8 * stride, 16 * stride
        p1 = _probe_peak(generator, c, small, kwargs, device)
        p2 = _probe_peak(generator, c, large, kwargs, device)
        per_px = (p2 - p1) / (large ** 2 - small ** 2)
        coeffs = (per_px, max(p1 - per_px * small ** 2, 0.0))
        _CACHE[generator] = coeffs
    per_px, const = coeffs
    return int(per_px * n * h * w + const)
