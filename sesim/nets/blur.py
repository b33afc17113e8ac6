"""Anti-aliased resampling (Zhang 2019, "Making convolutional networks shift-invariant again").

The public CUT / F-LSeSim networks resample through a fixed binomial blur instead of a strided or
transposed convolution: a stride-2 convolution samples every other position (aliasing), and a
stride-2 transposed convolution with a 3x3 kernel covers even and odd output positions with
different numbers of taps, which paints a period-2 grid that the generator must learn to cancel
(the "checkerboard" of Odena et al. 2016). Both layers here are fixed (no parameters) and
depthwise; their filters are non-persistent buffers, so checkpoints do not carry them.

* :class:`BlurDownsample`: reflect-pad 1, depthwise [1, 2, 1] x [1, 2, 1] / 16 blur, stride 2.
  (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2)).
* :class:`BlurUpsample`: zero-insertion x2 followed by a depthwise [1, 3, 3, 1] x [1, 3, 3, 1] / 16
  blur (a transposed convolution with that fixed kernel), replicate-padded so borders see the
  same weights as the interior. (N, C, H, W) -> (N, C, 2H, 2W). Every output pixel gets taps
  summing to 1 in each axis, so a constant image stays constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BlurDownsample", "BlurUpsample"]


def _binomial_2d(taps: list[float]) -> Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


class BlurDownsample(nn.Module):
    """Blur with a 3x3 binomial filter, then keep every second pixel. See the module docstring."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("kernel", _binomial_2d([1, 2, 1]).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W), H, W >= 2 -> (N, C, ceil(H/2), ceil(W/2))."""
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, filter=[1,2,1], stride=2"


class BlurUpsample(nn.Module):
    """Double the resolution by zero insertion + a 4x4 binomial blur. See the module docstring."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        # x4 so that each output phase (two of the four taps per axis) sums to 1.
        kernel = _binomial_2d([1, 3, 3, 1]) * 4
        self.register_buffer("kernel", kernel.expand(channels, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C, 2H, 2W)."""
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        # (H + 2 - 1) * 2 + 4 - 2 * 3 = 2H: the padding of 3 crops the rows the replicate pad added.
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=2, padding=3, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, filter=[1,3,3,1], stride=2"
