"""Segmentation accuracy of translated images ("FCN score"): does a segmenter trained on real
target-domain photos find the layout of the *input* in the translation?

The segmentation model is supplied by the user (sesim ships none):

* a TorchScript file (``--segmenter model.pt``, loaded with ``torch.jit.load``), or a
  ``torch.export`` program saved with ``torch.export.save`` (``--segmenter model.pt2``), or
* a Python callable ``module:function`` (``--segmenter mypkg.seg:predict``), imported by name.

Contract of the model: called with a float tensor ``(N, 3, H, W)``, RGB in ``[0, 1]`` (do any
normalisation inside), it returns either class scores ``(N, C, h, w)`` (upsampled bilinearly to
the label size, then arg-maxed) or class ids ``(N, h, w)`` (resized to the label size with
nearest-neighbour).

Protocol (Cityscapes style): label maps are single-channel PNGs of class ids (train ids
``0..K-1``, ``--num-classes``, default 19); pixels labelled **255 are ignored** (void), as are
labels outside ``0..K-1``. One confusion matrix is accumulated over the whole set, and
pixel accuracy, mean class accuracy and mIoU come from it
(:func:`sesim.metrics.layout.segmentation_scores`). Label maps are matched to images by
relative path without extension.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .layout import confusion_matrix, segmentation_scores

__all__ = ["load_segmenter", "predict_labels", "segmentation_accuracy", "IGNORE_INDEX"]

IGNORE_INDEX = 255


def load_segmenter(spec: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A TorchScript file path or ``module:function`` -> callable (see module doc)."""
    path = Path(spec)
    if path.is_file():
        try:
            if path.suffix == ".pt2":  # torch.export program (the successor of TorchScript)
                return torch.export.load(str(path)).module()
            with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, but asked for here
                warnings.simplefilter("ignore", FutureWarning)
                model = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:  # a damaged or truncated file, or not a TorchScript / torch.export file
            reason = " ".join(str(err).split())[:160] or type(err).__name__
            raise ValueError(f"--segmenter {path}: cannot load it ({reason}); pass a TorchScript file "
                             "(torch.jit.save) or a torch.export .pt2 file") from None
        model.eval()
        return model
    if ":" in spec and not path.suffix:
        mod_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as err:
            raise ValueError(f"--segmenter {spec}: cannot import {mod_name} ({err})") from err
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"--segmenter {spec}: {mod_name} has no callable {attr!r}")
        return fn
    raise FileNotFoundError(f"--segmenter {spec}: not a TorchScript file nor a 'module:function' name")


@torch.no_grad()
def predict_labels(segmenter: Callable, image_uint8: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Class ids ``(H, W)`` at ``size`` for one ``(3, h, w)`` uint8 image."""
    out = segmenter(image_uint8[None].float() / 255.0)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):  # torchvision segmentation models return {"out": ...}
        out = out["out"]
    if out.ndim == 4:
        out = F.interpolate(out.float(), size=size, mode="bilinear", align_corners=False).argmax(1)
    elif out.ndim == 3:
        out = F.interpolate(out[:, None].float(), size=size, mode="nearest")[:, 0].long()
    else:
        raise ValueError(f"segmenter returned shape {tuple(out.shape)}; expected (N, C, h, w) or (N, h, w)")
    return out[0].cpu().numpy()


def segmentation_accuracy(segmenter: Callable, images: dict[str, torch.Tensor], label_dir: str | Path, *,
                          num_classes: int = 19, ignore_index: int = IGNORE_INDEX) -> dict:
    """Scores of ``segmenter`` on ``images`` (key = relative path without extension -> (3, H, W) uint8)
    against the label maps in ``label_dir`` with the same keys. Returns
    :func:`~sesim.metrics.layout.segmentation_scores` plus ``images`` (count)."""
    from ..data.images import list_images

    label_dir = Path(label_dir)
    labels = {str(p.relative_to(label_dir).with_suffix("")): p for p in list_images(label_dir)}
    missing = [k for k in images if k not in labels]
    if missing:
        raise ValueError(f"no label map in {label_dir} for {len(missing)} image(s), e.g. {missing[:3]} "
                         "(labels are matched by relative path without extension)")
    conf = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for key, img in images.items():
        lab = np.asarray(Image.open(labels[key]))
        if lab.ndim != 2:
            raise ValueError(f"label map {labels[key]} must be single-channel class ids, got shape {lab.shape}")
        pred = predict_labels(segmenter, img, lab.shape)
        conf += confusion_matrix(pred, lab, num_classes, ignore_index=ignore_index)
    scores = segmentation_scores(conf)
    scores["images"] = len(images)
    return scores
