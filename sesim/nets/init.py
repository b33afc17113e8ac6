"""Weight initialisation schemes of CycleGAN / F-LSeSim (``init_weights`` in their ``networks.py``)."""

from __future__ import annotations

from typing import TypeVar

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..ops import check_choice

__all__ = ["init_weights", "INIT_KINDS"]

INIT_KINDS = ("normal", "xavier", "kaiming", "orthogonal")

_ModuleT = TypeVar("_ModuleT", bound=nn.Module)

# Layers whose ``weight`` is a conv/linear kernel.
_WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def init_weights(module: _ModuleT, kind: str = "normal", gain: float = 0.02) -> _ModuleT:
    """Initialise all conv / conv-transpose / linear layers (and BatchNorms) of ``module`` in place.

    Kernels (``weight`` of Conv*/ConvTranspose*/Linear):

    * ``"normal"``: N(0, gain), i.e. std = ``gain`` (CycleGAN's default, gain 0.02).
    * ``"xavier"``: ``xavier_normal_`` with ``gain``, std = gain * sqrt(2 / (fan_in + fan_out)).
      This is the default of the F-LSeSim code (with gain 0.02).
    * ``"kaiming"``: ``kaiming_normal_(a=0, mode="fan_in")``, std = sqrt(2 / fan_in); ``gain`` is ignored
      (as in CycleGAN).
    * ``"orthogonal"``: ``orthogonal_`` with ``gain`` (the kernel flattened to (out, in*k*k) has
      orthogonal rows or columns scaled by ``gain``).

    Biases of those layers are set to 0. BatchNorm (any ``_BatchNorm``) weights are drawn from
    N(1, gain) and their biases set to 0, for every kind. Other layers (including affine
    InstanceNorm) keep their PyTorch defaults. Randomness comes from torch's global RNG.

    Returns:
        ``module`` itself, for chaining (``net = init_weights(Net(), "xavier")``).

    Raises:
        ValueError: unknown ``kind``.
    """
    check_choice("init kind", kind, INIT_KINDS)
    for m in module.modules():
        if isinstance(m, _WEIGHT_LAYERS):
            weight = m.weight
            if kind == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            else:  # orthogonal
                nn.init.orthogonal_(weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BatchNorm):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
