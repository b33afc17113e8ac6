"""Finding a pretrained weights file on the local disk, never downloading it.

Metric networks (the FID Inception, the LPIPS backbones and linear layers) must use exactly the
published weights, or the number they produce is not the metric it is named after. Each is looked
for, in order, at

1. an explicit path given by the caller (a command-line flag such as ``--inception-weights``),
2. an environment variable (e.g. ``SESIM_INCEPTION_WEIGHTS``),
3. the torch hub cache: ``torch.hub.get_dir()/checkpoints/<standard file name>`` (default
   ``~/.cache/torch/hub/checkpoints/``; ``$TORCH_HOME`` moves it), where the reference tools
   themselves store the file after their first download,
4. optionally further candidate paths (e.g. a file shipped inside an installed package).

When none exists, :class:`WeightsNotFoundError` names the file, every place looked and how to fix
it. Nothing is ever substituted silently.

Also here, as every pretrained network takes them: the checks and conversions of input images
(:func:`rgb_input` for the structure backbones, :func:`uint8_input` for the metric networks).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch

__all__ = ["WeightsNotFoundError", "hub_checkpoint_path", "find_weights_file", "require_weights_file",
           "load_weights_file", "rgb_input", "uint8_input"]


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights were asked for but no file could be found (or downloaded, where allowed)."""


def hub_checkpoint_path(file_name: str) -> Path:
    """``torch.hub.get_dir()/checkpoints/<file_name>`` (whether it exists or not)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def find_weights_file(file_name: str, *, path: str | os.PathLike | None = None, env: str | None = None,
                      extra: Iterable[Path] = (), what: str = "pretrained") -> Path | None:
    """Return the first existing candidate (explicit path, ``$env``, hub cache, ``extra``) or ``None``.

    An explicit ``path`` or a set environment variable that does not point to a file is an error
    (:class:`WeightsNotFoundError`, naming the network ``what``), not a reason to fall through to
    other places: the user asked for that file.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsNotFoundError(f"{what} weights file {p} does not exist (expected {file_name}).")
        return p
    if env and os.environ.get(env):
        p = Path(os.environ[env])
        if not p.is_file():
            raise WeightsNotFoundError(f"${env} points to {p}, which is not a file. Set it to the path of "
                                       f"{file_name} (or unset it).")
        return p
    cached = hub_checkpoint_path(file_name)
    if cached.is_file():
        return cached
    for p in extra:
        if p is not None and Path(p).is_file():
            return Path(p)
    return None


def require_weights_file(file_name: str, what: str, *, path: str | os.PathLike | None = None,
                         env: str | None = None, flag: str | None = None, extra: Iterable[Path] = (),
                         source_hint: str = "") -> Path:
    """Like :func:`find_weights_file` but raise a :class:`WeightsNotFoundError` explaining where to put
    the file when it is absent. ``what`` names the network (e.g. "FID Inception-v3 (pytorch-fid)")."""
    extra = [Path(p) for p in extra if p is not None]
    found = find_weights_file(file_name, path=path, env=env, extra=extra, what=what)
    if found is not None:
        return found
    places = []
    if flag:
        places.append(f"pass {flag} /path/to/{file_name}")
    if env:
        places.append(f"set ${env}=/path/to/{file_name}")
    places.append(f"copy it to {hub_checkpoint_path(file_name)}")
    places += [f"(also looked at {p})" for p in extra]
    hint = f" {source_hint}" if source_hint else ""
    raise WeightsNotFoundError(
        f"{what} weights not found: the file {file_name} is needed.{hint}\n  - " + "\n  - ".join(places)
        + "\nsesim never downloads metric weights and never substitutes other weights under the same metric name."
    )


def load_weights_file(path: str | os.PathLike, what: str) -> dict:
    """The state dict in a pretrained ``.pth`` file, loaded as plain data (never runs code).

    Raises:
        UnreadableFileError: the file is damaged or unsafe; the message names it and says to
            fetch it again.
    """
    from ..safeload import UnreadableFileError, load_plain

    try:
        return load_plain(path)
    except UnreadableFileError as err:
        raise UnreadableFileError(f"{err}; replace it with a fresh copy of the {what} weights",
                                  unsafe=err.unsafe) from None


def rgb_input(x: torch.Tensor) -> torch.Tensor:
    """A structure backbone's input ``(N, 1 or 3, H, W)`` -> ``(N, 3, H, W)`` (greyscale repeated); values untouched."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def uint8_input(images: torch.Tensor) -> torch.Tensor:
    """A metric network's input ``(N, 3, H, W)``, uint8 or float in [0, 1] -> uint8 (floats quantised:
    ``round(x * 255)``), as the reference pipelines see images."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return images
