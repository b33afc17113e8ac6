"""MUNIT-style content/style generator for multi-modal translation (paper Sec. 4.2).

The generator splits an image into a *content code* (a spatial feature map from the content
encoder: convolutions with instance normalisation, two stride-2 downsamplings, residual blocks)
and draws its *appearance* from a *style code* ``s`` of ``style_dim`` numbers. A small MLP maps
``s`` to the scale and shift of every adaptive instance normalisation (AdaIN) layer of the
decoder's residual blocks; the decoder then upsamples by nearest-neighbour x2 followed by a 5x5
convolution and layer normalisation (as MUNIT), and ends in a 7x7 convolution and ``tanh``.

Style codes are sampled from N(0, I) during training. The optional style encoder maps an image
to a style code (global average pooled convolutions, no normalisation, as MUNIT); it is trained
by latent reconstruction (``sesim/methods/multimodal.py``) and lets ``sesim translate
--style-from IMAGE`` copy the appearance of a reference image.

Shapes: images ``(N, C, H, W)`` in [-1, 1] with H and W multiples of :attr:`stride` (4);
content ``(N, ngf * 4, H / 4, W / 4)``; style codes ``(N, style_dim)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import check_choice
from .described import Described
from .norm import InstanceNorm2d, instance_norm

__all__ = ["AdaIN", "ContentEncoder", "Decoder", "LayerNorm2d", "MultimodalGenerator", "StyleEncoder", "StyleMLP",
           "style_codes"]


class AdaIN(nn.Module):
    """Instance normalisation whose per-channel scale and shift come from outside.

    :meth:`set_params` stores ``scale`` and ``shift`` of shape ``(N, C)`` for the next forward;
    ``forward(x)`` with ``x`` ``(N, C, H, W)`` returns ``scale * IN(x) + shift``, same shape.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.scale: Tensor | None = None
        self.shift: Tensor | None = None

    def set_params(self, scale: Tensor | None, shift: Tensor | None) -> None:
        self.scale, self.shift = scale, shift

    def forward(self, x: Tensor) -> Tensor:
        if self.scale is None or self.shift is None:
            raise RuntimeError("AdaIN parameters were not set: call the generator with a style code")
        normed = instance_norm(x, eps=self.eps)
        return normed * self.scale[:, :, None, None] + self.shift[:, :, None, None]


class LayerNorm2d(nn.Module):
    """MUNIT's layer norm: normalise each sample over (C, H, W), then a per-channel affine.
    ``(N, C, H, W)`` -> same shape."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        mean = flat.mean(1).view(-1, 1, 1, 1)
        std = flat.std(1).view(-1, 1, 1, 1)
        return (x - mean) / (std + self.eps) * self.gamma[:, None, None] + self.beta[:, None, None]


#: the normalisations of :class:`ConvLayer` by name, each built from the channel count
_NORMS = {"instance": InstanceNorm2d, "layer": LayerNorm2d, "adain": AdaIN, "none": lambda channels: nn.Identity()}


class ConvLayer(nn.Module):
    """Reflection pad -> conv -> optional norm (instance / layer / adain / none) -> optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, norm: str = "instance",
                 relu: bool = True) -> None:
        super().__init__()
        check_choice("norm", norm, _NORMS)
        self.pad = nn.ReflectionPad2d((kernel - 1) // 2)  # 7 -> 3, 5 -> 2, 4 (stride 2) / 3 -> 1
        self.conv = nn.Conv2d(cin, cout, kernel, stride)
        self.norm = _NORMS[norm](cout)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(self.pad(x))))


class ResBlock(nn.Module):
    """Two 3x3 convolutions (``norm`` after each, ReLU after the first) plus the identity.
    ``(N, C, H, W)`` -> same shape."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, norm=norm)
        self.conv2 = ConvLayer(channels, channels, 3, norm=norm, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


class ContentEncoder(nn.Module):
    """Image ``(N, C, H, W)`` -> content ``(N, ngf * 2**n_down, H / 2**n_down, W / 2**n_down)``:
    7x7 conv, ``n_down`` stride-2 4x4 convs (channels doubling), ``n_res`` residual blocks; all IN + ReLU."""

    def __init__(self, in_channels: int, ngf: int, n_down: int = 2, n_res: int = 4) -> None:
        super().__init__()
        widths = [ngf * 2**i for i in range(n_down + 1)]
        self.stem = ConvLayer(in_channels, ngf, 7)
        self.down = nn.Sequential(*(ConvLayer(widths[i], widths[i + 1], 4, stride=2) for i in range(n_down)))
        self.blocks = nn.Sequential(*(ResBlock(widths[-1], "instance") for _ in range(n_res)))
        self.out_channels = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.down(self.stem(x)))


class StyleEncoder(nn.Module):
    """Image ``(N, C, H, W)`` (any size, H and W >= 2**(n_down + 1)) -> style code
    ``(N, style_dim)``: 7x7 conv, two stride-2 convs doubling the channels, ``n_down - 2`` more at
    constant width (no normalisation, ReLU), global average pooling, 1x1 conv."""

    def __init__(self, in_channels: int, ngf: int, style_dim: int, n_down: int = 4) -> None:
        super().__init__()
        widths = [ngf * 2 ** min(i, 2) for i in range(n_down + 1)]
        self.stem = ConvLayer(in_channels, ngf, 7, norm="none")
        self.down = nn.Sequential(*(ConvLayer(widths[i], widths[i + 1], 4, stride=2, norm="none")
                                    for i in range(n_down)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.to_style = nn.Conv2d(widths[-1], style_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_style(self.pool(self.down(self.stem(x)))).flatten(1)


class StyleMLP(nn.Module):
    """Style code ``(N, style_dim)`` -> AdaIN parameters ``(N, n_params)``: three linear layers
    (ReLU between them), as MUNIT."""

    def __init__(self, style_dim: int, n_params: int, hidden: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(style_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_params)

    def forward(self, s: Tensor) -> Tensor:
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(s)))))


class Decoder(nn.Module):
    """Content ``(N, ch, h, w)`` -> image ``(N, out_channels, h * 2**n_up, w * 2**n_up)`` in [-1, 1]:
    ``n_res`` AdaIN residual blocks, ``n_up`` x (nearest x2 upsampling, 5x5 conv halving the
    channels, layer norm, ReLU), 7x7 conv and tanh. ``style_params`` ``(N, n_style_params)`` (from
    :class:`StyleMLP`) set the AdaIN layers for this call only."""

    def __init__(self, channels: int, out_channels: int, n_up: int = 2, n_res: int = 4) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ResBlock(channels, "adain") for _ in range(n_res)))
        widths = [channels // 2**i for i in range(n_up + 1)]
        self.up = nn.ModuleList(ConvLayer(widths[i], widths[i + 1], 5, norm="layer") for i in range(n_up))
        self.to_rgb = ConvLayer(widths[-1], out_channels, 7, norm="none", relu=False)

    def adain_layers(self) -> list[AdaIN]:
        return [m for m in self.modules() if isinstance(m, AdaIN)]

    def n_style_params(self) -> int:
        return sum(2 * layer.channels for layer in self.adain_layers())

    def set_style_params(self, params: Tensor) -> None:
        """Split ``(N, n_style_params)`` into (scale, shift) per AdaIN layer, in module order.
        The scale is ``1 + raw`` so that a zero MLP output means plain instance norm."""
        i = 0
        for layer in self.adain_layers():
            c = layer.channels
            layer.set_params(1.0 + params[:, i + c: i + 2 * c], params[:, i: i + c])
            i += 2 * c

    def forward(self, content: Tensor, style_params: Tensor) -> Tensor:
        self.set_style_params(style_params)
        try:
            x = self.blocks(content)
            for layer in self.up:
                x = layer(F.interpolate(x, scale_factor=2, mode="nearest"))
            return torch.tanh(self.to_rgb(x))
        finally:  # hold no per-call tensors between calls (deepcopy, memory)
            for layer in self.adain_layers():
                layer.set_params(None, None)


class MultimodalGenerator(Described):
    """Content encoder + style MLP + AdaIN decoder (+ optional style encoder).

    ``forward(x, style=None)``: ``x`` ``(N, C, H, W)`` in [-1, 1], H and W multiples of
    :attr:`stride`; ``style`` ``(N, style_dim)`` or ``(style_dim,)`` (broadcast over the batch),
    default the zero code (the mean of the N(0, I) prior, what ``sesim export`` bakes in).
    Returns ``(N, out_channels, H, W)`` in [-1, 1].
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, *, ngf: int = 64, n_res: int = 4,
                 style_dim: int = 8, mlp_dim: int = 256, n_down: int = 2, style_encoder: bool = True) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.stride = 2 ** n_down
        self.content_encoder = ContentEncoder(in_channels, ngf, n_down, n_res)
        self.decoder = Decoder(self.content_encoder.out_channels, out_channels, n_down, n_res)
        self.style_mlp = StyleMLP(style_dim, self.decoder.n_style_params(), mlp_dim)
        self.style_encoder = StyleEncoder(in_channels, ngf, style_dim) if style_encoder else None

    @property
    def has_style_encoder(self) -> bool:
        return self.style_encoder is not None

    def encode_content(self, x: Tensor) -> Tensor:
        return self.content_encoder(x)

    def encode_style(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` in [-1, 1] -> ``(N, style_dim)``; needs a generator built with a style encoder."""
        if self.style_encoder is None:
            raise RuntimeError("this generator has no style encoder (trained with lambda_style = 0)")
        return self.style_encoder(x)

    def decode(self, content: Tensor, style: Tensor) -> Tensor:
        if style.dim() == 1:
            style = style.unsqueeze(0)
        if style.shape[-1] != self.style_dim:
            raise ValueError(f"style code has {style.shape[-1]} numbers, the generator expects {self.style_dim}")
        style = style.expand(content.shape[0], -1)
        return self.decoder(content, self.style_mlp(style))

    def forward(self, x: Tensor, style: Tensor | None = None) -> Tensor:
        if style is None:
            style = x.new_zeros(x.shape[0], self.style_dim)
        return self.decode(self.encode_content(x), style)


def style_codes(style_dim: int, n: int, seed: int) -> Tensor:
    """``(n, style_dim)`` reproducible codes from N(0, I): row ``k`` depends only on ``(seed, k)``,
    not on ``n`` (each row is drawn in turn from one generator seeded with ``seed``), so sample
    ``k`` of a translation is the same whether 2 or 10 samples are asked for."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(style_dim, generator=g) for _ in range(n)]) if n else torch.zeros(0, style_dim)
