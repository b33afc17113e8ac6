"""Feature extractors for distribution metrics (FD/KD, precision/recall/density/coverage), named by
what they are, and image-folder loading into uint8 tensors.

An :class:`Extractor` wraps any callable ``(N, 3, H, W) uint8 -> (N, D)`` with a ``tag`` and a
``description`` (network, weights file, input resizing and normalisation) that every metric
computed with it carries into the output. The metric names follow the tag:

========================  ==========================  =============================================
``--extractor``           names                        weights
========================  ==========================  =============================================
``inception``             ``fid``, ``kid``             pytorch-fid's TF-2015 Inception (local file)
``efficientnet-lite0``    ``fd_effnet``, ``kd_effnet``  ImageNet, shipped by a pip package
========================  ==========================  =============================================

Only ``inception`` produces numbers named FID/KID; the others are labelled as not comparable to
published values. Nothing falls back silently: a missing file raises ``WeightsNotFoundError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.images import list_images, load_image

__all__ = ["Extractor", "load_folder", "image_tensor", "get_extractor", "EXTRACTORS", "auto_extractor"]

EXTRACTORS = ("inception", "efficientnet-lite0")


@dataclass
class Extractor:
    """A named feature extractor. ``fn``: ``(N, 3, H, W)`` uint8 -> ``(N, D)`` tensor or array.

    ``weights_file``: the file its weights came from (reports state it with its SHA-256);
    ``implementation``: for the FID Inception, how images are resized for it (``"legacy"`` or
    ``"clean"``, :mod:`sesim.metrics.fid_impl`).
    """

    tag: str
    description: str
    fn: Callable
    batch_size: int = 16
    weights_file: str | None = None
    implementation: str | None = None

    @property
    def fd_name(self) -> str:
        return "fid" if self.tag == "inception" else f"fd_{self.tag}"

    @property
    def kd_name(self) -> str:
        return "kid" if self.tag == "inception" else f"kd_{self.tag}"

    @torch.no_grad()
    def features(self, images: list[torch.Tensor]) -> np.ndarray:
        """``(N, D)`` float64 features of a list of ``(3, H, W)`` uint8 tensors (sizes may differ;
        consecutive images of one size are batched)."""
        out, group = [], []

        def flush():
            if group:
                f = self.fn(torch.stack(group))
                out.append(f.detach().cpu().double().numpy() if torch.is_tensor(f) else np.asarray(f, np.float64))
                group.clear()

        for img in images:
            if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
                raise ValueError(f"expected (3, H, W) uint8 images, got {img.dtype} {tuple(img.shape)}")
            if group and (group[0].shape != img.shape or len(group) >= self.batch_size):
                flush()
            group.append(img)
        flush()
        if not out:
            raise ValueError("no images")
        return np.concatenate(out)


def image_tensor(image) -> torch.Tensor:
    """An RGB PIL image (or ``(H, W, 3)`` uint8 array) -> a ``(3, H, W)`` uint8 tensor of its own."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


def load_folder(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All images under ``folder`` (recursive) as RGB ``(3, H, W)`` uint8 tensors, keyed by relative
    path without extension (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return {str(p.relative_to(folder).with_suffix("")): image_tensor(load_image(p, 3)) for p in list_images(folder)}


def get_extractor(name: str, *, inception_weights: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> Extractor:
    """Build ``"inception"`` or ``"efficientnet-lite0"`` (see module doc); raises ``WeightsNotFoundError``."""
    if name == "inception":
        from ..nets.inception import FIDInceptionV3

        net = FIDInceptionV3(weights=inception_weights or "auto").to(device)
        return Extractor("inception", net.description + f"; file {net.weights_source}",
                         lambda x: net(x.to(device)),
                         weights_file=None if net.weights_source == "random" else net.weights_source,
                         implementation="legacy")
    if name in ("efficientnet-lite0", "effnet"):
        from ..nets.efficientnet import EfficientNetLite0Features

        net = EfficientNetLite0Features("auto").to(device)
        return Extractor("effnet", net.description, lambda x: net(x.to(device)),
                         weights_file=str(net.weights_file) if net.weights_file else None)
    raise ValueError(f"unknown extractor {name!r}; choose from {', '.join(EXTRACTORS)}")


def auto_extractor(*, inception_weights: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> Extractor | None:
    """The best extractor available offline: the FID Inception if its weights are found, else
    EfficientNet-Lite0 if installed (a dependency of sesim), else ``None`` (the caller says what is
    missing)."""
    from ..nets.efficientnet import efficientnet_lite0_available
    from ..nets.inception import FID_INCEPTION_ENV, FID_INCEPTION_FILE
    from ..nets.weightfiles import find_weights_file

    # a set but wrong $SESIM_INCEPTION_WEIGHTS raises here rather than being skipped silently
    if find_weights_file(FID_INCEPTION_FILE, path=inception_weights, env=FID_INCEPTION_ENV) is not None:
        return get_extractor("inception", inception_weights=inception_weights, device=device)
    if efficientnet_lite0_available():
        return get_extractor("efficientnet-lite0", device=device)
    return None
