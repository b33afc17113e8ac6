"""Exact tiled inference for generators with image-wide normalisation statistics.

An instance-norm (or layer-norm, AdaIN) layer normalises with the mean and variance of its
*whole* input, so translating an image in independent tiles changes the result. This module
makes tiling exact anyway. A generator is described as a flat *program* of layers
(:func:`program_for`): spatial layers (padding, convolution, transposed convolution, nearest
upsampling), pointwise layers (activations, normalisations whose statistics are known), residual
markers and ``Store`` points where an activation is kept whole (in RAM or in a file on disk).
Between two ``Store`` points the program runs tile by tile:

- to compute an output tile, the input region it needs is derived layer by layer backwards
  (``needs``: a 3x3 convolution needs one more row and column on each side, a stride-2 layer
  twice the rows, ...); padding layers reflect/replicate/zero-fill only at the *image* border,
  so every tile sees exactly the values the whole image would;
- each normalisation layer whose statistics are not known yet gets its own pass over the image:
  the layers in front of it run tile by tile and the per-channel count, mean and sum of squared
  deviations of each tile are merged (Chan's parallel formula, float64). Then it is a pointwise
  layer, and the next pass can go further.

So the output equals whole-image inference up to float rounding (the statistics are summed in a
different order), for any tile size. Memory is that of the stored activations (the bottleneck
of a ResNet generator: ``4 * ngf`` channels at 1/4 resolution, two of them alive) plus one tile's
working set; with ``spill`` the stored activations live in files, and memory is one tile's
working set plus the input and output images. The price is compute: layers in front of a
normalisation are recomputed once per normalisation of the same stage (for the paper's ResNet
generator, 1.8x the CPU time of one whole-image forward: ``bench/tiled_memory.py``).

Images are ``(N, C, H, W)`` float32; H and W must be multiples of the generator's stride (the
caller pads, see :func:`sesim.translate.pad_to_multiple`).
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nets.blur import BlurDownsample, BlurUpsample
from .nets.munit import AdaIN, ConvLayer, LayerNorm2d, MultimodalGenerator
from .nets.munit import ResBlock as MunitResBlock
from .nets.resnet_generator import ResnetBlock, ResnetGenerator

__all__ = ["NotTileableError", "program_for", "run_program", "plan_memory", "Program"]

Span = tuple[int, int]  # [start, stop) along one axis
Box = tuple[Span, Span]  # rows, cols


class NotTileableError(ValueError):
    """The generator contains a layer this module cannot run tile by tile."""


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


class Op:
    """One layer of a program. Default: pointwise (same size, no halo)."""

    def out_len(self, n: int) -> int:
        return n

    def needs(self, span: Span, n: int) -> Span:
        """Input rows ``[lo, hi)`` (inside ``[0, n)``) needed for output rows ``span``."""
        return span

    def out_channels(self, c: int) -> int:
        return c

    def apply(self, x: Tensor, src: Box, dst: Box, size: tuple[int, int]) -> Tensor:
        """``x`` covers ``src`` of an input of full ``size``; returns the output over ``dst``."""
        raise NotImplementedError


@dataclass
class Pointwise(Op):
    fn: Callable[[Tensor], Tensor]
    name: str = "pointwise"

    def apply(self, x, src, dst, size):
        return self.fn(x)


def _pad_axis(x: Tensor, dim: int, src: Span, dst: Span, n: int, p: int, mode: str) -> Tensor:
    """Rows ``dst`` of the ``p``-padded axis ``dim`` of a length-``n`` image, from ``x`` holding rows ``src``.

    The rows inside the image are one slice; the few padded rows at an image border are gathered
    (reflect: ``-i`` / ``2(n-1) - i``, replicate: the border row) or zero-filled."""
    a, b = dst[0] - p, dst[1] - p  # unpadded row numbers wanted
    pieces = []
    for rows in (range(a, min(b, 0)), range(max(a, 0), min(b, n)), range(max(a, n), b)):
        if not rows:
            continue
        if 0 <= rows[0] < n:  # inside the image
            pieces.append(x.narrow(dim, rows[0] - src[0], len(rows)))
        elif mode == "zeros":
            shape = list(x.shape)
            shape[dim] = len(rows)
            pieces.append(x.new_zeros(shape))
        else:
            if mode == "reflect":
                idx = [(-i if i < 0 else 2 * (n - 1) - i) - src[0] for i in rows]
            else:
                idx = [min(max(i, 0), n - 1) - src[0] for i in rows]
            pieces.append(x.index_select(dim, torch.tensor(idx, device=x.device)))
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim)


@dataclass
class Pad(Op):
    """``ReflectionPad2d`` / ``ReplicationPad2d`` / zero padding by ``p`` on every side."""

    p: int
    mode: str  # reflect | replicate | zeros


    def out_len(self, n):
        return n + 2 * self.p

    def needs(self, span, n):
        lo, hi = span[0] - self.p, span[1] - self.p  # unpadded row numbers, may lie outside [0, n)
        if self.mode == "zeros":
            return max(lo, 0), max(min(hi, n), max(lo, 0))
        # reflected / replicated rows lie inside [0, n) but may extend the range
        cand = [lo, hi - 1]
        if lo < 0:
            cand.append(-lo if self.mode == "reflect" else 0)
        if hi > n:
            cand.append(2 * (n - 1) - (hi - 1) if self.mode == "reflect" else n - 1)
        cand = [min(max(c, 0), n - 1) for c in cand]
        return min(cand), max(cand) + 1

    def apply(self, x, src, dst, size):
        # fast path: one F.pad of the in-image slice, valid when every padded row mirrors rows of
        # that slice (it then starts or ends at the image border, as F.pad assumes)
        pads, view = [], x
        for axis, (s, d, n) in enumerate(zip(src, dst, size)):
            a, b = d[0] - self.p, d[1] - self.p
            lo, hi = max(a, 0), min(b, n)
            if hi <= lo:
                break
            before, after = max(-a, 0), max(b - n, 0)
            if self.mode == "reflect" and max(before, after) >= hi - lo:
                break
            view = view.narrow(2 + axis, lo - s[0], hi - lo)
            pads = [before, after] + pads  # F.pad lists the last dimension first
        else:
            if not any(pads):
                return view
            return F.pad(view, pads, mode="constant" if self.mode == "zeros" else self.mode)
        for axis, (s, d, n) in enumerate(zip(src, dst, size)):
            x = _pad_axis(x, 2 + axis, s, d, n, self.p, self.mode)
        return x


class _Kernel(Op):
    weight: Tensor

    @property
    def k(self) -> int:
        """Kernel side."""
        return self.weight.shape[-1]


@dataclass
class Conv(_Kernel):
    """``F.conv2d`` without padding (a padded conv is ``Pad`` + ``Conv``)."""

    weight: Tensor
    bias: Tensor | None
    stride: int = 1
    dilation: int = 1
    groups: int = 1

    def out_len(self, n):
        return (n - self.dilation * (self.k - 1) - 1) // self.stride + 1

    def needs(self, span, n):
        a, b = span
        return a * self.stride, (b - 1) * self.stride + self.dilation * (self.k - 1) + 1

    def out_channels(self, c):
        return self.weight.shape[0]

    def apply(self, x, src, dst, size):
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _crop(y: Tensor, src: Box, dst: Box, scale: int = 1, padding: int = 0) -> Tensor:
    """The box ``dst`` of ``y``, a layer's output computed from its input box ``src``, where input row
    ``i`` starts output row ``i * scale - padding`` (default: ``y`` covers ``src`` itself)."""
    (r0, r1), (c0, c1) = ((d[0] + padding - s[0] * scale, d[1] + padding - s[0] * scale) for s, d in zip(src, dst))
    return y[:, :, r0:r1, c0:c1]


@dataclass
class ConvT(_Kernel):
    """``F.conv_transpose2d`` with stride ``s``, padding ``p`` and output padding ``op <= p``."""

    weight: Tensor
    bias: Tensor | None
    stride: int
    padding: int
    output_padding: int = 0
    groups: int = 1

    def out_len(self, n):
        return (n - 1) * self.stride - 2 * self.padding + self.k + self.output_padding

    def needs(self, span, n):
        a, b = span
        s, p, k = self.stride, self.padding, self.k
        lo = max(0, -((-(a + p - k + 1)) // s))  # ceil
        hi = min(n - 1, (b - 1 + p) // s) + 1
        return lo, max(hi, lo + 1)

    def out_channels(self, c):
        return self.weight.shape[1] * self.groups

    def apply(self, x, src, dst, size):
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, 0, 0, self.groups)
        return _crop(y, src, dst, self.stride, self.padding)


@dataclass
class Upsample(Op):
    """Nearest-neighbour upsampling by an integer ``factor``."""

    factor: int


    def out_len(self, n):
        return n * self.factor

    def needs(self, span, n):
        a, b = span
        return a // self.factor, (b - 1) // self.factor + 1

    def apply(self, x, src, dst, size):
        y = F.interpolate(x, scale_factor=self.factor, mode="nearest")
        return _crop(y, src, dst, self.factor)


class Moments:
    """Running count, mean and sum of squared deviations per group (float64, Chan et al. merge)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, x: Tensor, dims: tuple[int, ...]) -> None:
        """Merge the moments of ``x`` over ``dims`` (one tile: float32 ``var_mean``, merged in float64)."""
        n = math.prod(x.shape[d] for d in dims)
        if n == 0:
            return
        var, mean = torch.var_mean(x, dims, correction=0)
        mean, m2 = mean.double(), var.double() * n
        if self.mean is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.n * n / total)
        self.n = total


@dataclass
class Norm(Op):
    """A normalisation with image-wide statistics, pointwise once :meth:`finish` has run.

    ``kind``: ``"instance"`` (per sample and channel, biased variance, ``(x - m) / sqrt(v + eps)``,
    as ``F.instance_norm``) or ``"layer"`` (per sample over C, H, W, unbiased std,
    ``(x - m) / (std + eps)``, as :class:`sesim.nets.munit.LayerNorm2d`). ``scale``/``shift``:
    the affine part, ``(C,)`` or ``(N, C)`` (AdaIN), or None.
    """

    kind: str
    eps: float
    scale: Tensor | None = None
    shift: Tensor | None = None
    moments: Moments = field(default_factory=Moments)
    mean: Tensor | None = None
    a: Tensor | None = None  # (N, C, 1, 1): the layer is x * a + b once the statistics are known
    b: Tensor | None = None

    @property
    def known(self) -> bool:
        return self.mean is not None

    def accumulate(self, x: Tensor) -> None:
        self.moments.add(x, (2, 3) if self.kind == "instance" else (1, 2, 3))

    def finish(self) -> None:
        """Turn the accumulated moments into the per-sample (and channel) affine ``x * a + b``."""
        m = self.moments
        if m.mean is None:
            raise RuntimeError("no statistics accumulated")
        if self.kind == "instance":
            inv = 1.0 / torch.sqrt(m.m2 / m.n + self.eps)  # (N, C)
        else:
            inv = 1.0 / (torch.sqrt(m.m2 / max(m.n - 1, 1)) + self.eps)  # (N,)
            inv = inv[:, None]
        mean = m.mean if self.kind == "instance" else m.mean[:, None]
        a, b = inv, -mean * inv
        if self.scale is not None:
            scale, shift = self.scale.double(), self.shift.double()
            a, b = a * scale, b * scale + shift
        self.mean = m.mean.float()
        self.a, self.b = a.float()[:, :, None, None], b.float()[:, :, None, None]

    def apply(self, x, src, dst, size):
        if not self.known:
            raise RuntimeError("normalisation statistics are not known yet")
        return torch.addcmul(self.b, x, self.a)


@dataclass
class Save(Op):
    """Remember the activation here as the skip input of the matching :class:`Add`.

    ``Save``, ``Add`` and ``Store`` are markers: the executor handles them, they have no ``apply``."""

    name: str


@dataclass
class Add(Op):
    """Add the activation remembered by the :class:`Save` of the same name (a residual connection)."""

    name: str


@dataclass
class Store(Op):
    """Keep the activation here whole (RAM or disk) instead of recomputing what produced it."""


Program = list  # list[Op]


# ----------------------------------------------------------------------------------------------
# From modules to programs
# ----------------------------------------------------------------------------------------------


def _pad_amount(padding) -> int:
    pads = set(padding) if isinstance(padding, (tuple, list)) else {padding}
    if len(pads) != 1:
        raise NotTileableError(f"asymmetric padding {padding} is not supported")
    return int(next(iter(pads)))


def module_ops(m: nn.Module) -> list[Op]:
    """The program of one module (recursing into containers and the known blocks)."""
    if isinstance(m, nn.Sequential):
        return [op for child in m for op in module_ops(child)]
    if isinstance(m, ResnetBlock):
        name = f"skip{id(m)}"
        return [Store(), Save(name), *_split_block(module_ops(m.body)), Add(name), Store()]
    if isinstance(m, MunitResBlock):
        name = f"skip{id(m)}"
        return [Store(), Save(name), *module_ops(m.conv1), Store(), *module_ops(m.conv2), Add(name), Store()]
    if isinstance(m, ConvLayer):
        return [*module_ops(m.pad), *module_ops(m.conv), *module_ops(m.norm), *module_ops(m.act)]
    if isinstance(m, nn.ReflectionPad2d):
        return [Pad(_pad_amount(m.padding), "reflect")]
    if isinstance(m, nn.ReplicationPad2d):
        return [Pad(_pad_amount(m.padding), "replicate")]
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise NotTileableError(f"conv padding {m.padding!r}/{m.padding_mode} is not supported")
        p, d = _pad_amount(m.padding), _pad_amount(m.dilation)
        ops: list[Op] = [Pad(p, "zeros")] if p else []
        return ops + [Conv(m.weight, m.bias, _pad_amount(m.stride), d, m.groups)]
    if isinstance(m, nn.ConvTranspose2d):
        p, op = _pad_amount(m.padding), _pad_amount(m.output_padding)
        if op > p or _pad_amount(m.dilation) != 1:
            raise NotTileableError("transposed conv with output_padding > padding or dilation is not supported")
        return [ConvT(m.weight, m.bias, _pad_amount(m.stride), p, op, m.groups)]
    if isinstance(m, BlurDownsample):
        return [Pad(1, "reflect"), Conv(m.kernel, None, 2, 1, m.channels)]
    if isinstance(m, BlurUpsample):
        return [Pad(1, "replicate"), ConvT(m.kernel, None, 2, 3, 0, m.channels)]
    if isinstance(m, nn.InstanceNorm2d):
        if m.track_running_stats and not m.training:
            raise NotTileableError("instance norm with running statistics is not supported")
        return [Norm("instance", m.eps, m.weight if m.affine else None, m.bias if m.affine else None)]
    if isinstance(m, AdaIN):
        if m.scale is None:
            raise NotTileableError("AdaIN parameters are not set (no style code)")
        return [Norm("instance", m.eps, m.scale, m.shift)]
    if isinstance(m, LayerNorm2d):
        return [Norm("layer", m.eps, m.gamma, m.beta)]
    if isinstance(m, nn.BatchNorm2d):
        if m.training or not m.track_running_stats:
            raise NotTileableError("batch norm must be in eval mode with running statistics")
        return [Pointwise(m, "batchnorm")]
    if isinstance(m, nn.Upsample):  # the resize-convolution ``up*`` layers (upsample="nearest")
        factor = m.scale_factor
        if m.mode != "nearest" or m.size is not None or factor is None or isinstance(factor, tuple) \
                or float(factor) != int(factor) or int(factor) < 1:
            raise NotTileableError("only nearest upsampling by one integer factor is supported")
        return [Upsample(int(factor))]
    if isinstance(m, nn.ReLU):
        return [Pointwise(torch.relu, "relu")]
    if isinstance(m, nn.Tanh):
        return [Pointwise(torch.tanh, "tanh")]
    if isinstance(m, nn.Identity):
        return []
    raise NotTileableError(f"layer {type(m).__name__} is not supported by exact tiled inference")


def _split_block(body: list[Op]) -> list[Op]:
    """Store the first half of a residual body (after its first norm + activation), so the second
    half's statistics pass recomputes one conv, not two."""
    for i, op in enumerate(body):
        if isinstance(op, Norm):
            j = i + 1
            while j < len(body) and isinstance(body[j], Pointwise):
                j += 1
            return [*body[:j], Store(), *body[j:]]
    return body


def program_for(generator: nn.Module, style: Tensor | None = None, batch: int = 1) -> Program:
    """The program of a ResNet (:class:`~sesim.nets.resnet_generator.ResnetGenerator`) or
    MUNIT-style (:class:`~sesim.nets.munit.MultimodalGenerator`, with ``style`` ``(N or 1,
    style_dim)``, default the zero code) generator in eval mode.

    Raises:
        NotTileableError: another generator, or a layer that cannot be tiled.
    """
    if isinstance(generator, ResnetGenerator):
        ops: list[Op] = []
        for _, stage in generator._stages():
            ops += module_ops(stage)
            if stage is generator.down2:
                ops.append(Store())
        return _tidy(ops + module_ops(generator.to_rgb))
    if isinstance(generator, MultimodalGenerator):
        enc, dec = generator.content_encoder, generator.decoder
        ops = module_ops(enc.stem)
        for layer in enc.down:
            ops += module_ops(layer)
        ops.append(Store())
        for block in enc.blocks:
            ops += module_ops(block)
        if style is None:
            style = torch.zeros(1, generator.style_dim, device=next(generator.parameters()).device)
        style = style.reshape(-1, generator.style_dim).expand(batch, -1)
        dec.set_style_params(generator.style_mlp(style))
        try:
            for block in dec.blocks:
                ops += module_ops(block)
            for layer in dec.up:
                ops += [Upsample(2), *module_ops(layer)]
            ops += module_ops(dec.to_rgb) + [Pointwise(torch.tanh, "tanh")]
        finally:
            for layer in dec.adain_layers():
                layer.set_params(None, None)
        return _tidy(ops)
    raise NotTileableError(f"{type(generator).__name__} has no exact tiled program")


def _tidy(ops: list[Op]) -> list[Op]:
    """Drop repeated / trailing / leading Store markers."""
    out: list[Op] = []
    for op in ops:
        if isinstance(op, Store) and (not out or isinstance(out[-1], Store)):
            continue
        out.append(op)
    while out and isinstance(out[-1], Store):
        out.pop()
    return out


# ----------------------------------------------------------------------------------------------
# Whole-image activations (RAM or a file)
# ----------------------------------------------------------------------------------------------


class Activation:
    """An ``(N, C, H, W)`` float32 activation kept whole; read and written by boxes."""

    shape: tuple[int, int, int, int]

    def read(self, box: Box) -> Tensor:
        raise NotImplementedError

    def write(self, box: Box, value: Tensor) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RamActivation(Activation):
    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor
        self.shape = tuple(tensor.shape)

    @classmethod
    def empty(cls, shape, device) -> "RamActivation":
        return cls(torch.empty(shape, dtype=torch.float32, device=device))

    def read(self, box):
        (r0, r1), (c0, c1) = box
        return self.tensor[:, :, r0:r1, c0:c1]

    def write(self, box, value):
        (r0, r1), (c0, c1) = box
        self.tensor[:, :, r0:r1, c0:c1] = value

    def close(self):
        self.tensor = None


class DiskActivation(Activation):
    """Stored channels-last in an unlinked temporary file (gone when closed, or if the process dies);
    boxes are read and written row by row with ``pread``/``pwrite``, so the file never counts
    towards the process's resident memory."""

    def __init__(self, shape, directory: str | None = None) -> None:
        self.shape = tuple(shape)
        fd, path = tempfile.mkstemp(prefix=".sesim-tiles-", dir=directory)
        os.unlink(path)
        self.fd = fd
        n, c, h, w = self.shape
        os.ftruncate(fd, n * h * w * c * 4)

    def _rows(self, box):
        n, c, h, w = self.shape
        (r0, r1), (c0, c1) = box
        for i in range(n):
            for y in range(r0, r1):
                yield i, y - r0, ((i * h + y) * w + c0) * c * 4

    def read(self, box):
        (r0, r1), (c0, c1) = box
        n, c = self.shape[:2]
        buf = np.empty((n, r1 - r0, c1 - c0, c), dtype=np.float32)
        size = (c1 - c0) * c * 4
        for i, y, offset in self._rows(box):
            got = os.preadv(self.fd, [memoryview(buf[i, y]).cast("B")], offset)
            if got != size:
                raise OSError(f"short read from the tile file ({got} of {size} bytes)")
        return torch.from_numpy(buf).permute(0, 3, 1, 2)

    def write(self, box, value):
        arr = value.detach().float().cpu().permute(0, 2, 3, 1).contiguous().numpy()
        for i, y, offset in self._rows(box):
            data = memoryview(arr[i, y]).cast("B")
            while data:
                written = os.pwrite(self.fd, data, offset)
                data, offset = data[written:], offset + written

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ----------------------------------------------------------------------------------------------
# Execution
# ----------------------------------------------------------------------------------------------


@dataclass
class Stage:
    """Ops between two Store points; ``sizes[j]``/``channels[j]`` describe the input of ``ops[j]``
    (``sizes[-1]``: the stage output)."""

    ops: list[Op]
    sizes: list[tuple[int, int]]
    channels: list[int]


def _stages(program: Program, size: tuple[int, int], channels: int) -> list[Stage]:
    stages, cur = [], []
    sizes, chans = [size], [channels]
    for op in program:
        if isinstance(op, Store):
            stages.append(Stage(cur, sizes, chans))
            cur, sizes, chans = [], [sizes[-1]], [chans[-1]]
            continue
        cur.append(op)
        h, w = sizes[-1]
        sizes.append((op.out_len(h), op.out_len(w)))
        chans.append(op.out_channels(chans[-1]))
        if min(sizes[-1]) < 1:
            raise ValueError(f"image of {size[0]}x{size[1]} px is too small for this generator")
    stages.append(Stage(cur, sizes, chans))
    return [s for s in stages if s.ops]


def _spans_back(stage: Stage, k: int, box: Box) -> list[Box]:
    """Boxes needed at positions 0..k of ``stage`` for output ``box`` at position ``k``."""
    boxes: list[Box] = [box] * (k + 1)
    skip_needs: dict[str, Box] = {}
    for j in range(k - 1, -1, -1):
        op, nxt = stage.ops[j], boxes[j + 1]
        if isinstance(op, Add):
            skip_needs[op.name] = nxt
            boxes[j] = nxt
        elif isinstance(op, Save) and op.name in skip_needs:
            s = skip_needs.pop(op.name)
            boxes[j] = tuple((min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(nxt, s))
        else:
            h, w = stage.sizes[j]
            boxes[j] = (op.needs(nxt[0], h), op.needs(nxt[1], w))
    return boxes


def _compute(stage: Stage, src: Activation, saved: dict[str, Activation], k: int, box: Box) -> Tensor:
    """The activation at position ``k`` of ``stage`` (input of ``ops[k]``) over ``box``, from the
    stage input ``src`` and the stored residual skips ``saved``."""
    boxes = _spans_back(stage, k, box)
    x = src.read(boxes[0])
    local: dict[str, tuple[Tensor, Box]] = {}
    for j in range(k):
        op = stage.ops[j]
        if isinstance(op, Save):
            local[op.name] = (x, boxes[j])
            x = _crop(x, boxes[j], boxes[j + 1])
        elif isinstance(op, Add):
            if op.name in local:
                skip, have = local.pop(op.name)
                x = x + _crop(skip, have, boxes[j])
            else:
                x = x + saved[op.name].read(boxes[j]).to(x.device)
        else:
            x = op.apply(x, boxes[j], boxes[j + 1], stage.sizes[j])
    return x


def _tiles(size: tuple[int, int], tile: int) -> Iterator[Box]:
    h, w = size
    for r in range(0, h, tile):
        for c in range(0, w, tile):
            yield (r, min(r + tile, h)), (c, min(c + tile, w))


def _n_tiles(size: tuple[int, int], tile: int) -> int:
    return math.ceil(size[0] / tile) * math.ceil(size[1] / tile)


#: working memory of a layer over what its input and output tensors hold (oneDNN reorders
#: activations into blocked layouts; bench/tiled_memory.py checks the plan against peak RSS)
WORKSPACE_FACTOR = 1.5


def _tile_bytes(stage: Stage, k: int, tile: int, batch: int) -> int:
    """Working memory of computing one ``tile`` x ``tile`` box at position ``k``: the largest
    input + output (+ residual skip held locally) of any layer on the way, times
    :data:`WORKSPACE_FACTOR`, plus a copy of the result (for the write)."""
    h, w = stage.sizes[k]
    t_h, t_w = min(tile, h), min(tile, w)
    # a box in the middle of the image has the largest halo on both sides
    mid = (((h - t_h) // 2, (h - t_h) // 2 + t_h), ((w - t_w) // 2, (w - t_w) // 2 + t_w))
    boxes = _spans_back(stage, k, mid)
    sizes = [batch * stage.channels[j] * (b[0][1] - b[0][0]) * (b[1][1] - b[1][0]) * 4 for j, b in enumerate(boxes)]
    held, peak = {}, sizes[0]
    for j in range(k):
        op = stage.ops[j]
        if isinstance(op, Save) and any(isinstance(o, Add) and o.name == op.name for o in stage.ops[j:k]):
            held[op.name] = sizes[j]
        elif isinstance(op, Add):
            held.pop(op.name, None)
        peak = max(peak, sizes[j] + sizes[j + 1] + sum(held.values()))
    return int(WORKSPACE_FACTOR * peak) + sizes[-1]


@dataclass
class Route:
    """Which whole activations one stage uses, by id (``"input"``, ``"output"`` or ``"a<i>"``, the
    new activation stage ``i`` writes)."""

    src: str  # the stage input
    dst: str  # the stage output: a new activation, or a stored skip it updates in place
    skips: dict[str, str]  # residual skip name -> the stored activation its Add reads
    free_src: bool  # nothing later reads ``src``: release it after this stage


def _routes(stages: list[Stage]) -> list[Route]:
    """The activations of each stage. A stage that adds a skip stored before its own input writes
    into that skip's activation (it reads the skip only at each tile's own box, so overwriting the
    box afterwards is safe) instead of a new one."""
    routes, skips, src = [], {}, "input"
    for i, stage in enumerate(stages):
        adds = [op.name for op in stage.ops if isinstance(op, Add)]
        target = next((name for name in adds if name in skips), None)
        if isinstance(stage.ops[0], Save):
            skips[stage.ops[0].name] = src
        if target is not None:
            dst = skips[target]
        else:
            dst = "output" if i == len(stages) - 1 else f"a{i}"
        stage_skips = dict(skips)
        for name in adds:
            skips.pop(name, None)
        routes.append(Route(src, dst, stage_skips, src != dst and src not in skips.values()))
        src = dst
    return routes


def _stored_peak(stages: list[Stage], batch: int) -> int:
    """Peak bytes of stored activations alive at once (the first input and last output are the
    caller's images and not counted)."""
    live: dict[str, int] = {}  # activation id -> bytes
    peak = 0
    for i, (stage, route) in enumerate(zip(stages, _routes(stages))):
        if route.dst == f"a{i}":
            h, w = stage.sizes[-1]
            live[route.dst] = batch * stage.channels[-1] * h * w * 4
        peak = max(peak, sum(live.values()))
        if route.free_src:
            live.pop(route.src, None)
    return peak


@dataclass
class MemoryPlan:
    """How a program runs on one input: bytes of the stored activations alive at once, bytes of
    the largest tile's working set, and whether the stored activations live in files."""

    stored_bytes: int
    tile_bytes: int
    spill: bool

    @property
    def ram_bytes(self) -> int:
        return self.tile_bytes + (0 if self.spill else self.stored_bytes)


MIN_TILE = 8


def plan_memory(program: Program, shape: tuple[int, int, int, int], budget: int | None = None,
                tile: int | None = None) -> MemoryPlan:
    """Memory of :func:`run_program` on an input of ``shape`` ``(N, C, H, W)`` within ``budget``
    bytes (None: unlimited; the image itself is not counted). The stored activations go to files
    when they would leave less than a quarter of the budget for tiles."""
    n, c, h, w = shape
    return _plan(_stages(program, (h, w), c), n, budget, tile)[0]


def _plan(stages: list[Stage], batch: int, budget: int | None, tile: int | None,
          spill: bool | None = None) -> tuple[MemoryPlan, dict[tuple[int, int], int]]:
    """The :class:`MemoryPlan` (``spill``: None decides) and the tile side of every pass position."""
    stored = _stored_peak(stages, batch)
    if spill is None:  # keep a quarter of the budget (at least what the smallest tiles need) for tiles
        spill = budget is not None and stored > budget - max(budget // 4, _smallest_tiles(stages, batch))
    tile_budget = None if budget is None else max(budget - (0 if spill else stored), 0)
    sides = _tile_sides(stages, tile_budget, batch, tile)
    worst = max(_tile_bytes(stages[i], k, side, batch) for (i, k), side in sides.items())
    return MemoryPlan(stored, worst, spill), sides


def _smallest_tiles(stages: list[Stage], batch: int) -> int:
    return max(_tile_bytes(stages[i], k, MIN_TILE, batch) for i, k, _ in _schedule(stages))


def _tile_sides(stages: list[Stage], budget: int | None, batch: int, tile: int | None) -> dict[tuple[int, int], int]:
    """Tile side of every pass position ``(stage, k)``: ``tile`` (or the whole image), lowered
    until one tile's working set fits ``budget``."""
    sides = {}
    for i, k, _ in _schedule(stages):
        h, w = stages[i].sizes[k]
        side = max(h, w) if tile is None else max(MIN_TILE, min(tile, max(h, w)))
        while budget is not None and side > MIN_TILE and _tile_bytes(stages[i], k, side, batch) > budget:
            side = max(MIN_TILE, side * 3 // 4)
        sides[(i, k)] = side
    return sides


@torch.inference_mode()
def run_program(program: Program, x: Tensor, *, budget: int | None = None, tile: int | None = None,
                spill: bool | None = None, spill_dir: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Run ``program`` on ``x`` ``(N, C, H, W)`` tile by tile; returns the output ``(N, C', H', W')``.

    Args:
        budget: bytes of working memory (stored activations unless spilled, plus one tile); the
            tile side is lowered until a tile fits. None: no limit.
        tile: largest tile side in pixels at each pass's resolution (None: the whole image).
        spill: keep stored activations in unlinked temporary files (in ``spill_dir``, default the
            system temp folder); None decides from ``budget`` (see :func:`plan_memory`).
        progress: called as ``progress(done, total)`` after each tile.

    Normalisation statistics are written into the program's :class:`Norm` layers: run a program once.
    """
    n, c, h, w = x.shape
    stages = _stages(program, (h, w), c)
    plan, sides = _plan(stages, n, budget, tile, spill)
    passes = _schedule(stages)
    total = sum(_n_tiles(stages[i].sizes[k], sides[(i, k)]) for i, k, _ in passes)
    done = 0

    routes = _routes(stages)
    acts: dict[str, Activation] = {"input": RamActivation(x)}
    try:
        for i, (stage, route) in enumerate(zip(stages, routes)):
            if route.dst not in acts:
                shape = (n, stage.channels[-1], *stage.sizes[-1])
                disk = plan.spill and route.dst != "output"
                acts[route.dst] = DiskActivation(shape, spill_dir) if disk else RamActivation.empty(shape, x.device)
            dst = acts[route.dst]
            compute = functools.partial(_compute, stage, acts[route.src],
                                        {name: acts[a] for name, a in route.skips.items()})
            for _, k, kind in (p for p in passes if p[0] == i):
                for box in _tiles(stage.sizes[k], sides[(i, k)]):
                    if kind == "stats":
                        stage.ops[k].accumulate(compute(k, box))
                    elif kind == "store":  # pre-norm values into dst, statistics on the way
                        y = compute(k, box)
                        stage.ops[k].accumulate(y)
                        dst.write(box, y)
                    elif kind == "tail":  # the rest of the stage is pointwise: apply it in place
                        y = dst.read(box)
                        for op in stage.ops[k:]:
                            y = op.apply(y, box, box, stage.sizes[k])
                        dst.write(box, y)
                    else:
                        dst.write(box, compute(k, box))
                    done += 1
                    if progress is not None:
                        progress(done, total)
                if kind in ("stats", "store"):
                    stage.ops[k].finish()
            if route.free_src:
                acts.pop(route.src).close()
        return acts[routes[-1].dst].tensor if routes else x
    finally:
        for a in acts.values():
            a.close()


def _schedule(stages: list[Stage]) -> list[tuple[int, int, str]]:
    """The passes: ``(stage, position, kind)`` with kind stats | store | tail | final."""
    passes = []
    last = len(stages) - 1
    for i, stage in enumerate(stages):
        norms = [k for k, op in enumerate(stage.ops) if isinstance(op, Norm) and not op.known]
        tail_ok = False
        if norms and i < last:
            k = norms[-1]
            tail_ok = all(isinstance(op, (Norm, Pointwise)) for op in stage.ops[k:])
        for k in norms[:-1] if tail_ok else norms:
            passes.append((i, k, "stats"))
        if tail_ok:
            passes += [(i, norms[-1], "store"), (i, norms[-1], "tail")]
        else:
            passes.append((i, len(stage.ops), "final"))
    return passes
