"""CycleGAN baseline (Zhu et al. 2017): two generators, two discriminators, cycle consistency.

Networks (CycleGAN's naming): ``G_A``: A -> B, ``G_B``: B -> A (ResNet generators, as sesim's);
``D_A`` judges domain **B** (real b vs ``G_A(a)``), ``D_B`` judges domain **A** (real a vs
``G_B(b)``) (70x70 PatchGANs). Images are ``(N, C, H, W)`` in [-1, 1]; both generators keep the
shape and range (tanh output).

Objective (weights from the ``generator``, ``discriminator`` and ``cycle`` sections), every L1 a mean
over all elements::

    L_G = lambda_gan * (gan(D_A(G_A(a))) + gan(D_B(G_B(b))))
        + lambda_cycle * (|G_B(G_A(a)) - a|_1 + |G_A(G_B(b)) - b|_1)
        + lambda_cycle * lambda_identity * (|G_A(b) - b|_1 + |G_B(a) - a|_1)
    L_D_A = 0.5 * (gan(D_A(b), real) + gan(D_A(pool_A(G_A(a))), fake))
    L_D_B = 0.5 * (gan(D_B(a), real) + gan(D_B(pool_B(G_B(b))), fake))

The identity weight is *relative* to the cycle weight, as in CycleGAN (preset: 10 and 0.5, so
each identity term weighs 5); with ``lambda_identity == 0`` the identity passes are skipped.

Per step, in CycleGAN's order:

1. forward: ``fake_b = G_A(a)``, ``rec_a = G_B(fake_b)``, ``fake_a = G_B(b)``, ``rec_b = G_A(fake_a)``.
2. G: with ``D_A``, ``D_B`` frozen (``requires_grad_(False)``, so they get no gradient), one Adam
   step of both generators on ``L_G``.
3. D: unfrozen, one Adam step of both discriminators on ``L_D_A + L_D_B``, using the fakes of
   step 1 (detached, i.e. from before the G update) exchanged through the image pools.

Every loss is checked (:func:`~sesim.methods.base.checked`) before its backward pass, so a NaN
stops training before any update of that step. Logged terms are the weighted ones
(``G = G_gan_A + G_gan_B + G_cycle_A + G_cycle_B [+ G_idt_A + G_idt_B]``).
"""

from __future__ import annotations

from itertools import chain

import torch.nn.functional as F
from torch import Tensor

from ..factory import build_discriminator, build_generator
from ..losses.gan import GANLoss
from ..nets.init import init_weights
from ..nets.resnet_generator import ResnetGenerator
from .base import Method, adam, checked, discriminator_loss, update
from .image_pool import ImagePool


class CycleGANMethod(Method):
    """Two ResNet generators + two PatchGANs trained with GAN, cycle and identity losses."""

    sections = ("data", "generator", "discriminator", "cycle", "optim")
    mode = "single-modal"

    def __init__(self, **sections) -> None:
        super().__init__(**sections)
        data, g, d, optim = self.conf.data, self.conf.generator, self.conf.discriminator, self.conf.optim
        nets = [init_weights(build_generator(self.mode, data, g), g.init, g.init_gain) for _ in range(2)]
        self.G_A, self.G_B = nets  # A -> B, B -> A
        nets = [init_weights(build_discriminator(self.mode, data, d, g), g.init, g.init_gain) for _ in range(2)]
        self.D_A, self.D_B = nets
        self.gan = GANLoss(d.gan_mode)
        self.pool_A = ImagePool(d.pool_size)  # fakes of domain B, for D_A
        self.pool_B = ImagePool(d.pool_size)  # fakes of domain A, for D_B
        self.optimizers = {"G": adam(chain(self.G_A.parameters(), self.G_B.parameters()), optim),
                           "D": adam(chain(self.D_A.parameters(), self.D_B.parameters()), optim)}

    def forward(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        """Both cycles: ``fake_b, rec_a, fake_a, rec_b``, each shaped like its input."""
        fake_b = self.G_A(real_a)
        rec_a = self.G_B(fake_b)
        fake_a = self.G_B(real_b)
        rec_b = self.G_A(fake_a)
        return {"fake_b": fake_b, "rec_a": rec_a, "fake_a": fake_a, "rec_b": rec_b}

    def generator_losses(self, real_a: Tensor, real_b: Tensor, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """The weighted terms of ``L_G`` (scalars) for the images of :meth:`forward`."""
        g, d, c = self.conf.generator, self.conf.discriminator, self.conf.cycle
        losses = {
            "G_gan_A": d.lambda_gan * self.gan.generator_loss(self.D_A(out["fake_b"])),
            "G_gan_B": d.lambda_gan * self.gan.generator_loss(self.D_B(out["fake_a"])),
            "G_cycle_A": c.lambda_cycle * F.l1_loss(out["rec_a"], real_a),
            "G_cycle_B": c.lambda_cycle * F.l1_loss(out["rec_b"], real_b),
        }
        if g.lambda_identity > 0:
            w = c.lambda_cycle * g.lambda_identity
            losses["G_idt_A"] = w * F.l1_loss(self.G_A(real_b), real_b)
            losses["G_idt_B"] = w * F.l1_loss(self.G_B(real_a), real_a)
        return losses

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        real_a, real_b = batch["A"], batch["B"]
        out = self(real_a, real_b)

        # G step: the discriminators are fixed and receive no gradient
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        losses = self.generator_losses(real_a, real_b, out)
        loss_g = sum(losses.values())
        update(self.optimizers["G"], loss_g, "G")

        # D step: real vs pooled (detached) fakes from before the G update, both discriminators at once
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        loss_d_a = discriminator_loss(self.D_A, self.gan, real_b, out["fake_b"], self.pool_A)
        loss_d_b = discriminator_loss(self.D_B, self.gan, real_a, out["fake_a"], self.pool_B)
        update(self.optimizers["D"], checked("D_A", loss_d_a) + checked("D_B", loss_d_b), "D")

        logs = {k: v.item() for k, v in losses.items()}
        logs.update(G=loss_g.item(), D_A=loss_d_a.item(), D_B=loss_d_b.item())
        return logs

    def generators(self) -> dict[str, ResnetGenerator]:
        return {"AtoB": self.G_A, "BtoA": self.G_B}
