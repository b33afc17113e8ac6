"""Drive the authors' public F-LSeSim code from a benchmark, next to sesim, on identical networks.

Nothing of the authors' code is part of sesim: it is imported at run time from a snapshot folder
(default ``../shared/reference/F-LSeSim`` beside the repository, or ``--reference PATH``), and
every benchmark that uses this module says so and skips that part when the folder is absent.

What this module does to that code, and nothing else:

* ``torchvision.models.vgg16`` is replaced, for the whole process, by a function that builds the
  torchvision VGG16 and loads a given state-dict file (``pretrained=True`` would download the
  ImageNet weights, which cannot be fetched here). sesim gets the same file as
  ``--backbone vgg16 --backbone-weights FILE``, so both sides run the same VGG16.
* Their ``SCModel`` is built through their own option parser (``options.train_options``) from
  the command line of their released script ``scripts/train_sc.sh`` (minus data, GPU and display
  arguments), with ``--gpu_ids -1`` (CPU) or the CUDA index of the benchmark's device, an explicit
  crop size and a scratch checkpoint folder.
* Their generator and discriminator weights are copied into sesim's ``public-code`` networks,
  which have the same layers in the same order (checked parameter by parameter, and the copied
  networks are checked to give the same outputs); for LSeSim their 1x1-conv heads are copied too.

Their model is timed as it is: it builds three VGG16 copies (two unused at lambda 0) and, with
``--learned_attn``, turns ``requires_grad`` on for VGG16 in the head step (its learning rate is 0),
so VGG16 weight gradients are computed and discarded.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torchvision
from torch import nn

from . import ROOT

DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "F-LSeSim"

#: Their released training script's loss settings (scripts/train_sc.sh), FSeSim; LSeSim adds --learned_attn --augment
RELEASED_ARGS = ("--model", "sc", "--lambda_spatial", "10", "--lambda_gradient", "0", "--attn_layers", "4,7,9",
                 "--loss_mode", "cos", "--gan_mode", "lsgan", "--direction", "AtoB", "--patch_size", "64")
LEARNED_ARGS = ("--learned_attn", "--augment")
#: Their attn_layers 4, 7, 9 index relu1_1 .. relu5_3: these are the names sesim uses for them
ATTN_LAYER_NAMES = ("relu3_1", "relu4_1", "relu4_3")


class ReferenceMissing(RuntimeError):
    """The authors' code is not on this machine (a user's checkout has no ``../shared``)."""


def find_reference(path: str | Path | None = None) -> Path:
    """The F-LSeSim snapshot folder (``path`` or :data:`DEFAULT_REFERENCE`), or :class:`ReferenceMissing`."""
    folder = Path(path) if path else DEFAULT_REFERENCE
    if not (folder / "models" / "sc_model.py").is_file():
        raise ReferenceMissing(f"the authors' F-LSeSim code was not found at {folder} (expected models/sc_model.py); "
                               "pass --reference PATH to a snapshot of github.com/lyndonzheng/F-LSeSim")
    return folder.resolve()


def reference_commit(folder: Path) -> str:
    commit = folder / "COMMIT"
    return commit.read_text().strip() if commit.is_file() else "unknown"


def random_vgg16_file(path: Path, seed: int = 0) -> Path:
    """Save a randomly initialised torchvision VGG16 state dict (the ImageNet file cannot be fetched here)."""
    torch.manual_seed(seed)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


_VGG_FILE: list[Path] = []


def _vgg16_from_file(*args, pretrained: bool = False, weights=None, **kwargs) -> nn.Module:
    net = _ORIGINAL_VGG16(weights=None, **kwargs)
    if (pretrained or weights is not None) and _VGG_FILE:
        net.load_state_dict(torch.load(_VGG_FILE[0], map_location="cpu", weights_only=True))
    return net


_ORIGINAL_VGG16 = torchvision.models.vgg16


def import_reference(folder: Path, vgg16_file: Path) -> None:
    """Put the authors' code on ``sys.path`` and make their ``vgg16(pretrained=True)`` load ``vgg16_file``."""
    _VGG_FILE[:] = [Path(vgg16_file)]
    torchvision.models.vgg16 = _vgg16_from_file
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    for name in ("models", "options", "data", "util"):  # their top-level packages; sesim has none of these names
        mod = sys.modules.get(name)
        if mod is not None and not str(getattr(mod, "__file__", "") or "").startswith(str(folder)):
            raise RuntimeError(f"a different top-level module {name!r} is already imported ({mod.__file__})")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Their code prints options, network summaries and 'initialize network with ...' lines."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def gpu_ids(device: str | torch.device) -> str:
    """Their ``--gpu_ids`` for a torch device: ``-1`` (CPU) or the CUDA index."""
    device = torch.device(device)
    return str(device.index or 0) if device.type == "cuda" else "-1"


def reference_args(size: int, learned: bool, patch_size: int, checkpoints: Path, device: str = "cpu") -> list[str]:
    args = [*RELEASED_ARGS, *(LEARNED_ARGS if learned else ())]
    i = args.index("--patch_size")
    args[i + 1] = str(patch_size)
    return [*args, "--dataroot", str(checkpoints), "--checkpoints_dir", str(checkpoints), "--name", "bench",
            "--gpu_ids", gpu_ids(device), "--display_id", "-1", "--batch_size", "1", "--crop_size", str(size),
            "--load_size", str(size)]


class ReferenceModel:
    """The authors' ``SCModel``, built from their option parser; ``step()`` is ``optimize_parameters()``."""

    def __init__(self, folder: Path, vgg16_file: Path, size: int, learned: bool, patch_size: int,
                 scratch: Path | None = None, device: str = "cpu") -> None:
        import_reference(folder, vgg16_file)
        self._tmp = None
        if scratch is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sesim-ref-")
            scratch = Path(self._tmp.name)
        argv = reference_args(size, learned, patch_size, scratch, device)
        saved = sys.argv
        sys.argv = ["train.py", *argv]
        try:
            with _quiet():
                from options.train_options import TrainOptions  # noqa: PLC0415 (their code, on sys.path now)
                from models import create_model  # noqa: PLC0415

                self.opt = TrainOptions().parse()
                self.model = create_model(self.opt)
        finally:
            sys.argv = saved
        self.learned = learned
        self.size = size
        self.argv = argv

    def data(self, a: torch.Tensor, b: torch.Tensor, a_aug: torch.Tensor | None = None,
             b_aug: torch.Tensor | None = None) -> dict:
        """Their data loader's batch dict from ``(1, 3, S, S)`` images in [-1, 1]."""
        batch = {"A": a, "B": b, "A_paths": ["a.png"], "B_paths": ["b.png"]}
        if self.learned:
            batch.update(A_aug=a if a_aug is None else a_aug, B_aug=b if b_aug is None else b_aug)
        return batch

    def initialize(self, batch: dict) -> None:
        """What their train.py does on the first batch: data-dependent init (builds the heads), setup."""
        with _quiet():
            self.model.data_dependent_initialize(batch)
            self.model.setup(self.opt)
            self.model.parallelize()

    def step(self, batch: dict) -> None:
        """One training iteration as their train.py runs it: ``set_input`` + ``optimize_parameters``."""
        self.model.set_input(batch)
        self.model.optimize_parameters()

    def heads(self) -> list[nn.Module]:
        """Their LSeSim heads, one per attention layer (built by :meth:`initialize`)."""
        loss = self.model.criterionSpatial
        return [getattr(loss, f"conv_{i}") for i in range(len(ATTN_LAYER_NAMES))]

    def translate(self, x: torch.Tensor) -> torch.Tensor:
        """Their test-time generator forward (``model.test()``: ``forward`` under ``no_grad``)."""
        self.model.set_input({"A": x, "B": x, "A_paths": ["a.png"], "B_paths": ["b.png"]})
        self.model.test()
        return self.model.fake_B

    def modules(self) -> dict[str, nn.Module]:
        m = self.model
        out = {"G": m.netG, "D": m.netD, "VGG16": m.netPre, "loss": m.criterionSpatial}
        out["unused VGG16 copies (style, perceptual)"] = nn.ModuleList([m.criterionStyle, m.criterionFeature])
        return out


def copy_parameters(src: nn.Module, dst: nn.Module, what: str) -> int:
    """Copy ``src``'s parameters into ``dst`` in order; the shapes must agree one by one."""
    ps, pd = list(src.parameters()), list(dst.parameters())
    if len(ps) != len(pd) or any(a.shape != b.shape for a, b in zip(ps, pd)):
        raise ValueError(f"{what}: the architectures differ ({len(ps)} vs {len(pd)} parameter tensors)")
    with torch.no_grad():
        for a, b in zip(ps, pd):
            b.copy_(a)
    return sum(p.numel() for p in ps)


def copy_heads(ref_heads: Sequence[nn.Module], structure: nn.Module) -> None:
    """Their ``conv_i`` = Sequential(conv1x1, ReLU, conv1x1) -> sesim's ``StructureHead`` (reduce, project)."""
    for head, name in zip(ref_heads, structure.layers):
        ours = structure.heads[name]
        with torch.no_grad():
            ours.reduce.weight.copy_(head[0].weight)
            ours.reduce.bias.copy_(head[0].bias)
            ours.project.weight.copy_(head[2].weight)
            ours.project.bias.copy_(head[2].bias)


def copy_networks(ref: ReferenceModel, method: nn.Module, check_size: int = 32) -> dict[str, float]:
    """Give sesim's ``public-code`` method the reference model's G, D (and LSeSim heads) weights.

    Returns the largest absolute output difference of the copied G and D on a random input
    (``check_size`` px), which must be float rounding: a larger value means the architectures differ.
    """
    copy_parameters(ref.model.netG, method.G, "generator")
    copy_parameters(ref.model.netD, method.D, "discriminator")
    if ref.learned:
        copy_heads(ref.heads(), method.structure)
    device = next(method.G.parameters()).device
    x = (torch.rand(1, 3, check_size, check_size, generator=torch.Generator().manual_seed(7)) * 2 - 1).to(device)
    with torch.no_grad():
        g_ref, _ = ref.model.netG(x)
        d_ref = ref.model.netD(x)
        diff = {"G": float((g_ref - method.G(x)).abs().max()), "D": float((d_ref - method.D(x)).abs().max())}
    if max(diff.values()) > 1e-4:
        raise ValueError(f"copied networks disagree with the reference's: {diff}")
    return diff
