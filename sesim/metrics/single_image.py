"""Metrics of single-image translation (thesis Sec. 4.4.11, paper Sec. 4.3).

- :func:`sifid` -- Single-Image FID (SinGAN, Shaham et al. 2019): the Frechet distance between the
  Gaussians fitted to the *spatial* feature vectors of one real and one generated image (every
  position of the feature map is a sample). SinGAN uses the FID Inception-v3 up to its first
  max-pool (64 channels): :func:`sifid_inception_extractor`, which needs the pytorch-fid weights
  file. The extractor is a parameter; :func:`random_feature_extractor` gives a fixed random-init
  CNN for machines without those weights (values are then *not* comparable to published SIFID).
  Low = the translation's local feature statistics match the target's (realism / appearance).
- :func:`self_similarity_distance` -- the structure-preservation score: the spatially-correlative
  (FSeSim) distance between the self-similarity maps of the source and its translation, computed
  with :class:`sesim.losses.spatial.SpatialCorrelativeLoss` (grid queries, deterministic) on a
  pretrained backbone (:func:`selfsim_metric_loss`). Low = the translation keeps the source's structure.

Images are ``(C, H, W)`` or ``(1, C, H, W)`` tensors in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..ops.selfsim import PAPER_PATCH_SIZE
from .frechet import frechet_distance

__all__ = ["sifid", "self_similarity_distance", "selfsim_metric_loss", "sifid_inception_extractor",
           "random_feature_extractor", "spatial_features"]

Extractor = Callable[[Tensor], Tensor | dict[str, Tensor]]


def _batch(image: Tensor, name: str) -> Tensor:
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"{name}: expected one image (C, H, W) or (1, C, H, W), got {tuple(image.shape)}")
    return image.float()


def spatial_features(image: Tensor, extractor: Extractor) -> Tensor:
    """``(h * w, D)``: one feature vector per position of ``extractor(image)``.

    The extractor returns ``(1, D, h, w)`` or a dict of such maps; for a dict the *last* entry is
    used (the deepest layer of an ordered extractor).
    """
    with torch.no_grad():
        out = extractor(_batch(image, "image"))
    if isinstance(out, dict):
        if not out:
            raise ValueError("extractor returned no features")
        out = list(out.values())[-1]
    if out.dim() != 4:
        raise ValueError(f"extractor must return (1, D, h, w) feature maps, got {tuple(out.shape)}")
    return out[0].flatten(1).T


def sifid(real: Tensor, fake: Tensor, extractor: Extractor) -> float:
    """Single-image FID between one real and one fake image (any sizes; >= 2 feature positions each).

    Args:
        real, fake: ``(C, H, W)`` or ``(1, C, H, W)`` in [-1, 1].
        extractor: image batch -> ``(1, D, h, w)`` feature map (or a dict of them, last used), e.g.
            :func:`sifid_inception_extractor` (SinGAN's choice) or :func:`random_feature_extractor`.

    Returns:
        The Frechet distance between the Gaussians of the two sets of spatial feature vectors; 0 for
        an image with itself.
    """
    return frechet_distance(spatial_features(real, extractor), spatial_features(fake, extractor))


def selfsim_metric_loss(backbone: str = "auto", weights: str | None = "auto") -> nn.Module:
    """The metric's FSeSim: the backbone's default layers (VGG16 relu3_1 + relu4_1, or EfficientNet-Lite0
    stage2 + stage3 when VGG16 is not on the machine; see :mod:`sesim.nets.backbones`), cosine
    distance, local 32-position windows, 256 queries on a regular grid (deterministic). Values are
    only comparable between runs of the same backbone: its name is in ``.extractor.name``."""
    from ..losses.spatial import SpatialCorrelativeLoss

    return SpatialCorrelativeLoss(backbone=backbone, weights=weights, sampling="grid", num_queries=256,
                                  patch_size=PAPER_PATCH_SIZE).eval()


def self_similarity_distance(source: Tensor, translation: Tensor, loss: nn.Module | None = None) -> float:
    """Mean spatially-correlative distance between the self-similarity maps of source and translation.

    Args:
        source, translation: ``(C, H, W)`` or ``(1, C, H, W)`` in [-1, 1], the same size.
        loss: a :class:`~sesim.losses.spatial.SpatialCorrelativeLoss` (called as ``loss(source,
            translation)``). Default: :func:`selfsim_metric_loss` (pretrained, deterministic); build it
            once and pass it when scoring many images.

    Returns:
        The distance (``1 - cos`` averaged over queries and layers: 0 = identical structure).
    """
    x, y = _batch(source, "source"), _batch(translation, "translation")
    if x.shape != y.shape:
        raise ValueError(f"source and translation sizes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if loss is None:
        loss = selfsim_metric_loss()
    device = next(loss.parameters(), torch.empty(0)).device
    with torch.no_grad():
        return float(loss(x.to(device), y.to(device)))


class _RGBFeatures(nn.Sequential):
    """Frozen layers in eval mode on ``(1, 3, H, W)`` in [-1, 1]; a 1-channel image is repeated to 3."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return super().forward(x)


def sifid_inception_extractor(weights: str | None = "auto") -> nn.Module:
    """SinGAN's SIFID features: FID Inception-v3 through ``maxpool1`` (64 channels), no resizing:
    ``(1, 3, H, W)`` in [-1, 1] -> ``(1, 64, h, w)``.

    ``weights``: as :class:`sesim.nets.inception.FIDInceptionV3` (``"auto"`` looks for the
    pytorch-fid file and raises ``WeightsNotFoundError`` naming it and where to put it).
    """
    from ..nets.inception import FIDInceptionV3

    net = FIDInceptionV3(weights=weights)
    block = _RGBFeatures(*list(net.stem.children())[:4])
    block.weights_source = net.weights_source
    return block.eval().requires_grad_(False)


def random_feature_extractor(seed: int = 0, channels: int = 64) -> nn.Module:
    """A fixed random-init 2-layer CNN (He init from ``seed``): ``(1, 3, H, W)`` -> ``(1, channels, H/2, W/2)``:
    conv3x3(3 -> channels/2) -> ReLU -> conv3x3 stride 2 -> ReLU.

    A stand-in for SinGAN's Inception block when its weights are unavailable: it measures
    local colour/texture statistics; numbers are only comparable with the same seed and channels.
    """
    gen = torch.Generator().manual_seed(seed)
    convs = [nn.Conv2d(3, channels // 2, 3, padding=1), nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1)]
    for conv in convs:
        fan_in = conv.weight[0].numel()
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            conv.bias.zero_()
    return _RGBFeatures(convs[0], nn.ReLU(), convs[1], nn.ReLU()).eval().requires_grad_(False)
