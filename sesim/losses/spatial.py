"""The spatially-correlative loss: FSeSim (fixed features) and LSeSim (learned structure heads).

Three lines from any training loop::

    from sesim import SpatialCorrelativeLoss
    structure = SpatialCorrelativeLoss().to(device)          # FSeSim, paper settings, pretrained features
    loss_g = loss_g + 10.0 * structure(real_a, fake_b)       # images in [-1, 1]

LSeSim adds a learned head per layer, trained with its own optimiser step::

    structure = SpatialCorrelativeLoss(learned=True).to(device)
    opt_head = torch.optim.Adam(structure.head_parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_head.zero_grad(); structure.contrastive_loss(real_a, augment(real_a), other).backward(); opt_head.step()
    loss_g = gan_term + 10.0 * structure(real_a, fake_b)     # uses the heads, never updates them

Defaults follow the paper (Sec. 3-4.1, App. B.1): VGG16 ``relu3_1`` and ``relu4_1``, 256 random
queries, 32 x 32 local windows, L2-normalised features (cosine self-similarity), cosine map
distance, InfoNCE temperature 0.07. The public code's settings are available as options (see
``PUBLIC_CODE_SETTINGS``): ``relu3_1, relu4_1, relu4_3``, global maps (its patch size 64 is never
smaller than the feature maps at 256 px), mean-centred ``tanh`` similarity, cosine of the maps
masked by the translation's top quarter, SmoothL1 on ``1 - cos``.

The feature network is chosen by :mod:`sesim.nets.backbones`: by default ImageNet VGG16 when its
file is on the machine, else the ImageNet EfficientNet-Lite0 that installs with sesim (its layers
at the same strides, ``stage2`` + ``stage3``), announced in one line; never random unless asked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.backbones import build_backbone
from ..nets.vgg import VGG16_DEFAULT_LAYERS
from ..ops import check_choice
from ..ops.infonce import patch_infonce
from ..ops.selfsim import (
    DISTANCES,
    NORMS,
    PAPER_PATCH_SIZE,
    SAMPLINGS,
    map_distance,
    sample_queries,
    self_similarity,
    window_index,
)

PAPER_SETTINGS: dict = dict(backbone="vgg16", layers=VGG16_DEFAULT_LAYERS, patch_size=PAPER_PATCH_SIZE, norm="l2",
                            distance="cos", mask_keep=None, smooth_l1=False)
#: The released script's loss (``scripts/train_sc.sh``: cos, patch 64, no ``--use_norm``). Its value and its
#: gradient into the translation agree with the authors' ``Spatial_Loss`` to float rounding on identical
#: features, weights and queries (``python bench/reference_parity.py``; ``tests/test_public_code_loss.py``).
PUBLIC_CODE_SETTINGS: dict = dict(
    backbone="vgg16", layers=("relu3_1", "relu4_1", "relu4_3"), patch_size=None, norm="tanh", distance="cos",
    mask_keep=0.25, mask_from="target", smooth_l1=True,
)


@contextmanager
def _frozen(module: nn.Module):
    """Build the autograd graph with ``module``'s parameters as constants (no gradients for them)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Features(dict):
    """The feature network's activations of one batch of images: ``layer -> (N, C_l, H_l, W_l)``.

    :meth:`SpatialCorrelativeLoss.features` returns them; :meth:`SpatialCorrelativeLoss.forward`
    and :meth:`SpatialCorrelativeLoss.contrastive_loss` accept them wherever they take images, so
    a training step runs the feature network once per image (e.g. the translation's features serve
    the heads' step detached and the generator's loss with their graph).
    """

    def detach(self) -> "Features":
        return Features({name: f.detach() for name, f in self.items()})

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(f.shape) for name, f in self.items()}


def _shape(t: torch.Tensor | Features) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    """An image batch's shape, or its features' shapes by layer (compared only with their own kind)."""
    return t.shapes() if isinstance(t, Features) else tuple(t.shape)


class StructureHead(nn.Module):
    """LSeSim's learned structure head for one layer: 1x1 conv -> ReLU -> 1x1 conv.

    ``(N, C, H, W) -> (N, D, H, W)`` with ``D = max(32, C // 4)`` unless given. Weights start as
    N(0, 0.02) like the public code. ``forward(f, frozen=True)`` runs with detached weights, so a
    loss computed through it can never update the head.
    """

    def __init__(self, in_channels: int, channels: int | None = None) -> None:
        super().__init__()
        channels = channels or max(32, in_channels // 4)
        self.reduce = nn.Conv2d(in_channels, channels, kernel_size=1)
        self.project = nn.Conv2d(channels, channels, kernel_size=1)
        for conv in (self.reduce, self.project):
            nn.init.normal_(conv.weight, 0.0, 0.02)
            nn.init.zeros_(conv.bias)

    def forward(self, f: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        if not frozen:
            return self.project(F.relu(self.reduce(f)))
        h = F.conv2d(f, self.reduce.weight.detach(), self.reduce.bias.detach())
        return F.conv2d(F.relu(h), self.project.weight.detach(), self.project.bias.detach())


@dataclass
class LayerMaps:
    """Self-similarity maps of one layer for a batch of images.

    ``maps``: ``(N, N_s, N_p)``; ``queries``: ``(N_s,)`` flat indices ``r * width + c`` in the
    ``height x width`` feature map; ``window``: ``(N_s, N_p)`` flat indices of each query's
    window, or ``None`` for the global map (``N_p = height * width``).
    """

    maps: torch.Tensor
    queries: torch.Tensor
    window: torch.Tensor | None
    height: int
    width: int


@dataclass
class SeSimOutput:
    """Everything the loss computed: ``loss`` (scalar), ``per_query`` layer -> ``(N, N_s)``
    distances, and the maps of the source (``maps_x``) and translation (``maps_y``)."""

    loss: torch.Tensor
    per_query: dict[str, torch.Tensor] = field(default_factory=dict)
    maps_x: dict[str, LayerMaps] = field(default_factory=dict)
    maps_y: dict[str, LayerMaps] = field(default_factory=dict)


class SpatialCorrelativeLoss(nn.Module):
    """F/LSeSim structure loss between a source image batch and its translation.

    Args:
        layers: feature layers by name, a tuple or ``"a,b"``; ``None`` = the backbone's defaults
            (VGG16 ``relu3_1, relu4_1``; EfficientNet-Lite0 ``stage2, stage3``, the same strides).
        backbone: ``"auto"`` (ImageNet VGG16 if its file is found, else ImageNet EfficientNet-Lite0,
            with a notice), ``"vgg16"`` or ``"efficientnet-lite0"`` (see :mod:`sesim.nets.backbones`).
        weights: ``"auto"``, ``"imagenet"``, a state-dict path, or ``"random"`` / ``None`` (random
            init, warned: a test fixture). Ignored when ``extractor`` is given.
        extractor: optional feature network used instead of a named backbone: an ``nn.Module``
            mapping ``(N, C, H, W)`` images in [-1, 1] to a dict of features, with an
            ``out_channels`` dict attribute (layer -> channels). Its parameters are frozen.
        num_queries: ``N_s`` query locations per layer (``<= 0``: every location).
        sampling: ``"random"`` (paper; redrawn on every call) or ``"grid"``.
        patch_size: local window side ``P`` in feature positions; ``None`` = global maps.
        keys: ``"window"`` (the paper: each query against its local window / the whole map) or
            ``"sampled"`` (ablation row A, STROTSS-like: the sampled locations against each other,
            an ``N_s x N_s`` map with no spatial neighbourhood).
        norm: feature normalisation, ``"l2"`` (paper), ``"centered_l2"`` or ``"tanh"`` (public code).
        distance: ``"cos"`` (``1 - cos``, paper default) or ``"l1"``.
        mask_keep, mask_from: the public code's masked comparison (see :func:`map_distance`; the
            public code masks with the translation's map, ``mask_from="target"``).
        smooth_l1: the public code's SmoothL1 criterion on the map distance (see :func:`map_distance`).
        learned: LSeSim: add a :class:`StructureHead` per layer.
        train_backbone: LSeSim only: also train the feature network with the InfoNCE objective (the
            paper says LSeSim's VGG "weights are not fixed"; the public code puts VGG in the head
            optimiser with learning rate 0, i.e. frozen, which is the default here).
        head_channels: output channels of the heads (default ``max(32, C // 4)``).
        temperature: InfoNCE temperature ``tau`` (0.07).
        tanh_scale: divisor inside ``tanh`` for ``norm="tanh"``.
        positive_vs_other: add the public code's extra InfoNCE negatives (augmented image vs other).

    Inputs to :meth:`forward` are ``(N, C, H, W)`` images in [-1, 1] (the generator's tanh range),
    ``C`` = 3 or 1. The same query locations (sampled once per call and layer) are used for the
    whole batch and for both images. Gradients flow into ``y`` only: ``x`` is processed without
    autograd, and the feature network and heads are frozen inside :meth:`forward`.
    """

    def __init__(
        self,
        layers: Sequence[str] | str | None = None,
        *,
        backbone: str = "auto",
        weights: str | os.PathLike | None = "auto",
        extractor: nn.Module | None = None,
        num_queries: int = 256,
        sampling: str = "random",
        patch_size: int | None = PAPER_PATCH_SIZE,
        keys: str = "window",
        norm: str = "l2",
        distance: str = "cos",
        mask_keep: float | None = None,
        mask_from: str = "source",
        smooth_l1: bool = False,
        learned: bool = False,
        head_channels: int | None = None,
        temperature: float = 0.07,
        tanh_scale: float = 10.0,
        positive_vs_other: bool = False,
        train_backbone: bool = False,
    ) -> None:
        super().__init__()
        check_choice("sampling", sampling, SAMPLINGS)
        check_choice("norm", norm, NORMS)
        check_choice("distance", distance, DISTANCES)
        check_choice("mask_from", mask_from, ("source", "target"))
        check_choice("keys", keys, ("window", "sampled"))
        if patch_size is not None and patch_size < 1:
            raise ValueError("patch_size must be >= 1 (or None for global maps)")
        if mask_keep is not None and not 0 < mask_keep <= 1:
            raise ValueError("mask_keep must be in (0, 1]")
        if isinstance(layers, str):
            layers = [name.strip() for name in layers.split(",") if name.strip()]
        if extractor is None:
            extractor = build_backbone(backbone, layers, weights)
        self.extractor = extractor
        self.layers: tuple[str, ...] = tuple(layers or getattr(extractor, "layers", None) or extractor.out_channels)
        missing = [name for name in self.layers if name not in extractor.out_channels]
        if missing:
            raise ValueError(f"extractor does not produce layer(s) {missing}")
        self.num_queries = num_queries
        self.sampling = sampling
        self.patch_size = patch_size
        self.keys = keys
        self.norm = norm
        self.distance = distance
        self.mask_keep = mask_keep
        self.mask_from = mask_from
        self.smooth_l1 = smooth_l1
        self.temperature = temperature
        self.tanh_scale = tanh_scale
        self.positive_vs_other = positive_vs_other
        if train_backbone and not learned:
            raise ValueError("train_backbone needs learned=True (LSeSim)")
        self.train_backbone = train_backbone
        self.extractor.requires_grad_(train_backbone)
        self.heads = (
            nn.ModuleDict({name: StructureHead(extractor.out_channels[name], head_channels) for name in self.layers})
            if learned
            else None
        )

    @property
    def learned(self) -> bool:
        return self.heads is not None

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the LSeSim heads (empty for FSeSim); give these to the head optimiser."""
        if self.heads is None:
            return iter(())
        if self.train_backbone:
            return iter([*self.heads.parameters(), *self.extractor.parameters()])
        return self.heads.parameters()

    def train(self, mode: bool = True) -> "SpatialCorrelativeLoss":
        super().train(mode)
        self.extractor.eval()  # the feature network is a fixed instrument, never in training mode
        return self

    # -- building blocks -------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> Features:
        """The feature network's activations of ``(N, C, H, W)`` images in [-1, 1], with its
        parameters frozen; gradients reach ``images`` when they need them (and autograd is on)."""
        with _frozen(self.extractor):
            return Features(self.extractor(images))

    def _extract(self, items: Sequence[torch.Tensor | Features], *, grad: bool = False) -> list[Features]:
        """Features of each item: image tensors go through the feature network in one batch
        (traced only with ``grad``), :class:`Features` are taken as they are."""
        images = [t for t in items if not isinstance(t, Features)]
        parts = iter(())
        if images:
            with torch.set_grad_enabled(grad):
                batch = self.extractor(torch.cat(images)) if len(images) > 1 else self.extractor(images[0])
            sizes = [t.shape[0] for t in images]
            parts = (Features(zip(batch, split)) for split in zip(*(f.split(sizes) for f in batch.values())))
        return [t if isinstance(t, Features) else next(parts) for t in items]

    def structure_features(self, images: torch.Tensor, *, train_heads: bool = False) -> dict[str, torch.Tensor]:
        """Features the maps are computed from: ``layer -> (N, C', H_l, W_l)``.

        FSeSim: the extractor's activations. LSeSim: those passed through the heads, which get
        gradients only when ``train_heads`` is true.
        """
        return self._through_heads(self.extractor(images), train_heads=train_heads)

    def _through_heads(self, feats: Mapping[str, torch.Tensor], *, train_heads: bool = False) -> dict[str, torch.Tensor]:
        if self.heads is None:
            return {name: feats[name] for name in self.layers}
        return {name: self.heads[name](feats[name], frozen=not train_heads) for name in self.layers}

    def _keys(self, queries: torch.Tensor, height: int, width: int) -> torch.Tensor | None:
        if self.keys == "sampled":  # STROTSS-like: the sampled locations against each other
            return queries.unsqueeze(0).expand(queries.numel(), -1)
        return window_index(queries, height, width, self.patch_size)

    def _given_or_sampled(self, queries: Mapping[str, torch.Tensor] | None, name: str, height: int, width: int,
                          device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Layer ``name``'s query locations (from ``queries``, else sampled as in training) and their keys."""
        if queries is not None and name in queries:
            q = queries[name].to(device=device, dtype=torch.long)
        else:
            q = sample_queries(height, width, self.num_queries, self.sampling, device=device)
        return q, self._keys(q, height, width)

    def _maps(self, f: torch.Tensor, queries: torch.Tensor, window: torch.Tensor | None) -> torch.Tensor:
        # Maps and their distances in float32 even under autocast: the loss compares cosines that
        # differ by ~1e-3, below bfloat16's resolution (the features themselves may be bfloat16).
        with torch.autocast(f.device.type, enabled=False):
            return self_similarity(f.float(), queries, window, norm=self.norm, tanh_scale=self.tanh_scale)

    def maps(
        self,
        images: torch.Tensor,
        queries: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, LayerMaps]:
        """Self-similarity maps of ``images`` (for visualisation and inspection; no autograd).

        Args:
            images: ``(N, C, H, W)`` in [-1, 1].
            queries: optional ``layer -> (N_s,)`` flat query indices; sampled as in training if
                omitted.
        """
        with torch.no_grad():
            feats = self.structure_features(images)
            out = {}
            for name, f in feats.items():
                h, w = f.shape[-2:]
                q, win = self._given_or_sampled(queries, name, h, w, f.device)
                out[name] = LayerMaps(self._maps(f, q, win), q, win, h, w)
        return out

    # -- the generator's loss (Eq. 2) --------------------------------------------------------
    def forward(self, x: torch.Tensor | Features, y: torch.Tensor | Features, *, return_details: bool = False,
                source_features: Mapping[str, torch.Tensor] | None = None,
                queries: Mapping[str, torch.Tensor] | None = None):
        """Structure distance between source ``x`` and translation ``y``.

        Args:
            x: ``(N, C, H, W)`` source images in [-1, 1] (no gradient is computed for them), or
                their :class:`Features`.
            y: ``(N, C, H, W)`` translations in [-1, 1], same shape as ``x``, or their
                :class:`Features` from :meth:`features` (gradients then flow through their graph).
            return_details: return a :class:`SeSimOutput` instead of the scalar.
            source_features: the feature extractor's activations of ``x`` (``layer -> (N, C, H_l,
                W_l)``), the same as passing them as ``x`` (kept for older callers).
            queries: optional ``layer -> (N_s,)`` flat query indices used instead of sampling
                (e.g. to compare with another implementation on the same locations).

        Returns:
            Scalar: the mean over layers of the mean per-query distance (not multiplied by
            lambda; the paper uses lambda = 10).
        """
        if source_features is not None:
            x = Features(source_features)
        shape_x, shape_y = _shape(x), _shape(y)
        if type(shape_x) is type(shape_y) and shape_x != shape_y:
            raise ValueError(f"source and translation shapes differ: {shape_x} vs {shape_y}")
        with torch.no_grad():
            fx = self._through_heads(x if isinstance(x, Features) else self.extractor(x))
        fy = self._through_heads(y if isinstance(y, Features) else self.features(y))
        out = SeSimOutput(loss=fy[self.layers[0]].new_zeros(()))
        for name in self.layers:
            h, w = fx[name].shape[-2:]
            q, window = self._given_or_sampled(queries, name, h, w, fy[name].device)
            sx = self._maps(fx[name], q, window)
            sy = self._maps(fy[name], q, window)
            with torch.autocast(sy.device.type, enabled=False):
                dist = map_distance(sx, sy, self.distance, mask_keep=self.mask_keep, mask_from=self.mask_from,
                                    smooth_l1=self.smooth_l1)
            out.loss = out.loss + dist.mean() / len(self.layers)
            if return_details:
                out.per_query[name] = dist
                out.maps_x[name] = LayerMaps(sx, q, window, h, w)
                out.maps_y[name] = LayerMaps(sy, q, window, h, w)
        return out if return_details else out.loss

    # -- LSeSim's head objective (Eq. 3) -----------------------------------------------------
    def contrastive_loss(
        self,
        x: torch.Tensor | Features,
        x_aug: torch.Tensor | Features | Sequence[torch.Tensor | Features],
        other: torch.Tensor | Features | Sequence[torch.Tensor | Features | None] | None = None,
        *,
        return_per_query: bool = False,
        return_source_features: bool = False,
        queries: Mapping[str, torch.Tensor] | None = None,
    ):
        """Patch-wise InfoNCE that trains the structure heads (only they receive gradients).

        Args:
            x: ``(N, C, H, W)`` images in [-1, 1], or their :class:`Features`.
            x_aug: the same images after a structure-preserving augmentation (colour jitter...), or
                a list of such positives, each making a pair with ``x``.
            other: ``(N, C, H, W)`` different images whose maps serve as extra negatives, or None;
                with a list of positives, one per pair (a single one serves every pair).
            return_source_features: also return the extractor's activations of ``x`` (detached),
                for :meth:`forward` in the same step; ``None`` when the backbone is trained (this
                step changes it, so they would be stale).
            queries: optional ``layer -> (N_s,)`` flat query indices used instead of sampling.

        Every distinct image goes through the feature network once (one batch) and the heads once;
        all pairs share the query locations of a layer. The loss is the mean over pairs, which is
        the public code's loss on its stacked batch (``--augment``: source twice; translation and
        augmented source as positives; flipped target and flipped augmented target as others).

        Returns:
            Scalar mean InfoNCE over layers, or ``layer -> (N, N_s)`` per-query losses (mean over
            pairs); with ``return_source_features``, a pair ``(that, Features or None)``.
        """
        if self.heads is None:
            raise RuntimeError("contrastive_loss needs learned structure heads: SpatialCorrelativeLoss(learned=True)")
        positives = list(x_aug) if isinstance(x_aug, (list, tuple)) else [x_aug]
        others = list(other) if isinstance(other, (list, tuple)) else [other] * len(positives)
        if len(others) != len(positives):
            raise ValueError(f"{len(positives)} positives but {len(others)} other images: give one per pair")
        unique: list[torch.Tensor | Features] = []  # each distinct image or feature set once
        for t in (x, *positives, *others):
            if t is not None and all(t is not u for u in unique):
                unique.append(t)
        shapes = [_shape(t) for t in unique]
        if any(type(a) is type(shapes[0]) and a != shapes[0] for a in shapes):
            raise ValueError("x, x_aug and other must have the same shape")
        # a frozen feature network need not be traced; features given are used detached (heads only learn here)
        feats = [f.detach() if isinstance(u, Features) else f
                 for u, f in zip(unique, self._extract(unique, grad=self.train_backbone))]
        slot = lambda t: next(i for i, u in enumerate(unique) if u is t)  # noqa: E731
        total, per_query = None, {}
        n = feats[0][self.layers[0]].shape[0]
        for name in self.layers:
            f = self.heads[name](torch.cat([fs[name] for fs in feats]))
            h, w = f.shape[-2:]
            q, window = self._given_or_sampled(queries, name, h, w, f.device)
            maps = self._maps(f, q, window).split(n)
            with torch.autocast(f.device.type, enabled=False):
                losses = [patch_infonce(maps[0], maps[slot(p)], None if o is None else maps[slot(o)],
                                        temperature=self.temperature, positive_vs_other=self.positive_vs_other)
                          for p, o in zip(positives, others)]
            per_query[name] = losses[0] if len(losses) == 1 else torch.stack(losses).mean(0)
            term = per_query[name].mean() / len(self.layers)
            total = term if total is None else total + term
        result = per_query if return_per_query else total
        if not return_source_features:
            return result
        source = None if self.train_backbone else Features({name: feats[0][name].detach() for name in self.layers})
        return result, source
