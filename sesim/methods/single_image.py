"""Single-image translation (paper Sec. 4.3, Fig. 9): train on one source and one target image.

Both recipes use the StyleGAN2-style networks of :mod:`sesim.nets.stylegan2` on random zoomed
patches (:mod:`sesim.data.single_image`), the non-saturating GAN loss and a gradient penalty on D:

- :class:`SingleImageSeSimMethod` (``--method sesim --mode single-image``, preset ``painting2photo``):
  ``G loss = lambda_gan * GAN + lambda_structure * FSeSim(a, G(a))``. FSeSim is the only content
  loss and there is no identity loss (as the paper says).
- :class:`SinCUTMethod` (``--method cut --mode single-image``, preset ``sincut``): the SinCUT
  baseline, ``lambda_gan * GAN + lambda_nce * 0.5 * (NCE(a, G(a)) + NCE(b, G(b))) +
  lambda_identity * L1(G(b), b)``, PatchNCE on the generator's encoder layers through MLP heads,
  negatives from the whole minibatch of patches.

Gradient penalty (``--gradient-penalty``, weight ``--lambda-gp``), added to D's loss every step:

- ``r1`` (default): ``lambda / 2 * E |grad_x D(x)|^2`` on real target patches (zero-centred), the
  regulariser of StyleGAN2 and of SinCUT (``lambda_R1 = 1``). It is the default because it is the
  penalty designed for the non-saturating loss used here and the one the SinCUT baseline uses, so
  both methods differ only in their content loss.
- ``wgangp``: ``lambda * E (|grad D(x_hat)| - 1)^2`` on random interpolates of real and fake
  patches (one-centred), what the public F-LSeSim ``sinsc`` code adds (``lambda_gradient = 1``).
- ``none``.

Per step: D update (GAN + penalty), then G (and F for SinCUT) update with D frozen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..factory import build_discriminator, build_generator, build_patch_heads, build_structure_loss
from ..losses.gan import GANLoss
from ..nets.stylegan2 import StyleGAN2Generator
from .base import Method, adam, discriminator_step, update
from .cut import patch_nce

__all__ = ["SingleImageSeSimMethod", "SinCUTMethod", "gradient_penalty"]


def gradient_penalty(D: torch.nn.Module, real: Tensor, fake: Tensor | None, mode: str) -> Tensor:
    """Unweighted penalty: ``r1`` -> ``0.5 * E|grad D(real)|^2``; ``wgangp`` -> ``E(|grad D(x_hat)| - 1)^2``.

    ``real`` / ``fake`` are ``(N, C, H, W)`` patches; the result is a scalar with a graph to D's weights.
    """
    if mode == "r1":
        x = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        return 0.5 * grad.pow(2).flatten(1).sum(1).mean()
    if mode == "wgangp":
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    raise ValueError(f"unknown gradient penalty {mode!r}")


class _SingleImageBase(Method):
    """Networks, optimisers and the D step shared by both single-image recipes."""

    mode = "single-image"

    def __init__(self, **sections) -> None:
        super().__init__(**sections)
        data, g, d = self.conf.data, self.conf.generator, self.conf.discriminator
        size = data.size
        if size < 8 or size & (size - 1):
            raise ValueError(f"--mode single-image needs a power-of-two patch --size >= 8, got {size}")
        if size % 2 ** g.n_downsampling:
            raise ValueError(f"patch --size {size} must be a multiple of 2^n_downsampling")
        self.G = build_generator(self.mode, data, g)
        self.D = build_discriminator(self.mode, data, d, g)
        self.gan = GANLoss(d.gan_mode)
        self.optimizers = {"G": adam(self.G.parameters(), self.conf.optim),
                           "D": adam(self.D.parameters(), self.conf.optim)}

    def d_step(self, real_b: Tensor, fake_b: Tensor) -> dict[str, float]:
        """D's update with the gradient penalty of the single-image section; D is left frozen."""
        si = self.conf.single_image
        mode = si.gradient_penalty
        penalty = None if mode == "none" else lambda: gradient_penalty(self.D, real_b, fake_b, mode)
        logs = discriminator_step(self.D, self.optimizers["D"], self.gan, real_b, fake_b, penalty=penalty,
                                  penalty_weight=si.lambda_gp)
        self.D.requires_grad_(False)
        return logs

    def generators(self) -> dict[str, StyleGAN2Generator]:
        return {"AtoB": self.G}


class SingleImageSeSimMethod(_SingleImageBase):
    """FSeSim single-image translation: StyleGAN2-style G/D, non-saturating GAN + penalty, FSeSim content loss."""

    sections = ("data", "generator", "discriminator", "structure", "single_image", "optim")
    frozen_prefixes = ("structure.extractor.",)  # the fixed feature extractor is not saved

    def __init__(self, **sections) -> None:
        super().__init__(**sections)
        structure = self.conf.structure.structure
        if structure in ("lsesim", "patchnce"):
            raise ValueError("--mode single-image supports --structure fsesim (the paper's setting), perceptual, "
                             f"l1 or none; {structure} is not available in this mode (for PatchNCE train "
                             "the SinCUT baseline: --preset sincut / --method cut)")
        self.structure = build_structure_loss(self.conf.structure)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        d, s = self.conf.discriminator, self.conf.structure
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.G(real_a)
        logs = self.d_step(real_b, fake_b)
        loss_gan = self.gan.generator_loss(self.D(fake_b))
        loss_structure = self.structure(real_a, fake_b)
        loss_g = d.lambda_gan * loss_gan + s.lambda_structure * loss_structure
        update(self.optimizers["G"], loss_g, "G")
        self.D.requires_grad_(True)
        logs.update(G_gan=loss_gan.item(), G_structure=loss_structure.item(), G=loss_g.item())
        return logs


class SinCUTMethod(_SingleImageBase):
    """SinCUT baseline: StyleGAN2-style G/D, PatchNCE (+ identity NCE) and identity L1, R1 on D."""

    sections = ("data", "generator", "discriminator", "nce", "single_image", "optim")

    def __init__(self, **sections) -> None:
        super().__init__(**sections)
        self.nce_layers, self.F = build_patch_heads(
            self.G, self.conf.nce, self.conf.generator,
            hint=" of the single-image generator's encoder (the sincut preset uses input,down1,enc1)")
        self.optimizers["F"] = adam(self.F.parameters(), self.conf.optim)

    def nce_loss(self, src: Tensor, tgt: Tensor) -> Tensor:
        """:func:`~sesim.methods.cut.patch_nce` over ``nce_layers``, ``tgt = G(src)``; negatives as the section says."""
        nce = self.conf.nce
        return patch_nce(self.G, self.F, self.nce_layers, nce, src, tgt,
                         negatives_from_minibatch=nce.nce_negatives_from_minibatch)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        g, d, nce = self.conf.generator, self.conf.discriminator, self.conf.nce
        real_a, real_b = batch["A"], batch["B"]
        use_idt = nce.nce_idt or g.lambda_identity > 0
        fake = self.G(torch.cat([real_a, real_b]) if use_idt else real_a)
        fake_b, idt_b = fake[: real_a.shape[0]], (fake[real_a.shape[0]:] if use_idt else None)
        logs = self.d_step(real_b, fake_b)
        loss_gan = self.gan.generator_loss(self.D(fake_b))
        loss_nce = self.nce_loss(real_a, fake_b)
        logs.update(G_gan=loss_gan.item(), G_nce=loss_nce.item())
        if nce.nce_idt:
            loss_nce_idt = self.nce_loss(real_b, idt_b)
            logs["G_nce_idt"] = loss_nce_idt.item()
            loss_nce = 0.5 * (loss_nce + loss_nce_idt)
        loss_g = d.lambda_gan * loss_gan + nce.lambda_nce * loss_nce
        if g.lambda_identity > 0:
            loss_idt = F.l1_loss(idt_b, real_b)
            loss_g = loss_g + g.lambda_identity * loss_idt
            logs["G_identity"] = loss_idt.item()
        update([self.optimizers["G"], self.optimizers["F"]], loss_g, "G")
        self.D.requires_grad_(True)
        logs["G"] = loss_g.item()
        return logs
