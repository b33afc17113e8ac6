"""Run-folder files: written atomically, loaded safely.

A file is written to a temporary name in the same folder (``.<name>.tmp-<pid>``), flushed to
disk, given the folder's usual file mode, then renamed over the target (``os.replace`` is atomic
on POSIX and Windows), so a run killed at any moment leaves either the previous complete file or
the new complete file, never a torn one; :func:`remove_stale_temp_files` deletes the temporary
files a killed process left behind. The resume state keeps its previous version
(``checkpoint.prev.pt``) until the new one is complete, so a latest checkpoint damaged later (a
bad disk, a partial copy) never loses the run.

Loading never runs code from a file: the resume state is plain data (tensors, numbers, strings,
lists, dicts; RNG states as tensors) read with ``torch.load(weights_only=True)``, weights are
safetensors. A damaged or unsafe file raises :class:`RunFileError`, one line naming the file and
what to do.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .nets.described import network_spec
from .safeload import UnreadableFileError, describe_error, load_plain

GENERATOR_FILE = "generator.safetensors"
DIRECTIONS = ("AtoB", "BtoA")
STATE_FILE = "checkpoint.pt"
PREVIOUS_STATE_FILE = "checkpoint.prev.pt"
DAMAGED_STATE_FILE = "checkpoint.damaged.pt"
CONFIG_FILE = "config.json"


def generator_file(direction: str = "AtoB") -> str:
    """File name of a run's generator for ``direction`` (``generator.safetensors`` for AtoB)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose AtoB or BtoA")
    return GENERATOR_FILE if direction == "AtoB" else f"generator_{direction}.safetensors"


#: a damaged, truncated or unsafe run file (the message names it and says what to do)
RunFileError = UnreadableFileError


def default_file_mode() -> int:
    """The mode a newly created file gets here (``0o666`` minus the umask), read without
    changing the umask (``/proc/self/status``) where possible."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, default_file_mode())  # some writers (safetensors) create files 0600
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
    """Write inference weights as safetensors with the arguments that rebuild the network
    (``"network"``, :mod:`sesim.nets.described`); ``metadata`` values are stored as JSON strings."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    metadata = {"network": network_spec(generator), **metadata}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in metadata.items()})


def load_generator_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file.

    Raises:
        FileNotFoundError: no such file.
        RunFileError: the file is truncated or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:  # SafetensorError, OSError, ...
        hint = (f"`sesim train --resume {path.parent}` rewrites it from the run's {STATE_FILE}"
                if (path.parent / STATE_FILE).is_file() else "restore it from a copy")
        raise RunFileError(f"{path} is damaged ({describe_error(err)}); {hint}, or pass --weights FILE") from None


def generator_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata :func:`save_generator` stored with generator weights (``network``, ``step``,
    ``direction``, ``config``, ...), values decoded from JSON; ``{}`` if the file cannot be read
    (:func:`load_generator_weights` says why, with what to do)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except Exception:  # noqa: BLE001  (SafetensorError, OSError, ...)
        return {}
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write the resume state atomically, keeping the one it replaces as ``checkpoint.prev.pt``
    (a hard link, so no copy) until the new file is complete."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        if path.is_file():
            previous = path.with_name(PREVIOUS_STATE_FILE)
            link = previous.with_name(f".{previous.name}.tmp-{os.getpid()}")
            link.unlink(missing_ok=True)
            try:
                os.link(path, link)
            except OSError:  # no hard links on this file system: copy
                shutil.copyfile(path, link)
            os.replace(link, previous)


def read_state(path: str | Path) -> dict[str, Any]:
    """A resume state, loaded as plain data (:func:`sesim.safeload.load_plain`); raises :class:`RunFileError`.

    Files from sesim before 0.2 hold numpy's RNG state as an ndarray: numpy's array
    reconstruction (data only) is allowed for them, nothing else."""
    path = Path(path)
    legacy = []
    try:
        core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
        legacy = [core._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    except AttributeError:
        pass
    try:
        state = load_plain(path, allow=legacy)
    except RunFileError as err:
        if err.unsafe:
            raise RunFileError(f"{err}; sesim never writes such checkpoints (restore the run folder from a trusted "
                               "copy)", unsafe=True) from None
        raise
    if not isinstance(state, dict) or "step" not in state:
        raise RunFileError(f"{path} is not a sesim checkpoint (no step); restore the run folder from a copy")
    return state


def load_state(path: str | Path) -> dict[str, Any]:
    """The resume state in ``path`` (see :func:`read_state`). When it is damaged, the message says
    whether the previous checkpoint next to it is intact and how to continue from it."""
    path = Path(path)
    try:
        return read_state(path)
    except RunFileError as err:
        if err.unsafe:
            raise
        previous = path.with_name(PREVIOUS_STATE_FILE)
        try:
            step = read_state(previous)["step"] if previous.is_file() else None
        except RunFileError:
            step = None
        if step is None:
            raise RunFileError(f"{err}; no intact previous checkpoint ({PREVIOUS_STATE_FILE}) is next to it, so the "
                               "run cannot continue: start it again (its generator weights may still translate)") from None
        raise RunFileError(f"{err}; the previous checkpoint {previous} (step {step}) is intact: continue from it with "
                           f"`sesim train --resume {path.parent} --from-previous`") from None


def use_previous_state(run_dir: str | Path) -> int:
    """Make the previous checkpoint the current one (``--from-previous``): the damaged
    ``checkpoint.pt`` is kept as ``checkpoint.damaged.pt``. Returns the step it continues from.

    Raises:
        RunFileError: there is no intact previous checkpoint.
    """
    run_dir = Path(run_dir)
    previous = run_dir / PREVIOUS_STATE_FILE
    if not previous.is_file():
        raise RunFileError(f"--from-previous: {previous} does not exist")
    step = read_state(previous)["step"]
    current = run_dir / STATE_FILE
    if current.exists():
        os.replace(current, run_dir / DAMAGED_STATE_FILE)
    with atomic_path(current) as tmp:
        shutil.copyfile(previous, tmp)
    return step


_TEMP = re.compile(r"^\.(.+)\.tmp-(\d+)$")


def remove_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` files of processes that no longer run (a killed write) in the run
    folder and its subfolders one level down (``snapshots/``, ``samples/``, ...); returns them."""
    run_dir = Path(run_dir)
    folders = [run_dir, *(p for p in run_dir.iterdir() if p.is_dir() and not p.is_symlink())]
    removed = []
    for path in (p for folder in folders for p in folder.iterdir()):
        m = _TEMP.match(path.name)
        if m is None or not path.is_file():
            continue
        pid = int(m.group(2))
        if pid != os.getpid() and _alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def capture_rng() -> dict[str, Any]:
    """All global RNG states as plain data: python (tuples of ints), numpy (its MT19937 key as a
    tensor), torch CPU and (if present) every CUDA device."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    if isinstance(npy, dict):
        npy = (npy["kind"], npy["key"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(npy)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
