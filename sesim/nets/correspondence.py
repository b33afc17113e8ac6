"""MCL-Net's correspondence network (Zhan et al., CVPR 2022, Sec. 3.1-3.3).

Two encoders map the conditional input ``X`` (``E_X``) and a photo — the exemplar ``Z`` or the
ground truth ``Y`` — (``E_Z``) to feature maps at ``1 / 4`` of their input size (64 x 64 for the
paper's 256 px; 16 x 16 at 64 px). Each location's *descriptor* is its feature, optionally
followed by an embedding of its **self-correlation map** (SCM, Eq. 2): the cosine of that
location's feature with every location of the same map (``h * w`` values, the global
self-similarity of the structure loss's ``sesim.ops.selfsim``), flattened and reduced by one linear
layer to ``scm_dim`` (256 in the paper). The SCM describes *where the things that look like this
location are*, i.e. the shape of the region it belongs to, not its appearance, so it helps match
regions across domains. One linear layer serves both encoders (the map is domain-free by design).
Feature and SCM embedding are L2-normalised separately before they are joined, so that each
counts equally in the cosine.

The correspondence is the cosine similarity of every input descriptor with every exemplar
descriptor, ``S`` ``(N, L, L)``; ``T = softmax(S / tau)`` over the exemplar's locations (a low
``tau`` makes it nearly a hard match). The exemplar pooled to the descriptor grid is warped as
``T Z`` (each input location takes the ``T``-weighted colour of the exemplar); the reverse
correspondence ``T' = softmax(S^T / tau)`` (each exemplar location over the input's) maps it
back, ``T' T Z``, for the cycle term (Eq. 4).

Inputs are images in [-1, 1]; the descriptor grid is fixed by the ``grid`` size the network is
built for (the training size): inputs of another size are resized to ``grid x grid`` first, so
the SCM's linear layer always sees ``(grid / 4)**2`` values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeatureEncoder", "SelfCorrelationEmbedding", "CorrespondenceNet", "Correspondence",
           "self_correlation"]

#: the descriptors are at 1 / CORRESPONDENCE_STRIDE of the (resized) input
CORRESPONDENCE_STRIDE = 4


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        return x + self.norm2(self.conv2(y))


class FeatureEncoder(nn.Module):
    """``(N, C_in, H, W)`` -> ``(N, channels, H / 4, W / 4)``: a 3x3 conv, two stride-2 convs,
    ``n_res`` residual blocks (instance norm, leaky ReLU) and a 1x1 projection (no activation)."""

    def __init__(self, in_channels: int, channels: int = 64, n_res: int = 2) -> None:
        super().__init__()
        half = max(channels // 2, 1)
        self.conv_in = nn.Conv2d(in_channels, half, 3, padding=1, padding_mode="reflect")
        self.down1 = nn.Conv2d(half, channels, 4, stride=2, padding=1)
        self.down2 = nn.Conv2d(channels, channels, 4, stride=2, padding=1)
        self.norm_in = nn.InstanceNorm2d(half, affine=True)
        self.norm1 = nn.InstanceNorm2d(channels, affine=True)
        self.norm2 = nn.InstanceNorm2d(channels, affine=True)
        self.res = nn.Sequential(*(_ResBlock(channels) for _ in range(n_res)))
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.norm_in(self.conv_in(x)), 0.2)
        x = F.leaky_relu(self.norm1(self.down1(x)), 0.2)
        x = F.leaky_relu(self.norm2(self.down2(x)), 0.2)
        return self.project(self.res(x))


def self_correlation(features: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``(N, C, h, w)`` -> ``(N, h*w, h*w)``; row ``i`` holds the cosines of location ``i``'s
    feature with every location (row-major), values in [-1, 1], 1 on the diagonal.

    The same numbers as :func:`sesim.ops.selfsim.self_similarity` with every location as a query and
    no window (tested), written with plain tensor operations because that op's custom autograd
    functions cannot be traced for ``sesim export``."""
    f = F.normalize(features.flatten(2), dim=1, eps=1e-8)  # (N, C, L)
    return torch.bmm(f.transpose(1, 2), f)


class SelfCorrelationEmbedding(nn.Module):
    """``(N, C, h, w)`` features -> ``(N, dim, h, w)``: each location's self-correlation map
    (``h * w`` values) through one linear layer (``h * w -> dim``)."""

    def __init__(self, locations: int, dim: int = 256) -> None:
        super().__init__()
        self.locations = locations
        self.linear = nn.Linear(locations, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, _, h, w = features.shape
        if h * w != self.locations:
            raise ValueError(f"self-correlation embedding built for {self.locations} locations, got {h}x{w}")
        scm = self_correlation(features)  # (N, L, L)
        return self.linear(scm).transpose(1, 2).reshape(n, -1, h, w)


@dataclass
class Correspondence:
    """One input/exemplar correspondence (``L = h * w`` descriptor locations).

    ``features_x`` / ``features_z``: ``(N, C, h, w)`` encoder outputs; ``descriptors_x`` /
    ``descriptors_z``: ``(N, D, h, w)`` what is matched (features, plus the SCM embedding);
    ``similarity``: ``(N, L, L)`` cosines ``S``, row = input location, column = exemplar location;
    ``exemplar``: ``(N, C_img, h, w)`` the exemplar pooled to the grid; ``warped``: ``T Z``, same
    shape; ``cycled``: ``T' T Z``, same shape (only with ``cycle=True``).
    """

    features_x: torch.Tensor
    features_z: torch.Tensor
    descriptors_x: torch.Tensor
    descriptors_z: torch.Tensor
    similarity: torch.Tensor
    exemplar: torch.Tensor
    warped: torch.Tensor
    cycled: torch.Tensor | None = None

    def weights(self, temperature: float) -> torch.Tensor:
        """``T``: ``(N, L, L)``, each row a distribution over the exemplar's locations."""
        return F.softmax(self.similarity / temperature, dim=2)


class CorrespondenceNet(nn.Module):
    """``E_X``, ``E_Z``, the optional SCM embedding, and the soft warp of the exemplar (module doc).

    Args:
        condition_channels, image_channels: channels of ``X`` and of ``Y`` / ``Z``.
        grid: the side in pixels that inputs are resized to (the training size, a multiple of 4).
        channels: encoder feature channels.
        scm: append the self-correlation embedding to each descriptor.
        scm_dim: its size (256 in the paper).
        temperature: ``tau`` of the correspondence softmax.
    """

    def __init__(self, condition_channels: int, image_channels: int, *, grid: int, channels: int = 64,
                 scm: bool = True, scm_dim: int = 256, temperature: float = 0.01) -> None:
        super().__init__()
        if grid % CORRESPONDENCE_STRIDE:
            raise ValueError(f"grid {grid} must be a multiple of {CORRESPONDENCE_STRIDE}")
        self.grid, self.temperature = grid, temperature
        self.encode_condition = FeatureEncoder(condition_channels, channels)  # E_X
        self.encode_image = FeatureEncoder(image_channels, channels)  # E_Z (exemplar and ground truth)
        side = grid // CORRESPONDENCE_STRIDE  # of the descriptor grid
        self.scm = SelfCorrelationEmbedding(side * side, scm_dim) if scm else None

    def fit(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` resized to ``grid x grid`` (bilinear, antialiased: exact for that size, a
        plain bilinear upsampling for smaller images; one code path, so that a traced export agrees)."""
        return F.interpolate(images, size=(self.grid, self.grid), mode="bilinear", align_corners=False,
                             antialias=True)

    def describe(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(N, C, h, w)`` -> descriptors: the L2-normalised feature, joined with the
        L2-normalised SCM embedding when enabled."""
        parts = [F.normalize(features, dim=1, eps=1e-8)]
        if self.scm is not None:
            parts.append(F.normalize(self.scm(features), dim=1, eps=1e-8))
        return torch.cat(parts, dim=1)

    def encode(self, images: torch.Tensor, *, condition: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, descriptors)`` of conditions (``E_X``) or photos (``E_Z``), inputs resized to the grid."""
        encoder = self.encode_condition if condition else self.encode_image
        features = encoder(self.fit(images))
        return features, self.describe(features)

    def forward(self, condition: torch.Tensor, exemplar: torch.Tensor, *, cycle: bool = False) -> Correspondence:
        """Match ``condition`` ``(N, C_x, H, W)`` with ``exemplar`` ``(N, C_img, H', W')`` (both in
        [-1, 1], any sizes) and warp the exemplar onto the condition's descriptor grid."""
        fx, dx = self.encode(condition, condition=True)
        fz, dz = self.encode(exemplar, condition=False)
        n, _, h, w = dx.shape
        sim = torch.bmm(F.normalize(dx.flatten(2), dim=1).transpose(1, 2), F.normalize(dz.flatten(2), dim=1))
        small = F.avg_pool2d(self.fit(exemplar), CORRESPONDENCE_STRIDE)  # (N, C_img, h, w)
        flat = small.flatten(2)  # (N, C_img, L)
        warped = torch.bmm(flat, F.softmax(sim / self.temperature, dim=2).transpose(1, 2))
        cycled = None
        if cycle:
            back = F.softmax(sim.transpose(1, 2) / self.temperature, dim=2)  # T': exemplar over input locations
            cycled = torch.bmm(warped, back.transpose(1, 2)).view_as(small)
        return Correspondence(fx, fz, dx, dz, sim, small, warped.view(n, -1, h, w), cycled)
