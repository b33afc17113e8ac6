"""DINO-Struct, and the same measurement on sesim's offline backbone: how far a translation's
layout is from its source's, as the mean squared difference of two self-similarity matrices.

For each (source, translation) pair of the same size:

1. the image is resized so that its shorter side is 224 px (``torchvision.transforms.Resize(224)``
   on the PIL image: bilinear, antialiased), scaled to ``[0, 1]``;
2. features: one vector per token / position -> ``(T, D)``;
3. ``S = cos(f_i, f_j)`` for all pairs -> ``(T, T)`` (norms clamped at 1e-8);
4. ``MSE(S_translation, S_source)`` over the ``T^2`` entries; the metric is the mean over pairs.
   0 = the same structure; lower is better.

* ``dino_struct`` -- **DINO-Struct** as CycleGAN-Turbo (img2img-turbo) computes it, following
  Splice (Tumanyan et al. 2022): ImageNet mean/std normalisation, DINO ViT-B/8
  (:class:`sesim.nets.dino_vit.DinoViT`, weights ``dino_vitbase8_pretrain.pth`` supplied by the
  user), the **keys of the last block's attention**, all tokens including CLS (T = 1 + 28 x 28 for
  a square image). Raw MSE (no x100): check a paper's scale before comparing numbers.
* ``struct_<backbone>`` (e.g. ``struct_effnet``) -- the same steps on sesim's structure backbone
  (:mod:`sesim.nets.backbones`; ImageNet EfficientNet-Lite0 works offline), with the feature map of
  the backbone's deepest default layer (stride 8: 28 x 28 positions at 224 px) in place of the
  keys. A different network: **not comparable to DINO-Struct** (hence the other name), only
  between runs scored with the same backbone.

Both sit next to ``selfsim`` (:func:`sesim.metrics.single_image.self_similarity_distance`), sesim's
own FSeSim distance (local windows, ``1 - cos`` of self-similarity maps, images at their own size).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..nets.vgg import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["SelfSimilarityMSE", "cosine_self_similarity", "dino_struct_metric", "backbone_struct_metric",
           "resize_short_side", "DINO_SIDE"]

DINO_SIDE = 224


def resize_short_side(image: torch.Tensor, side: int = DINO_SIDE) -> torch.Tensor:
    """``(3, H, W)`` uint8 -> ``(1, 3, h, w)`` float in ``[0, 1]`` with ``min(h, w) = side`` (torchvision's
    ``Resize(side)`` on the PIL image, as the reference code)."""
    from torchvision.transforms import functional as TF

    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) uint8 image, got {image.dtype} {tuple(image.shape)}")
    pil = TF.resize(Image.fromarray(image.permute(1, 2, 0).numpy()), side)
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def cosine_self_similarity(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(T, D)`` -> ``(T, T)`` cosine similarities (the product of norms clamped at ``eps``)."""
    norms = features.norm(dim=1, keepdim=True)
    return (features @ features.T) / (norms @ norms.T).clamp_min(eps)


class SelfSimilarityMSE:
    """A structure distance (module doc): ``distance(source, translation)`` for ``(3, H, W)`` uint8 images.

    ``features``: ``(1, 3, h, w)`` float in ``[0, 1]`` (after the short-side resize) -> ``(T, D)``.
    ``name`` is the metric's output name, ``description`` its network/weights/layer for reports,
    ``weights_file`` the loaded file (or ``None``).
    """

    def __init__(self, name: str, description: str, features: Callable[[torch.Tensor], torch.Tensor], *,
                 weights_file: str | os.PathLike | None = None, side: int = DINO_SIDE) -> None:
        self.name, self.description, self.features = name, description, features
        self.weights_file = None if weights_file is None else str(weights_file)
        self.side = side

    @torch.no_grad()
    def distance(self, source: torch.Tensor, translation: torch.Tensor) -> float:
        if source.shape != translation.shape:
            raise ValueError(f"source and translation sizes differ: {tuple(source.shape)} vs {tuple(translation.shape)}")
        a = cosine_self_similarity(self.features(resize_short_side(source, self.side)).double())
        b = cosine_self_similarity(self.features(resize_short_side(translation, self.side)).double())
        return float(((b - a) ** 2).mean())


def dino_struct_metric(weights: str | os.PathLike | torch.nn.Module | None = "auto",
                       device: str | torch.device = "cpu") -> SelfSimilarityMSE:
    """DINO-Struct with DINO ViT-B/8 from ``weights`` (a path, ``"auto"`` to find
    ``dino_vitbase8_pretrain.pth``, or a built :class:`~sesim.nets.dino_vit.DinoViT`, e.g. a small
    random one in tests). Raises ``WeightsNotFoundError`` naming the file when it is absent."""
    from ..nets.dino_vit import DINO_VITB8_FILE, DinoViT

    net = weights if isinstance(weights, torch.nn.Module) else DinoViT(weights)
    net = net.to(device).eval()
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def features(x: torch.Tensor) -> torch.Tensor:
        return net.last_keys((x.to(device) - mean) / std)[0]

    source = getattr(net, "weights_source", "given")
    title = f"DINO ViT-B/8 ({DINO_VITB8_FILE})" if source not in ("random", "given") else f"DINO-layout ViT ({source} weights)"
    desc = (f"{title}: last-block attention keys, all tokens incl. CLS, cosine self-similarity, MSE; shorter side "
            f"{DINO_SIDE} px (PIL bilinear), ImageNet mean/std; file {source}")
    return SelfSimilarityMSE("dino_struct", desc, features, weights_file=getattr(net, "weights_file", None))


def backbone_struct_metric(backbone: str = "auto", weights: str | os.PathLike | None = "auto", *,
                           layer: str | None = None, device: str | torch.device = "cpu") -> SelfSimilarityMSE:
    """The DINO-Struct measurement on a sesim backbone (default: the automatic offline choice) at
    ``layer`` (default: its deepest default structure layer, stride 8). Named ``struct_<tag>``."""
    from ..nets.backbones import build_backbone, default_layers, describe_backbone, resolve_backbone

    choice = resolve_backbone(backbone, weights)
    layer = layer or default_layers(choice.name)[-1]
    net = build_backbone(choice.name, (layer,), choice.weights).to(device).eval()

    def features(x: torch.Tensor) -> torch.Tensor:
        fmap = net(x.to(device) * 2.0 - 1.0)[layer][0]  # backbones take [-1, 1] and normalise inside
        return fmap.flatten(1).T

    tag = {"efficientnet-lite0": "effnet"}.get(choice.name, choice.name)
    desc = (f"{describe_backbone(net)} {layer} feature map, all positions, cosine self-similarity, MSE; shorter side "
            f"{DINO_SIDE} px (PIL bilinear); the DINO-Struct measurement on another network: NOT comparable to "
            "dino_struct")
    return SelfSimilarityMSE(f"struct_{tag}", desc, features, weights_file=getattr(net, "weights_file", None))
