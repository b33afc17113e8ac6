"""CycleGAN baseline (Zhu et al. 2017): two generators, two discriminators, cycle consistency.

Networks (CycleGAN's naming): ``G_A``: A -> B, ``G_B``: B -> A (ResNet generators, as sesim's);
``D_A`` judges domain **B** (real b vs ``G_A(a)``), ``D_B`` judges domain **A** (real a vs
``G_B(b)``) (70x70 PatchGANs). Images are ``(N, C, H, W)`` in [-1, 1]; both generators keep the
shape and range (tanh output).

Objective, with ``lc = cfg.loss`` and every L1 a mean over all elements::

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

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import TrainConfig
from ..losses.gan import GANLoss
from ..nets.init import init_weights
from ..nets.resnet_generator import ResnetGenerator
from .base import Method, checked
from .image_pool import ImagePool
from .sesim import build_discriminator, build_generator


class CycleGANMethod(Method):
    """Two ResNet generators + two PatchGANs trained with GAN, cycle and identity losses."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        m, lc, o = cfg.model, cfg.loss, cfg.optim
        self.cfg = cfg
        self.G_A = init_weights(build_generator(cfg), m.init, m.init_gain)  # A -> B
        self.G_B = init_weights(build_generator(cfg), m.init, m.init_gain)  # B -> A
        self.D_A = init_weights(build_discriminator(cfg), m.init, m.init_gain)
        self.D_B = init_weights(build_discriminator(cfg), m.init, m.init_gain)
        self.gan = GANLoss(lc.gan_mode)
        self.pool_A = ImagePool(lc.pool_size)  # fakes of domain B, for D_A
        self.pool_B = ImagePool(lc.pool_size)  # fakes of domain A, for D_B
        adam = dict(lr=o.lr, betas=(o.beta1, o.beta2))
        self.optimizers = {
            "G": torch.optim.Adam(chain(self.G_A.parameters(), self.G_B.parameters()), **adam),
            "D": torch.optim.Adam(chain(self.D_A.parameters(), self.D_B.parameters()), **adam),
        }

    def forward(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        """Both cycles: ``fake_b, rec_a, fake_a, rec_b``, each shaped like its input."""
        fake_b = self.G_A(real_a)
        rec_a = self.G_B(fake_b)
        fake_a = self.G_B(real_b)
        rec_b = self.G_A(fake_a)
        return {"fake_b": fake_b, "rec_a": rec_a, "fake_a": fake_a, "rec_b": rec_b}

    def generator_losses(self, real_a: Tensor, real_b: Tensor, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """The weighted terms of ``L_G`` (scalars) for the images of :meth:`forward`."""
        lc = self.cfg.loss
        losses = {
            "G_gan_A": lc.lambda_gan * self.gan.generator_loss(self.D_A(out["fake_b"])),
            "G_gan_B": lc.lambda_gan * self.gan.generator_loss(self.D_B(out["fake_a"])),
            "G_cycle_A": lc.lambda_cycle * F.l1_loss(out["rec_a"], real_a),
            "G_cycle_B": lc.lambda_cycle * F.l1_loss(out["rec_b"], real_b),
        }
        if lc.lambda_identity > 0:
            w = lc.lambda_cycle * lc.lambda_identity
            losses["G_idt_A"] = w * F.l1_loss(self.G_A(real_b), real_b)
            losses["G_idt_B"] = w * F.l1_loss(self.G_B(real_a), real_a)
        return losses

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        real_a, real_b = batch["A"], batch["B"]
        out = self(real_a, real_b)

        # G step: the discriminators are fixed and receive no gradient
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        opt = self.optimizers["G"]
        opt.zero_grad(set_to_none=True)
        losses = self.generator_losses(real_a, real_b, out)
        loss_g = sum(losses.values())
        checked("G", loss_g).backward()
        opt.step()

        # D step: real vs pooled (detached) fakes from before the G update
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        opt = self.optimizers["D"]
        opt.zero_grad(set_to_none=True)
        loss_d_a = self.gan.discriminator_loss(self.D_A(real_b), self.D_A(self.pool_A.query(out["fake_b"].detach())))
        loss_d_b = self.gan.discriminator_loss(self.D_B(real_a), self.D_B(self.pool_B.query(out["fake_a"].detach())))
        (checked("D_A", loss_d_a) + checked("D_B", loss_d_b)).backward()
        opt.step()

        logs = {k: v.item() for k, v in losses.items()}
        logs.update(G=loss_g.item(), D_A=loss_d_a.item(), D_B=loss_d_b.item())
        return logs

    def generators(self) -> dict[str, ResnetGenerator]:
        return {"AtoB": self.G_A, "BtoA": self.G_B}
