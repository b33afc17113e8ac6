"""StyleGAN2-style generator and discriminator for single-image translation (paper Sec. 4.3, SinCUT).

Design (own code, following the structure the public SinCUT / F-LSeSim ``stylegan2`` networks use):

- **Equalised learning rate**: every conv / linear stores ``N(0, 1)`` weights and multiplies them by
  ``1 / sqrt(fan_in)`` at run time (:class:`EqualConv2d`, :class:`EqualLinear`).
- **Generator** = residual *encoder* (1x1 ``from_rgb``, ``n_down`` downsampling residual blocks,
  ``n_enc`` residual blocks) + StyleGAN2-style *decoder* (``n_dec`` residual blocks, then per
  upsampling a bilinear x2 upsample and two :class:`StyledConv` with optional noise inputs, then a
  non-demodulated 1x1 modulated ``to_rgb`` and ``tanh``).
- **No mapping network** (as in the public code, whose styled convs receive no style): each
  modulated conv has a learned per-input-channel style vector (initialised to 1). Modulation and
  demodulation act on the *weights*, never on activation statistics, and there are no
  normalisation layers, so the generator is translation-equivariant (for shifts that are multiples
  of :attr:`StyleGAN2Generator.stride`) and tiled inference reproduces whole-image inference
  exactly (:mod:`sesim.tiled`) once tiles overlap by more than :attr:`receptive_radius`.
- **Noise inputs** (per-pixel Gaussian noise times a learned per-layer weight, initialised to 0)
  are added in training mode only; evaluation is deterministic.
- **Discriminator**: 1x1 ``from_rgb``, residual blocks with 2x average-pool downsampling down to
  4 x 4, a 3x3 conv, then flatten + two equalised linear layers -> one logit per image. It is built
  for one input size (the training patch size). No minibatch-stddev (disabled in the public code).

All activations are leaky ReLU(0.2) scaled by sqrt(2) (StyleGAN2's "fused" gain). Images are
``(N, C, H, W)`` in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .described import Described

__all__ = ["EqualConv2d", "EqualLinear", "ModulatedConv2d", "StyledConv", "StyleGAN2Generator",
           "StyleGAN2Discriminator"]

_GAIN = math.sqrt(2.0)


def lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2) * _GAIN


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: weight ``N(0, 1) / sqrt(in * k * k)``, zero bias, zero padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (``N(0, 1) / sqrt(in)`` weights), bias ``bias_init``."""

    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution with a learned style vector (no mapping network).

    ``w'[o, i, :, :] = scale * weight[o, i] * s[i]`` (modulation, ``s`` the learned style of length
    ``in_ch``, initialised to 1) and, with ``demodulate``,
    ``w''[o] = w'[o] / sqrt(sum_{i, kh, kw} w'[o, i, kh, kw]^2 + eps)`` so every output channel's
    kernel has unit L2 norm: unit-variance i.i.d. inputs give unit-variance outputs.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, demodulate: bool = True, eps: float = 1e-8) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.style = nn.Parameter(torch.ones(in_ch))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate = demodulate
        self.eps = eps
        self.padding = kernel // 2

    def effective_weight(self) -> Tensor:
        """The ``(out, in, k, k)`` kernel actually convolved (modulated and, if enabled, demodulated)."""
        w = self.weight * self.scale * self.style.view(1, -1, 1, 1)
        if self.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + self.eps)
        return w

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.effective_weight(), padding=self.padding)


class NoiseInjection(nn.Module):
    """``x + weight * noise`` with per-pixel ``N(0, 1)`` noise shared across channels; training only."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return x + self.weight * noise


class StyledConv(nn.Module):
    """(optional bilinear x2 upsample) -> 3x3 modulated conv -> (noise) -> bias -> leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, *, upsample: bool = False, noise: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(in_ch, out_ch, 3)
        self.noise = NoiseInjection() if noise else None
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x)
        if self.noise is not None:
            x = self.noise(x)
        return lrelu(x + self.bias)


class ResBlock(nn.Module):
    """``(conv3x3 -> lrelu -> conv3x3 -> lrelu [-> avgpool2]) + skip``, divided by sqrt(2); no normalisation.

    The skip is a 1x1 conv (bias-free) when the width changes, then the same average pooling.
    """

    def __init__(self, in_ch: int, out_ch: int, *, down: bool = False) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else None
        self.down = down

    def forward(self, x: Tensor) -> Tensor:
        out = lrelu(self.conv2(lrelu(self.conv1(x))))
        skip = self.skip(x) if self.skip is not None else x
        if self.down:
            out, skip = F.avg_pool2d(out, 2), F.avg_pool2d(skip, 2)
        return (out + skip) / _GAIN


def _widths(base: int, levels: int, cap: int) -> list[int]:
    return [min(base * 2 ** i, cap) for i in range(levels + 1)]


class StyleGAN2Generator(Described):
    """Residual encoder + StyleGAN2-style decoder, ``(N, C, H, W)`` in [-1, 1] -> same shape in [-1, 1].

    Args:
        in_channels, out_channels: image channels.
        ngf: channels at full resolution; doubling per downsampling, capped at ``max_channels``.
        n_down: downsamplings (``stride = 2 ** n_down``; H and W must be multiples of it).
        n_blocks: residual blocks at the bottleneck, split between encoder (``n_blocks // 2``) and
            decoder (the rest).
        noise: add noise inputs in the decoder's styled convs (training mode only).

    Attributes:
        stride: ``2 ** n_down``.
        receptive_radius: an upper bound (in input pixels) of how far from an output pixel an
            input pixel can influence it. Tiled inference with at least this margin is exact.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, *, ngf: int = 16, n_down: int = 2,
                 n_blocks: int = 6, noise: bool = True, max_channels: int = 256) -> None:
        super().__init__()
        if n_down < 0 or n_blocks < 0 or ngf < 1:
            raise ValueError("need ngf >= 1, n_down >= 0, n_blocks >= 0")
        widths = _widths(ngf, n_down, max_channels)
        self.stride = 2 ** n_down
        self.from_rgb = EqualConv2d(in_channels, widths[0], 1)
        self.down = nn.ModuleList(ResBlock(widths[i], widths[i + 1], down=True) for i in range(n_down))
        n_enc = n_blocks // 2
        self.encoder_blocks = nn.ModuleList(ResBlock(widths[-1], widths[-1]) for _ in range(n_enc))
        self.decoder_blocks = nn.Sequential(*(ResBlock(widths[-1], widths[-1]) for _ in range(n_blocks - n_enc)))
        self.up = nn.Sequential(*(nn.Sequential(StyledConv(widths[i], widths[i - 1], upsample=True, noise=noise),
                                                StyledConv(widths[i - 1], widths[i - 1], noise=noise))
                                  for i in range(n_down, 0, -1)))
        self.to_rgb = ModulatedConv2d(widths[0], out_channels, 1, demodulate=False)
        self.to_rgb_bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        # receptive radius in input pixels: at scale s (input pixels per position) a 3x3 conv adds s, a 2x
        # average pooling s, a bilinear x2 upsample from scale 2s (one low-res neighbour) 2s. Encoder level k
        # (s = 2**k, k < n_down): two convs + pooling, 3s; decoder level k: upsample + two convs, 4s;
        # bottleneck: two convs per block at s = stride. In total:
        self.receptive_radius = 7 * (self.stride - 1) + 2 * self.stride * n_blocks
        self._channels = {"input": in_channels, "from_rgb": widths[0]}
        self._channels.update({f"down{i + 1}": widths[i + 1] for i in range(n_down)})
        self._channels.update({f"enc{i + 1}": widths[-1] for i in range(n_enc)})

    def layer_names(self) -> list[str]:
        """Encoder layers available to :meth:`encode` (for PatchNCE), input first."""
        return list(self._channels)

    def layer_channels(self) -> dict[str, int]:
        return dict(self._channels)

    def encode(self, x: Tensor, layers: list[str]) -> dict[str, Tensor]:
        """Encoder features of the named layers, ``{name: (N, C_l, H_l, W_l)}`` (stops at the deepest one)."""
        unknown = [name for name in layers if name not in self._channels]
        if unknown:
            raise ValueError(f"unknown encoder layer(s) {unknown}; valid: {', '.join(self._channels)}")
        wanted, out = set(layers), {}
        for name, h in self._encoder_features(x):
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out

    def _encoder_features(self, x: Tensor):
        yield "input", x
        h = lrelu(self.from_rgb(x))
        yield "from_rgb", h
        for i, block in enumerate(self.down):
            h = block(h)
            yield f"down{i + 1}", h
        for i, block in enumerate(self.encoder_blocks):
            h = block(h)
            yield f"enc{i + 1}", h

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be a multiple of the generator stride {self.stride}")
        h = x
        for _, h in self._encoder_features(x):
            pass
        h = self.up(self.decoder_blocks(h))
        return torch.tanh(self.to_rgb(h) + self.to_rgb_bias)


class StyleGAN2Discriminator(Described):
    """Residual StyleGAN2-style discriminator: ``(N, C, size, size)`` in [-1, 1] -> ``(N, 1)`` logits.

    Args:
        size: input side (a power of two >= 8; the training patch size).
        ndf: channels at full resolution, doubling per downsampling, capped at ``max_channels``.
    """

    def __init__(self, in_channels: int = 3, *, size: int = 64, ndf: int = 16, max_channels: int = 256) -> None:
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"discriminator input size must be a power of two >= 8, got {size}")
        n_down = int(math.log2(size)) - 2
        widths = _widths(ndf, n_down, max_channels)
        self.size = size
        self.from_rgb = EqualConv2d(in_channels, widths[0], 1)
        self.blocks = nn.Sequential(*(ResBlock(widths[i], widths[i + 1], down=True) for i in range(n_down)))
        self.final_conv = EqualConv2d(widths[-1], widths[-1], 3)
        self.final_linear = EqualLinear(widths[-1] * 16, widths[-1])
        self.output = EqualLinear(widths[-1], 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"discriminator expects {self.size} x {self.size} inputs, got {tuple(x.shape[-2:])}")
        h = self.blocks(lrelu(self.from_rgb(x)))
        h = lrelu(self.final_conv(h)).flatten(1)
        return self.output(lrelu(self.final_linear(h)))
