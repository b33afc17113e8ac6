"""Loading files someone may have sent you: plain data only, and one clear line when a file is bad.

``torch.load`` unpickles, and a pickle can name any Python function to call. Every ``.pt`` / ``.pth``
file sesim reads (resume states, pretrained weights) goes through :func:`load_plain`, i.e.
``torch.load(weights_only=True)``: tensors, numbers, strings, lists, tuples and dicts are built,
anything else is refused before it runs. A truncated, empty or otherwise damaged file, and a
refused one, raise :class:`UnreadableFileError` whose message names the file and the reason; the
caller adds what to do.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

__all__ = ["UnreadableFileError", "load_plain", "describe_error"]


class UnreadableFileError(ValueError):
    """A file is damaged, truncated or not safe to load; the message names it and says what to do."""

    def __init__(self, message: str, *, unsafe: bool = False) -> None:
        super().__init__(message)
        self.unsafe = unsafe


def describe_error(err: BaseException) -> str:
    """A short reason for a failed load (``"truncated"``, ``"invalid header"``, ...)."""
    text = " ".join(str(err).split())
    for known, said in (("failed finding central directory", "truncated or not a torch file"),
                        ("weights only load failed", "not a torch file, or its data is corrupt"),
                        ("invalid header", "invalid header"), ("file is truncated", "truncated"),
                        ("ran out of input", "truncated"), ("unexpected eof", "truncated")):
        if known in text.lower():
            return said
    if isinstance(err, EOFError) or not text:
        return "empty or truncated"
    return text[:120]


def _pickles(path: Path) -> list[bytes]:
    """The pickle streams of a torch file (``data.pkl`` of the zip format, else the whole file)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return [zf.read(name) for name in zf.namelist() if name.endswith("data.pkl")]
    return [path.read_bytes()]


def _code_references(path: Path) -> list[str] | None:
    """The functions and classes a well-formed pickle file refers to (read with ``pickletools``,
    never executed), or None if the file is not a well-formed pickle (it is damaged)."""
    names: list[str] = []
    try:
        for data in _pickles(path):
            stream = io.BytesIO(data)
            while True:  # the legacy torch format holds several pickles in a row, then raw tensor bytes
                strings: list[str] = []
                for op, arg, _ in pickletools.genops(stream):
                    if op.name in ("GLOBAL", "INST"):
                        names.append(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                        names.append(".".join(strings[-2:]))
                    elif isinstance(arg, str):
                        strings.append(arg)
                if stream.read(1) != b"\x80":  # no further pickle (protocol 2+ marker)
                    break
                stream.seek(-1, io.SEEK_CUR)
    except Exception:  # not a well-formed pickle
        return None
    return names


#: globals a torch checkpoint of plain data refers to (restoring tensors, ordered dicts)
_PLAIN = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "numpy.")


def _refused(err: BaseException, path: Path) -> str | None:
    """What made the restricted unpickler refuse a well-formed file, or None if it is damaged."""
    if not isinstance(err, pickle.UnpicklingError) or "weights only load failed" not in str(err).lower():
        return None
    names = _code_references(path)
    if names is None:
        return None
    code = [n for n in names if not n.startswith(_PLAIN)]
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    what = code[0] if code else (found.group(1) if found else None)
    return f"a reference to {what}" if what else "pickle instructions that are not plain data"


def load_plain(path: str | Path, *, allow: Iterable[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU (``allow``: extra data-only globals).

    Raises:
        FileNotFoundError: no such file.
        UnreadableFileError: the file is damaged, or holds something other than plain data
            (``unsafe=True``; it was not run).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(list(allow)):
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says more
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        refused = _refused(err, path)
        if refused is not None:
            raise UnreadableFileError(f"refusing to load {path}: it holds {refused}, which could run code when "
                                      "loaded; do not use this file (get it again from a trusted source)",
                                      unsafe=True) from None
        raise UnreadableFileError(f"{path} is damaged ({describe_error(err)})") from None
