"""Folders of generated datasets (the demo scenes; also the benchmarks' tasks in bench/lab/): reuse,
replace or refuse, and the start and finish of a generation.

A generated dataset is a folder of ``NNNNNN.png`` files in fixed sub-folders plus a ``meta.json``
whose ``kind`` names the generator, whose ``counts`` give the files per sub-folder, and whose
``complete`` flag is set last (so an interrupted generation is never mistaken for a finished one).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

STEM_RE = re.compile(r"^\d{6}\.png$")


def save_png(path: Path, arr: np.ndarray) -> None:
    """Write an ``(H, W)`` or ``(H, W, 3)`` uint8 array as a PNG (fast compression)."""
    Image.fromarray(np.ascontiguousarray(arr)).save(path, compress_level=1)


def _is_complete(root: Path, meta: dict, subdirs: tuple[str, ...]) -> bool:
    if not meta.get("complete", False):
        return False
    counts = meta.get("counts", {})
    for sub in subdirs:
        d = root / sub
        if counts.get(sub) is None or not d.is_dir():
            return False
        if sum(1 for p in d.iterdir() if STEM_RE.match(p.name)) != counts[sub]:
            return False
    return True


def _clear_previous(root: Path, subdirs: tuple[str, ...]) -> None:
    """Remove the files a previous generation wrote (and nothing else)."""
    for sub in subdirs:
        d = root / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and STEM_RE.match(p.name):
                    p.unlink()
    (root / "meta.json").unlink(missing_ok=True)


def prepare_folder(root: Path, kind: str, params: dict, subdirs: tuple[str, ...]) -> dict | None:
    """Get ``root`` ready for a dataset of ``kind`` generated with ``params``.

    Returns the existing meta when a complete dataset with the same parameters is already there
    (reuse it as is). Otherwise clears a previous dataset of the same kind (only its own files) and
    returns ``None``. Raises ``FileExistsError`` for a non-empty folder holding anything else.
    """
    meta_path = root / "meta.json"
    if not root.exists():
        return None
    if not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a directory")
    if meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or old.get("kind") != kind:
            raise FileExistsError(f"{root} has a meta.json that is not from a {kind} dataset")
        if all(old.get(k) == v for k, v in params.items()) and _is_complete(root, old, subdirs):
            return old
        _clear_previous(root, subdirs)
    elif any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty and is not a {kind} dataset (no meta.json); "
                              "choose an empty or new folder")
    return None


def start_dataset(root: Path, kind: str, params: dict, counts: dict[str, int], **fields) -> dict:
    """Begin writing a dataset of ``kind`` with ``params`` into ``root`` (:func:`prepare_folder` rules).

    Returns the existing meta (its ``complete`` is true) when a complete dataset with the same
    parameters is already there; else a new meta — ``kind``, ``params``, ``fields``, ``counts`` (files
    per sub-folder) and ``complete: false`` — written to ``meta.json``, with every sub-folder of
    ``counts`` created. The caller writes the files, then calls :func:`finish_dataset`.
    """
    existing = prepare_folder(root, kind, params, tuple(counts))
    if existing is not None:
        return existing
    meta = {"kind": kind, **params, **fields, "counts": counts, "complete": False}
    root.mkdir(parents=True, exist_ok=True)
    # written first (incomplete), so an interrupted generation is recognised and rebuilt later
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
    for sub in counts:
        (root / sub).mkdir(parents=True, exist_ok=True)
    return meta


def finish_dataset(root: Path, meta: dict) -> dict:
    """Mark the dataset in ``root`` complete (the last write of a generation); returns ``meta``."""
    meta["complete"] = True
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta
