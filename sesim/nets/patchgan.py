"""PatchGAN discriminator (Isola et al. 2017; the CycleGAN / F-LSeSim "basic" D).

With ``n_layers=3`` every output logit sees a 70x70 patch of the input ("70x70 PatchGAN")::

    stem        conv4x4 s2 p1 (ndf), LeakyReLU(0.2)                    (no norm)
    down1       conv4x4 s2 p1 (ndf*2), norm, LeakyReLU(0.2)
    down2       conv4x4 s2 p1 (ndf*4), norm, LeakyReLU(0.2)
    ...         down{n} for n = 1 .. n_layers-1, width ndf*min(2**n, 8)
    conv_s1     conv4x4 s1 p1 (ndf*min(2**n_layers, 8)), norm, LeakyReLU(0.2)
    head        conv4x4 s1 p1 -> 1 channel (raw logits, no sigmoid)

Sub-layers are named ``conv``, ``norm``, ``act`` (e.g. ``disc.down2.norm``, ``disc.head.conv``).
With ``antialias=True`` (the public CUT / F-LSeSim D) each stride-2 conv becomes a stride-1 conv
followed by ``blur`` (:class:`~sesim.nets.blur.BlurDownsample`) after the activation.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from ..ops import check_choice
from .blur import BlurDownsample
from .described import Described
from .resnet_generator import NORMS, conv_block

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(Described):
    """N-layer PatchGAN discriminator producing a map of real/fake logits.

    Args:
        in_channels: channels of the judged image.
        ndf: width of the first conv layer.
        n_layers: number of stride-2 convs (3 gives the 70x70 PatchGAN). Must be >= 1.
        norm: ``"instance"`` (default, non-affine), ``"batch"`` or ``"none"``; not applied to
            ``stem`` or ``head``. Conv biases are on unless norm is ``"batch"`` (CycleGAN convention).

    Input: (N, in_channels, H, W) images, nominally in [-1, 1].
    Output: (N, 1, H', W') unbounded logits (no sigmoid), see :meth:`output_size`;
    for n_layers=3, H' = H/8 - 2 when H is a multiple of 8 (e.g. 32 -> 2, 64 -> 6, 256 -> 30).
    The input must be large enough for H', W' >= 1 (>= 24 px for n_layers=3), else ``forward``
    raises ``ValueError``.

    With the defaults (ndf=64, n_layers=3, instance norm) the network has 2,764,737 parameters.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 antialias: bool = False) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.in_channels = in_channels
        self.n_layers = n_layers
        bias = norm != "batch"

        self.stem = self._block(in_channels, ndf, stride=2, norm=None, bias=True, antialias=antialias)
        cin = ndf
        for n in range(1, n_layers):
            cout = ndf * min(2**n, 8)
            self.add_module(f"down{n}", self._block(cin, cout, stride=2, norm=norm, bias=bias, antialias=antialias))
            cin = cout
        cout = ndf * min(2**n_layers, 8)
        self.conv_s1 = self._block(cin, cout, stride=1, norm=norm, bias=bias)
        self.head = nn.Sequential(OrderedDict([("conv", nn.Conv2d(cout, 1, 4, stride=1, padding=1))]))

    @staticmethod
    def _block(cin: int, cout: int, stride: int, norm: str | None, bias: bool, antialias: bool = False) -> nn.Sequential:
        """conv4x4 (stride ``stride``), norm, LeakyReLU(0.2) (see :func:`~sesim.nets.resnet_generator.conv_block`)."""
        return conv_block(cin, cout, 4, stride, norm, bias, ("act", nn.LeakyReLU(0.2, inplace=True)), antialias)

    def layer_names(self) -> list[str]:
        """Top-level layer names in forward order: ``stem``, ``down1`` .. ``down{n_layers-1}``, ``conv_s1``, ``head``."""
        return ["stem", *(f"down{n}" for n in range(1, self.n_layers)), "conv_s1", "head"]

    def _windows(self) -> list[tuple[int, int, int]]:
        """(kernel, stride, padding) of every spatial window (convs and blur-pools) in forward order."""
        out = []
        for name in self.layer_names():
            for m in getattr(self, name).modules():
                if isinstance(m, nn.Conv2d):
                    assert m.dilation == (1, 1) and m.kernel_size[0] == m.kernel_size[1]
                    out.append((m.kernel_size[0], m.stride[0], m.padding[0]))
                elif isinstance(m, BlurDownsample):
                    out.append((3, 2, 1))
        return out

    def receptive_field(self) -> int:
        """Side length (px) of the input patch seen by one output logit, computed from the layer stack.

        Walking backwards from one output pixel, each window with kernel k and stride s maps a
        receptive field r to ``(r - 1) * s + k``. Gives 70 for n_layers=3 (34 for 2, 142 for 4);
        the anti-aliased variant sees more (its blur widens every stride-2 step).
        """
        r = 1
        for k, s, _ in reversed(self._windows()):
            r = (r - 1) * s + k
        return r

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size (H', W') of the logit map for an (H, W) input (may be <= 0 if too small)."""
        h, w = height, width
        for k, s, p in self._windows():
            h = (h + 2 * p - k) // s + 1
            w = (w + 2 * p - k) // s + 1
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, in_channels, H, W) in [-1, 1] -> logits (N, 1, H', W'), unbounded."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (N, {self.in_channels}, H, W) input, got shape {tuple(x.shape)}")
        oh, ow = self.output_size(x.shape[-2], x.shape[-1])
        if oh < 1 or ow < 1:
            raise ValueError(
                f"input {x.shape[-2]}x{x.shape[-1]} is too small for a PatchDiscriminator with "
                f"n_layers={self.n_layers} (output would be {oh}x{ow})"
            )
        for name in self.layer_names():
            x = getattr(self, name)(x)
        return x
