"""Multi-scale discriminator (pix2pixHD / MUNIT): the same fully convolutional critic applied to
the image at ``n_scales`` resolutions, halved between scales by 3x3 average pooling (stride 2,
padding excluded from the average).

Each scale's critic: ``n_layers`` 4x4 stride-2 convolutions (channels doubling from ``ndf``,
leaky ReLU 0.2, no normalisation, as MUNIT's default) and a 1x1 convolution to one logit per
position. Input ``(N, C, H, W)`` in [-1, 1]; output a list of ``n_scales`` logit maps
``(N, 1, H / 2**(s + n_layers), W / 2**(s + n_layers))`` for scale ``s`` (rounded), ready for
:class:`sesim.losses.gan.GANLoss`, which sums its terms over the list.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .described import Described
from .norm import InstanceNorm2d

__all__ = ["MultiScaleDiscriminator", "ScaleCritic"]


class ScaleCritic(nn.Module):
    """One scale: ``(N, C, H, W)`` -> ``(N, 1, H / 2**n_layers, W / 2**n_layers)`` logits."""

    def __init__(self, in_channels: int, ndf: int, n_layers: int, norm: str = "none") -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        ch_in, ch = in_channels, ndf
        for i in range(n_layers):
            self.convs.append(nn.Conv2d(ch_in, ch, 4, stride=2, padding=1))
            use_norm = norm == "instance" and i > 0
            self.norms.append(InstanceNorm2d(ch) if use_norm else nn.Identity())
            ch_in, ch = ch, ch * 2
        self.to_logit = nn.Conv2d(ch_in, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.leaky_relu(norm(conv(x)), 0.2)
        return self.to_logit(x)


class MultiScaleDiscriminator(Described):
    """``n_scales`` :class:`ScaleCritic` s on successively 2x average-pooled copies of the input."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 4, n_scales: int = 3,
                 norm: str = "none") -> None:
        super().__init__()
        if n_scales < 1 or n_layers < 1:
            raise ValueError("n_scales and n_layers must be >= 1")
        self.n_layers = n_layers
        self.critics = nn.ModuleList(ScaleCritic(in_channels, ndf, n_layers, norm) for _ in range(n_scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @property
    def min_size(self) -> int:
        """Smallest input side for which the coarsest scale still has one logit."""
        return 2 ** (len(self.critics) - 1 + self.n_layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"multi-scale discriminator with {len(self.critics)} scales and {self.n_layers} layers "
                             f"needs images of at least {self.min_size} px, got {tuple(x.shape[-2:])}; "
                             "use fewer --n-scales-d or --n-layers-d")
        out = []
        for i, critic in enumerate(self.critics):
            if i:
                x = self.downsample(x)
            out.append(critic(x))
        return out
