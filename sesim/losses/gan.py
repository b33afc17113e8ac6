"""Adversarial losses on raw discriminator logits.

All losses take *logits* (the PatchGAN output, no sigmoid), average over all elements
(batch and patch positions), and sum over scales when given a list of logit maps
(multi-scale discriminators).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import check_choice

__all__ = ["GANLoss", "GAN_MODES"]

GAN_MODES = ("lsgan", "vanilla", "nonsaturating", "hinge")

Logits = Tensor | Sequence[Tensor]


def _as_list(logits: Logits, what: str) -> list[Tensor]:
    if isinstance(logits, Tensor):
        return [logits]
    out = list(logits)
    if not out or not all(isinstance(t, Tensor) for t in out):
        raise TypeError(f"{what} must be a Tensor or a non-empty sequence of Tensors")
    return out


class GANLoss(nn.Module):
    """Adversarial loss for the discriminator and the generator.

    With z = D(x) the logits, ``s`` the sigmoid, and every term a mean over all elements:

    ``"lsgan"`` (least squares, the CycleGAN and F-LSeSim default)
        D: ``(z_real - 1)^2`` and ``z_fake^2``;  G: ``(z_fake - 1)^2``.
    ``"vanilla"`` (the original minimax game, Eq. 4 of the F-LSeSim paper)
        D: BCE-with-logits, real -> 1, fake -> 0, i.e. ``softplus(-z_real)`` and ``softplus(z_fake)``.
        G *minimises* ``log(1 - s(z_fake)) = -softplus(z_fake)``. This saturates: its gradient
        ``-s(z_fake)`` vanishes when D confidently rejects the fakes (z_fake << 0), which is
        exactly the situation early in training. Mostly useful for faithfulness to the paper.
    ``"nonsaturating"``
        D as ``"vanilla"``; G minimises ``-log s(z_fake) = softplus(-z_fake)``. Note this is
        what the CycleGAN / pix2pix / F-LSeSim code calls ``gan_mode="vanilla"``
        (``BCEWithLogitsLoss`` against target 1 for the generator).
    ``"hinge"``
        D: ``relu(1 - z_real)`` and ``relu(1 + z_fake)``;  G: ``-z_fake``.

    :meth:`discriminator_loss` returns ``0.5 * (real term + fake term)``, the CycleGAN /
    F-LSeSim convention (which halves D's learning rate relative to G's).

    For every mode the generator loss decreases as D(fake) increases (for ``"lsgan"`` only
    while D(fake) < 1, its target).
    """

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        check_choice("GAN mode", mode, GAN_MODES)
        self.mode = mode

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

    # Per-scale terms -----------------------------------------------------------
    def _d_real(self, z: Tensor) -> Tensor:
        if self.mode == "lsgan":
            return F.mse_loss(z, torch.ones_like(z))
        if self.mode == "hinge":
            return F.relu(1.0 - z).mean()
        return F.softplus(-z).mean()  # = BCE-with-logits(z, 1)

    def _d_fake(self, z: Tensor) -> Tensor:
        if self.mode == "lsgan":
            return F.mse_loss(z, torch.zeros_like(z))
        if self.mode == "hinge":
            return F.relu(1.0 + z).mean()
        return F.softplus(z).mean()  # = BCE-with-logits(z, 0)

    def _g(self, z: Tensor) -> Tensor:
        if self.mode == "lsgan":
            return F.mse_loss(z, torch.ones_like(z))
        if self.mode == "vanilla":
            return -F.softplus(z).mean()  # = log(1 - sigmoid(z))
        if self.mode == "nonsaturating":
            return F.softplus(-z).mean()  # = -log(sigmoid(z))
        return -z.mean()  # hinge

    # Public API ---------------------------------------------------------------
    def discriminator_loss(self, real_logits: Logits, fake_logits: Logits) -> Tensor:
        """Discriminator loss ``0.5 * (real term + fake term)``, summed over scales.

        Args:
            real_logits: D(real images): a (N, 1, H', W') tensor (any shape works), or a list of
                them for a multi-scale D.
            fake_logits: D(fake images), same structure (fakes should be detached from G).

        Returns:
            Scalar tensor.
        """
        reals = _as_list(real_logits, "real_logits")
        fakes = _as_list(fake_logits, "fake_logits")
        if len(reals) != len(fakes):
            raise ValueError(f"got {len(reals)} real and {len(fakes)} fake logit maps")
        total = sum(0.5 * (self._d_real(r) + self._d_fake(f)) for r, f in zip(reals, fakes))
        return total  # type: ignore[return-value]

    def generator_loss(self, fake_logits: Logits) -> Tensor:
        """Generator (adversarial) loss on D(G(x)) logits, summed over scales. Returns a scalar tensor."""
        fakes = _as_list(fake_logits, "fake_logits")
        return sum(self._g(f) for f in fakes)  # type: ignore[return-value]

    def forward(self, fake_logits: Logits, real_logits: Logits | None = None) -> Tensor:
        """``generator_loss(fake)`` if ``real_logits`` is None, else ``discriminator_loss(real, fake)``."""
        if real_logits is None:
            return self.generator_loss(fake_logits)
        return self.discriminator_loss(real_logits, fake_logits)
