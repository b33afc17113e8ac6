"""Export a run's generator to a file that runs without sesim.

Formats:

- ``onnx``: ONNX through ``torch.onnx.export(dynamo=True)`` (needs the ``onnx`` and ``onnxscript``
  packages: ``pip install "sesim[export]"``), with dynamic batch, height and width;
- ``torchscript``: the generator traced, inside a scripted any-size wrapper (loads with
  ``torch.jit.load``; PyTorch now marks TorchScript as deprecated).

The exported module takes ``(N, C, H, W)`` images in [-1, 1] of any height and width (>= 8):
it reflection-pads to the generator's stride, translates and crops back, like ``sesim translate``.
A ``--mode exemplar`` run exports its correspondence network and generator as one module with two
inputs, ``condition`` ``(N, C, H, W)`` (any size >= 2 strides) and ``exemplar`` ``(N, C, H', W')``
(any size, the same ``N``): :class:`AnySizeExemplarTranslator`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .translate import TranslateError, load_run_generator

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}


def _pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Reflection-pad ``(N, C, H, W)`` at the bottom and right to multiples of ``stride``."""
    ph = (stride - x.shape[-2] % stride) % stride
    pw = (stride - x.shape[-1] % stride) % stride
    return F.pad(x, (0, pw, 0, ph), mode="reflect")


class AnySizeTranslator(nn.Module):
    """Wraps a generator so that inputs of any size >= 8 px come back at their own size."""

    def __init__(self, generator: nn.Module, stride: int = 4) -> None:
        super().__init__()
        self.generator = generator
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        return self.generator(_pad_to_stride(x, self.stride))[:, :, :h, :w]


class AnySizeExemplarTranslator(nn.Module):
    """An :class:`~sesim.nets.exemplar_translator.ExemplarTranslator` that takes conditions of any size
    (reflection-padded to its stride, cropped back) and exemplars of any size."""

    def __init__(self, translator: nn.Module, stride: int) -> None:
        super().__init__()
        self.translator = translator
        self.stride = stride

    def forward(self, condition: torch.Tensor, exemplar: torch.Tensor) -> torch.Tensor:
        h, w = condition.shape[-2], condition.shape[-1]
        return self.translator(_pad_to_stride(condition, self.stride), exemplar)[:, :, :h, :w]


def _save_onnx(model: nn.Module, args: tuple, input_names: list[str], dims: dict, path: Path) -> None:
    program = torch.onnx.export(model, args, input_names=input_names, output_names=["translation"],
                                dynamic_shapes=dims, dynamo=True, verbose=False)
    program.save(str(path))


def _export_generator(generator: nn.Module, channels: int, fmt: str, tmp: Path, example_size: int) -> None:
    """Write the one-input generator to ``tmp`` (see :func:`export_run`)."""
    model = AnySizeTranslator(generator, getattr(generator, "stride", 4)).eval()
    if fmt == "onnx":
        # an odd example size, so nothing in the exported graph can assume a multiple of the stride
        example = torch.rand(1, channels, example_size + 1, example_size + 3) * 2 - 1
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=8), 3: torch.export.Dim("width", min=8)}
        _save_onnx(model, (example,), ["image"], {"x": dims}, tmp)
    else:  # trace the size-agnostic convolutions, script the size-dependent padding around them
        traced = torch.jit.trace(generator, torch.rand(1, channels, 64, 64) * 2 - 1)
        torch.jit.script(AnySizeTranslator(traced, model.stride)).save(str(tmp))


def _export_exemplar(translator: nn.Module, channels: int, fmt: str, tmp: Path, example_size: int) -> None:
    """Write the two-input exemplar translator to ``tmp`` (see :func:`export_run`)."""
    s = translator.stride
    exemplar = torch.rand(2, channels, example_size + 5, example_size + 7) * 2 - 1  # batch 2: not specialised
    if fmt == "onnx":
        cond = torch.rand(2, channels, example_size + 3 * s + 1, example_size + 3 * s + 3)
        batch = torch.export.Dim("batch")
        dims = {"condition": {0: batch, 2: torch.export.Dim("height", min=2 * s),
                              3: torch.export.Dim("width", min=2 * s)},
                "exemplar": {0: batch, 2: torch.export.Dim("eheight", min=8), 3: torch.export.Dim("ewidth", min=8)}}
        _save_onnx(AnySizeExemplarTranslator(translator, s).eval(), (cond * 2 - 1, exemplar),
                   ["condition", "exemplar"], dims, tmp)
    else:  # trace the translator at a multiple of its stride, script the size-dependent padding around it
        traced = torch.jit.trace(translator, (torch.rand(2, channels, 4 * s, 5 * s) * 2 - 1, exemplar))
        torch.jit.script(AnySizeExemplarTranslator(traced, s)).save(str(tmp))


def export_run(run_dir: str | Path, output: str | Path | None = None, *, fmt: str = "onnx",
               direction: str = "AtoB", example_size: int = 64, overwrite: bool = False) -> Path:
    """Write the run's generator in ``fmt``; returns the file. Default output:
    ``RUN/generator[_BtoA].<ext>``."""
    if fmt not in FORMATS:
        raise TranslateError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    generator, cfg = load_run_generator(run_dir, direction=direction)
    stem = "generator" if direction == "AtoB" else f"generator_{direction}"
    path = Path(output) if output else run_dir / f"{stem}{FORMATS[fmt]}"
    if path.exists() and not overwrite:
        raise TranslateError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "onnx":
        _require_onnx()
    write = _export_exemplar if cfg.mode == "exemplar" else _export_generator
    with torch.no_grad():
        write(generator, cfg.data.channels, fmt, tmp, example_size)
    tmp.replace(path)
    return path


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise TranslateError(f"ONNX export needs the onnx and onnxscript packages ({err}); "
                             "install them with: pip install 'sesim[export]'") from None
