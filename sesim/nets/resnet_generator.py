"""ResNet-based image-to-image generator (Johnson et al. 2016 / CycleGAN).

This is the generator used by CycleGAN and, one-sided, by the single-modal
F/LSeSim model ("The Spatially-Correlative Loss for Various Image Translation
Tasks", CVPR 2021)::

    stem    reflection-pad 3, conv7x7 (ngf), norm, ReLU            H   x W
    down1   conv3x3 stride 2 (2*ngf), norm, ReLU                    H/2 x W/2
    down2   conv3x3 stride 2 (4*ngf), norm, ReLU                    H/4 x W/4
    blocks  n_blocks residual blocks at 4*ngf (block1 .. blockN)    H/4 x W/4
    up1     convT3x3 stride 2 (2*ngf), norm, ReLU                   H/2 x W/2
    up2     convT3x3 stride 2 (ngf), norm, ReLU                     H   x W
    to_rgb  reflection-pad 3, conv7x7 (out_channels), tanh          H   x W

With ``antialias=True`` (the public CUT / F-LSeSim generator) the resampling layers become
``down*``: conv3x3 stride 1, norm, ReLU, ``blur`` (:class:`~sesim.nets.blur.BlurDownsample`) and
``up*``: ``blur`` (:class:`~sesim.nets.blur.BlurUpsample`), conv3x3 stride 1, norm, ReLU; shapes
and layer names of the stages are unchanged. ``upsample`` chooses the ``up*`` layers on their own:
``"transposed"`` (CycleGAN), ``"blur"`` (the public code's) or ``"nearest"`` (resize-convolution,
Odena et al. 2016: nearest-neighbour x2, then conv3x3 -- every output pixel sees the same number
of taps, so no checkerboard, and it is sharper than the blur).

Every layer is reachable by name (``gen.stem.conv``, ``gen.blocks.block3``,
``gen.up2.norm`` ...); nothing needs to be addressed by integer index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from ..ops import check_choice
from .blur import BlurDownsample, BlurUpsample
from .described import Described
from .norm import InstanceNorm2d

__all__ = ["ResnetBlock", "ResnetGenerator", "conv_block", "make_norm", "NORMS", "PADDINGS", "UPSAMPLINGS"]

NORMS = ("instance", "batch", "none")
PADDINGS = ("reflect", "replicate", "zero")
UPSAMPLINGS = ("transposed", "blur", "nearest")


def make_norm(norm: str, channels: int) -> nn.Module:
    """Build the normalisation layer named ``norm`` for ``channels`` channels.

    * ``"instance"``: ``InstanceNorm2d(affine=False, track_running_stats=False)``
      (the CycleGAN default; :class:`sesim.nets.norm.InstanceNorm2d`, on the faster kernel),
    * ``"batch"``: ``BatchNorm2d`` (affine, with running statistics),
    * ``"none"``: ``nn.Identity``.
    """
    if norm == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def conv_block(cin: int, cout: int, kernel: int, stride: int, norm: str | None, bias: bool, act: tuple[str, nn.Module],
               antialias: bool = False) -> nn.Sequential:
    """Named layers ``conv`` (zero padding 1), ``norm`` (left out when ``norm`` is None) and the activation
    ``act`` (its name and module). With ``antialias`` a stride-2 block's conv has stride 1 and a ``blur``
    (:class:`~sesim.nets.blur.BlurDownsample`) after the activation halves the size instead."""
    blur = antialias and stride == 2
    layers = [("conv", nn.Conv2d(cin, cout, kernel, stride=1 if blur else stride, padding=1, bias=bias))]
    if norm is not None:
        layers.append(("norm", make_norm(norm, cout)))
    layers.append(act)
    if blur:
        layers.append(("blur", BlurDownsample(cout)))
    return nn.Sequential(OrderedDict(layers))


def _uses_bias(norm: str) -> bool:
    """CycleGAN convention: conv bias is on unless followed by BatchNorm (whose shift makes it redundant)."""
    return norm != "batch"


def _padded_conv(
    in_channels: int, out_channels: int, kernel_size: int, padding: str, bias: bool
) -> list[tuple[str, nn.Module]]:
    """A 'same'-size stride-1 conv as named layers: ``pad`` + ``conv`` (reflect/replicate) or a zero-padded ``conv``."""
    check_choice("padding", padding, PADDINGS)
    p = kernel_size // 2
    if padding == "zero":
        return [("conv", nn.Conv2d(in_channels, out_channels, kernel_size, padding=p, bias=bias))]
    pad = nn.ReflectionPad2d(p) if padding == "reflect" else nn.ReplicationPad2d(p)
    return [("pad", pad), ("conv", nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias))]


class ResnetBlock(nn.Module):
    """Residual block ``x + body(x)`` with ``body`` = pad, conv3x3, norm, ReLU, pad, conv3x3, norm.

    Input and output: (N, C, H, W), same shape. With reflection padding, H and W must be >= 2.
    Layers are named ``body.pad1``, ``body.conv1``, ``body.norm1``, ``body.relu``,
    ``body.pad2``, ``body.conv2``, ``body.norm2`` (no ``pad*`` with zero padding).
    """

    def __init__(self, channels: int, norm: str = "instance", padding: str = "reflect") -> None:
        super().__init__()
        bias = _uses_bias(norm)
        layers: list[tuple[str, nn.Module]] = []
        for i in (1, 2):
            layers += [(f"{name}{i}", m) for name, m in _padded_conv(channels, channels, 3, padding, bias)]
            layers.append((f"norm{i}", make_norm(norm, channels)))
            if i == 1:
                layers.append(("relu", nn.ReLU(inplace=True)))
        self.body = nn.Sequential(OrderedDict(layers))

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        return x + self.body(x)


class ResnetGenerator(Described):
    """CycleGAN / Johnson ResNet generator mapping images to images of the same size.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        ngf: width of the first layer; the bottleneck has ``4 * ngf`` channels.
        n_blocks: number of residual blocks at the bottleneck (9 for 256 px in CycleGAN, 6 for 128 px).
        norm: ``"instance"`` (default, non-affine InstanceNorm), ``"batch"`` or ``"none"``.
            Conv biases are enabled for ``"instance"``/``"none"`` and disabled for ``"batch"``.
        padding: padding of the stride-1 convolutions (stem, residual blocks, to_rgb):
            ``"reflect"`` (default), ``"replicate"`` or ``"zero"``. The stride-2 downsampling convs
            always zero-pad by 1, as in CycleGAN.
        antialias: blur-pool downsampling and blur upsampling instead of strided and transposed
            convolutions (see the module docstring); same parameter count.
        upsample: ``"transposed"``, ``"blur"`` or ``"nearest"`` (see the module docstring);
            default ``None``: ``"blur"`` with ``antialias``, else ``"transposed"``.

    Input: (N, in_channels, H, W), nominally in [-1, 1]. H and W must be multiples of
    :attr:`stride` (= 4) so that the two stride-2 downsamplings are exactly undone by the two
    upsamplings; with reflection padding they must also be at least 8 (the bottleneck is
    reflection-padded by 1, which needs a size of >= 2 there). Otherwise ``forward`` raises
    ``ValueError``.

    Output: (N, out_channels, H, W) in [-1, 1] (tanh).

    With the defaults (ngf=64, n_blocks=9, instance norm) the network has 11,378,179 parameters.
    """

    #: Total downsampling factor; input H and W must be multiples of it.
    stride: int = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        padding: str = "reflect",
        antialias: bool = False,
        upsample: str | None = None,
    ) -> None:
        super().__init__()
        upsample = upsample or ("blur" if antialias else "transposed")
        check_choice("upsample", upsample, UPSAMPLINGS)
        check_choice("norm", norm, NORMS)
        check_choice("padding", padding, PADDINGS)
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.ngf = ngf
        self.n_blocks = n_blocks
        self.padding = padding
        bias = _uses_bias(norm)

        # Stem: 7x7 conv at full resolution.
        self.stem = nn.Sequential(
            OrderedDict(
                _padded_conv(in_channels, ngf, 7, padding, bias)
                + [("norm", make_norm(norm, ngf)), ("relu", nn.ReLU(inplace=True))]
            )
        )
        # Two stride-2 downsamplings (conv3x3, norm, ReLU).
        self.down1 = conv_block(ngf, ngf * 2, 3, 2, norm, bias, ("relu", nn.ReLU(inplace=True)), antialias)
        self.down2 = conv_block(ngf * 2, ngf * 4, 3, 2, norm, bias, ("relu", nn.ReLU(inplace=True)), antialias)
        # Residual bottleneck.
        self.blocks = nn.Sequential(
            OrderedDict((f"block{i}", ResnetBlock(ngf * 4, norm, padding)) for i in range(1, n_blocks + 1))
        )
        # Two stride-2 upsamplings (exact x2: k3, s2, p1, output_padding 1).
        self.up1 = self._up(ngf * 4, ngf * 2, norm, bias, upsample)
        self.up2 = self._up(ngf * 2, ngf, norm, bias, upsample)
        # Back to image space. CycleGAN keeps the bias here regardless of the norm.
        self.to_rgb = nn.Sequential(
            OrderedDict(_padded_conv(ngf, out_channels, 7, padding, True) + [("tanh", nn.Tanh())])
        )

    @staticmethod
    def _up(cin: int, cout: int, norm: str, bias: bool, upsample: str = "transposed") -> nn.Sequential:
        if upsample == "blur":
            layers = [("blur", BlurUpsample(cin)), ("conv", nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=bias))]
        elif upsample == "nearest":
            layers = [("resize", nn.Upsample(scale_factor=2, mode="nearest")),
                      ("conv", nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=bias))]
        else:
            layers = [("conv", nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=bias))]
        layers += [("norm", make_norm(norm, cout)), ("relu", nn.ReLU(inplace=True))]
        return nn.Sequential(OrderedDict(layers))

    # ------------------------------------------------------------------ layers
    def layer_names(self) -> list[str]:
        """Names accepted by :meth:`encode`, in forward order.

        ``"input"`` (the raw input), ``"stem"``, ``"down1"``, ``"down2"``, ``"block1"`` ..
        ``f"block{n_blocks}"``, ``"up1"``, ``"up2"``, ``"output"`` (after tanh). Each name
        denotes the output of that stage (after its norm and ReLU).
        """
        return ["input", *(name for name, _ in self._stages()), "output"]

    def layer_channels(self) -> dict[str, int]:
        """Number of channels of each :meth:`layer_names` activation."""
        c = {"input": self.in_channels, "stem": self.ngf, "down1": self.ngf * 2, "down2": self.ngf * 4}
        c.update({f"block{i}": self.ngf * 4 for i in range(1, self.n_blocks + 1)})
        c.update({"up1": self.ngf * 2, "up2": self.ngf, "output": self.out_channels})
        return c

    def _stages(self) -> list[tuple[str, nn.Module]]:
        """(name, module) pairs in forward order, excluding input/output pseudo-layers."""
        stages: list[tuple[str, nn.Module]] = [("stem", self.stem), ("down1", self.down1), ("down2", self.down2)]
        stages += list(self.blocks.named_children())
        stages += [("up1", self.up1), ("up2", self.up2)]
        return stages

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D (N, C, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(
                f"ResnetGenerator needs H and W to be multiples of {self.stride}, got {h}x{w}; "
                f"crop or resize the input (e.g. to {h - h % self.stride}x{w - w % self.stride})"
            )
        min_size = 2 * self.stride if self.padding != "zero" else self.stride
        if h < min_size or w < min_size:
            raise ValueError(f"ResnetGenerator with {self.padding} padding needs H, W >= {min_size}, got {h}x{w}")

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """x: (N, in_channels, H, W) in [-1, 1], H and W multiples of 4 -> (N, out_channels, H, W) in [-1, 1]."""
        self._check_input(x)
        for _, module in self._stages():
            x = module(x)
        return self.to_rgb(x)

    def encode(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Return intermediate activations by name (e.g. for PatchNCE-style losses).

        Args:
            x: (N, in_channels, H, W) in [-1, 1], H and W multiples of 4.
            layers: names from :meth:`layer_names`, e.g. ``["stem", "down1", "down2", "block1", "block5"]``.

        Returns:
            ``{name: activation}`` for each requested name (in the order requested).
            ``stem``/``up2``: (N, ngf, H, W); ``down1``/``up1``: (N, 2*ngf, H/2, W/2);
            ``down2``/``block*``: (N, 4*ngf, H/4, W/4); ``input``: x itself; ``output``: the
            generator output in [-1, 1]. Computation stops after the last requested layer.
        """
        self._check_input(x)
        valid = self.layer_names()
        wanted = list(dict.fromkeys(layers))
        unknown = [name for name in wanted if name not in valid]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; valid names are {valid}")
        feats: dict[str, Tensor] = {}
        for name, activation in self._activations(x):
            if name in wanted:
                feats[name] = activation
            if len(feats) == len(wanted):
                break
        return {name: feats[name] for name in wanted}

    def _activations(self, x: Tensor) -> Iterator[tuple[str, Tensor]]:
        """``(name, activation)`` of each :meth:`layer_names` entry in forward order, computed as they are asked for."""
        yield "input", x
        for name, module in self._stages():
            x = module(x)
            yield name, x
        yield "output", self.to_rgb(x)
