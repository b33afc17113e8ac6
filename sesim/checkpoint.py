"""Run-folder files written atomically: generator weights (safetensors) and the resume state.

A file is written to a temporary name in the same folder, flushed to disk, then renamed over
the target (``os.replace`` is atomic on POSIX and Windows), so a run killed at any moment leaves
either the previous complete file or the new complete file, never a torn one.
"""

from __future__ import annotations

import json
import os
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file

GENERATOR_FILE = "generator.safetensors"
DIRECTIONS = ("AtoB", "BtoA")


def generator_file(direction: str = "AtoB") -> str:
    """File name of a run's generator for ``direction`` (``generator.safetensors`` for AtoB)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose AtoB or BtoA")
    return GENERATOR_FILE if direction == "AtoB" else f"generator_{direction}.safetensors"
STATE_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def save_generator(path: str | Path, generator: torch.nn.Module, metadata: dict[str, Any]) -> None:
    """Write inference weights as safetensors; ``metadata`` values are stored as JSON strings."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in metadata.items()})


def load_generator_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return load_file(str(path), device=str(device))


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path) -> dict[str, Any]:
    # weights_only=False: the file holds numpy/python RNG states; only load checkpoints you wrote.
    return torch.load(path, map_location="cpu", weights_only=False)


def capture_rng() -> dict[str, Any]:
    """All global RNG states: python, numpy, torch CPU and (if present) every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
