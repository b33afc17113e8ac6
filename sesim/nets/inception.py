"""The FID Inception-v3: the network behind published FID and KID numbers, with its weights loaded
from a local file in the format of **pytorch-fid**.

Why pytorch-fid's format (and not torch-fidelity's): pytorch-fid is what most image-translation
papers (CycleGAN/CUT/F-LSeSim code bases included) report FID with; its checkpoint
``pt_inception-2015-12-05-6726825d.pth`` is a plain ``state_dict`` of torchvision's Inception-v3
layout (1008 classes, no auxiliary head) ported from TensorFlow's 2015-12-05 graph, so the network
can be rebuilt from torchvision's blocks and checked key by key. torch-fidelity ports the same
TensorFlow graph but in its own module layout and key names, so its file cannot be loaded here.

Architecture (built here, not downloaded): ``torchvision.models.inception_v3(weights=None,
aux_logits=False, init_weights=False, num_classes=1008)`` with the blocks that differ in the
TensorFlow graph replaced:

* ``Mixed_5b/5c/5d`` (InceptionA), ``Mixed_6b..6e`` (InceptionC) and ``Mixed_7b`` (InceptionE):
  the 3x3 average pool of the pooling branch ignores the zero padding
  (``count_include_pad=False``), as TensorFlow's does;
* ``Mixed_7c`` (InceptionE): the pooling branch uses a 3x3 **max** pool (stride 1, padding 1).

Input pipeline (as pytorch-fid): images are ``uint8`` (quantised before anything else), turned
into ``[0, 1]`` floats (``x / 255``), resized **bilinearly to 299 x 299**
(``F.interpolate(mode="bilinear", align_corners=False)``, no antialiasing), scaled to ``[-1, 1]``
(``2 x - 1``), and the 2048-d output of the final average pool ("pool3") is the feature.

Weights file ``pt_inception-2015-12-05-6726825d.pth`` is looked for at ``weights=`` / the
``--inception-weights`` flag, then ``$SESIM_INCEPTION_WEIGHTS``, then
``torch.hub.get_dir()/checkpoints/`` (where pytorch-fid caches it after its first run).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv_inception

from .weightfiles import load_weights_file, require_weights_file, uint8_input

__all__ = ["FID_INCEPTION_FILE", "FID_INCEPTION_ENV", "FIDInceptionV3", "build_fid_inception_trunk",
           "find_fid_inception_weights"]

FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_INCEPTION_ENV = "SESIM_INCEPTION_WEIGHTS"
FID_INPUT_SIZE = 299


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    """3x3, stride 1, padding 1 average pool that averages over real (not padded) pixels only."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tv_inception.InceptionA):
    """torchvision's InceptionA; pooling branch without padded zeros in the average."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b5, b3, bp], 1)


class FIDInceptionC(tv_inception.InceptionC):
    """torchvision's InceptionC; pooling branch without padded zeros in the average."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b7, bd, bp], 1)


class FIDInceptionE(tv_inception.InceptionE):
    """torchvision's InceptionE with the TensorFlow graph's pooling branch.

    ``pool="avg"`` (``Mixed_7b``): average pool without padded zeros; ``pool="max"``
    (``Mixed_7c``): 3x3 max pool, stride 1, padding 1.
    """

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__(in_channels)
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = _avg_pool_no_pad(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


def build_fid_inception_trunk() -> tv_inception.Inception3:
    """torchvision Inception-v3 (1008 classes, no aux head, no weight init) with the FID blocks.

    Its ``state_dict`` keys are exactly those of pytorch-fid's checkpoint (``Conv2d_1a_3x3.conv.weight``,
    ``Mixed_7c.branch_pool.bn.running_var``, ..., ``fc.weight`` of shape ``(1008, 2048)``).
    """
    net = tv_inception.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, pool="avg")
    net.Mixed_7c = FIDInceptionE(2048, pool="max")
    return net


def find_fid_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """Locate ``pt_inception-2015-12-05-6726825d.pth`` (see module doc) or raise ``WeightsNotFoundError``."""
    return require_weights_file(
        FID_INCEPTION_FILE, "FID Inception-v3 (pytorch-fid format)", path=path, env=FID_INCEPTION_ENV,
        flag="--inception-weights",
        source_hint="It is pytorch-fid's port of TensorFlow's 2015-12-05 Inception (released on the "
                    "mseitzer/pytorch-fid GitHub page as fid_weights); running pytorch-fid once on a "
                    "machine with internet leaves it in that machine's torch hub cache.")


class FIDInceptionV3(nn.Module):
    """2048-d pool3 features of the FID Inception-v3.

    Args:
        weights: a path to the pytorch-fid state dict, ``"auto"`` (look it up: flag path / env var /
            hub cache; raise ``WeightsNotFoundError`` if absent) or ``None`` (random weights: for tests
            of the pipeline only; the result is then not FID and :attr:`weights_source` says ``"random"``).

    Input: ``(N, 3, H, W)`` ``uint8`` images (any H, W), or float in ``[0, 1]`` that are first
    quantised to uint8 (``round(x * 255)``). Output: ``(N, 2048)`` float32, non-negative.
    """

    name = "fid-inception-v3"
    feature_dim = 2048
    description = ("Inception-v3 pool3 (TF 2015-12-05 weights, pytorch-fid format "
                   f"{FID_INCEPTION_FILE}); uint8 -> [0,1] -> bilinear 299x299 (align_corners=False) -> [-1,1]")

    def __init__(self, weights: str | os.PathLike | None = "auto") -> None:
        super().__init__()
        path = None if weights is None else find_fid_inception_weights(None if weights == "auto" else weights)
        trunk = build_fid_inception_trunk()
        self.stem = nn.Sequential(OrderedDict([
            ("Conv2d_1a_3x3", trunk.Conv2d_1a_3x3), ("Conv2d_2a_3x3", trunk.Conv2d_2a_3x3),
            ("Conv2d_2b_3x3", trunk.Conv2d_2b_3x3), ("maxpool1", nn.MaxPool2d(3, 2)),
            ("Conv2d_3b_1x1", trunk.Conv2d_3b_1x1), ("Conv2d_4a_3x3", trunk.Conv2d_4a_3x3),
            ("maxpool2", nn.MaxPool2d(3, 2)),
        ]))
        self.mixed = nn.Sequential(OrderedDict(
            (name, getattr(trunk, name)) for name in
            ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
             "Mixed_7a", "Mixed_7b", "Mixed_7c")))
        self.trunk = trunk  # owns the parameters under pytorch-fid's key names (fc kept for loading)
        if weights is None:
            self.weights_source = "random"
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        else:
            state = load_weights_file(path, "FID Inception-v3")
            self.load_reference_state_dict(state)
            self.weights_source = str(path)
        self.eval()
        self.requires_grad_(False)

    def load_reference_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a state dict with pytorch-fid's keys (strict: every key and shape must match)."""
        result = self.trunk.load_state_dict(state, strict=False)
        # num_batches_tracked buffers are absent from checkpoints older than torch 0.4.1; harmless.
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise ValueError(f"not a pytorch-fid Inception checkpoint: missing {missing[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """uint8 (or [0, 1] float, quantised) ``(N, 3, H, W)`` -> ``(N, 3, 299, 299)`` float in [-1, 1]."""
        x = uint8_input(images).float() / 255.0
        x = F.interpolate(x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        x = self.mixed(self.stem(x))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
