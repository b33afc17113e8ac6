"""SPADE generator (Park et al., CVPR 2019): a decoder whose normalisation layers are modulated,
location by location, by a guide image — here MCL-Net's ``[conditional input, warped exemplar]``.

A :class:`SPADE` layer normalises its input (instance norm, no affine parameters) and then
scales and shifts every position by ``(1 + gamma(guide), beta(guide))``, two small convolutions
on the guide resized to that layer's resolution; so the guide's layout (and, with a warped
exemplar, its colours) reach every layer instead of being washed out by normalisation.

:class:`SPADEGenerator` starts from the guide pooled to ``1 / 2**n_up`` of the output size, and
alternates SPADE residual blocks with 2x nearest upsampling up to full size; there is no noise
input and no VAE style encoder (style comes from the warped exemplar). Output sizes must be
multiples of ``stride = 2**n_up`` (``sesim translate`` pads to it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SPADE", "SPADEResBlock", "SPADEGenerator"]


class SPADE(nn.Module):
    """``(N, C, H, W)`` activations and a ``(N, G, H, W)`` guide (same size) -> modulated activations."""

    def __init__(self, channels: int, guide_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(guide_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        a = self.shared(guide)
        return self.norm(x) * (1 + self.gamma(a)) + self.beta(a)


class SPADEResBlock(nn.Module):
    """Residual block ``x + conv(act(SPADE(conv(act(SPADE(x))))))``; a SPADE + 1x1 conv shortcut when
    the channel count changes."""

    def __init__(self, in_channels: int, out_channels: int, guide_channels: int, hidden: int = 64) -> None:
        super().__init__()
        mid = min(in_channels, out_channels)
        self.norm_in = SPADE(in_channels, guide_channels, hidden)
        self.conv_in = nn.Conv2d(in_channels, mid, 3, padding=1)
        self.norm_mid = SPADE(mid, guide_channels, hidden)
        self.conv_out = nn.Conv2d(mid, out_channels, 3, padding=1)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_skip = SPADE(in_channels, guide_channels, hidden)
            self.conv_skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        dx = self.conv_in(F.leaky_relu(self.norm_in(x, guide), 0.2))
        dx = self.conv_out(F.leaky_relu(self.norm_mid(dx, guide), 0.2))
        skip = self.conv_skip(self.norm_skip(x, guide)) if self.learned_shortcut else x
        return skip + dx


class SPADEGenerator(nn.Module):
    """``(N, G, H, W)`` guide in about [-1, 1] -> ``(N, out_channels, H, W)`` image in [-1, 1].

    Channels ``min(ngf * 2**(n_up - k), 8 * ngf)`` at level ``k`` (0 = coarsest, ``H / 2**n_up``);
    ``hidden`` channels in each SPADE layer. ``H`` and ``W`` must be multiples of :attr:`stride`.
    """

    def __init__(self, guide_channels: int, out_channels: int = 3, *, ngf: int = 64, n_up: int = 3,
                 hidden: int = 64) -> None:
        super().__init__()
        chans = [min(ngf * 2 ** (n_up - k), 8 * ngf) for k in range(n_up + 1)]
        self.n_up = n_up
        self.head = nn.Conv2d(guide_channels, chans[0], 3, padding=1)
        self.blocks = nn.ModuleList([SPADEResBlock(chans[0], chans[0], guide_channels, hidden)])
        self.blocks.extend(SPADEResBlock(chans[k - 1], chans[k], guide_channels, hidden) for k in range(1, n_up + 1))
        self.to_image = nn.Conv2d(chans[-1], out_channels, 3, padding=1)

    @property
    def stride(self) -> int:
        return 2 ** self.n_up

    def forward(self, guide: torch.Tensor) -> torch.Tensor:
        h, w = guide.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f"SPADE generator input {h}x{w} is not a multiple of its stride {self.stride}")
        pyramid = [guide]  # pyramid[k]: the guide at 1 / 2**k of the output size
        for _ in range(self.n_up):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2))
        x = self.head(pyramid[self.n_up])
        x = self.blocks[0](x, pyramid[self.n_up])
        for k in range(1, self.n_up + 1):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.blocks[k](x, pyramid[self.n_up - k])
        return torch.tanh(self.to_image(F.leaky_relu(x, 0.2)))
