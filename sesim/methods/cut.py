"""CUT and FastCUT baselines (Park et al. 2020): a GAN loss for appearance, PatchNCE for content.

One generator ``G: A -> B`` (the same ResNet generator as the F/LSeSim method), one PatchGAN
``D``, and a patch sampler with 2-layer MLP heads ``F`` (:class:`~sesim.losses.patchnce.PatchSampleMLP`).
The objective of ``G`` and ``F`` is::

    lambda_gan * GAN(G)  +  lambda_nce * NCE(a, G(a))                                 (FastCUT)
    lambda_gan * GAN(G)  +  lambda_nce * 0.5 * (NCE(a, G(a)) + NCE(b, G(b)))          (CUT, nce_idt)

where ``NCE(src, tgt)`` encodes both images with ``G``'s own layers (``nce_layers``), samples the
same ``nce_num_patches`` positions per layer on both, embeds them with ``F`` and averages
:func:`~sesim.losses.patchnce.patch_nce_loss` (the translation's patches are the queries, the
source's the detached keys) over the patches and then over the layers.

Per step, in CUT's order:

1. ``real = cat([a, b])`` (with ``nce_idt``) or ``a``; with ``flip_equivariance``, in training,
   ``real`` is flipped horizontally with probability 0.5; ``fake = G(real)``, split into
   ``fake_b`` and ``idt_b``.
2. D: ``0.5 * (gan(D(pool(fake_b)), fake) + gan(D(b), real))``.
3. G and F together (D frozen): the objective above, one backward, then both optimisers step.
   When the input was flipped, the query features (of ``fake_b``/``idt_b``) are flipped back before
   sampling so that they line up with the keys of the unflipped source.

CUT and FastCUT are the same code; the presets differ only in ``nce_idt`` (on / off),
``lambda_nce`` (1 / 10) and ``flip_equivariance`` (off / on). Both use lr 2e-4, lsgan and no pool.

Layers. CUT selects encoder layers by index into its generator's ``nn.Sequential``
(``--nce_layers 0,4,8,12,16``); here they are named (:meth:`ResnetGenerator.layer_names`) and the
CUT default corresponds to ``input, down1, down2, block1, block5``, with these differences:

- ``0`` in CUT is the input after the 3-pixel reflection padding ((H+6) x (W+6), so its sampled
  positions include the padded border); ``input`` is the raw H x W image.
- ``4`` and ``8`` in CUT are raw conv outputs, *before* InstanceNorm and ReLU, and with CUT's
  default anti-aliased generator those convs have stride 1 (the blur-pool downsampling comes after
  them), so layer 4 is at H x W (2*ngf channels) and layer 8 at H/2 x W/2 (4*ngf channels).
  ``down1`` / ``down2`` are the outputs of our stride-2 conv *after* norm and ReLU, at H/2 and H/4.
  Channel counts match, resolution and normalisation do not.
- ``12`` / ``16`` are the outputs of the first / fifth residual block, exactly like ``block1`` /
  ``block5``.

Other differences from the CUT code, all deliberate:

- ``F`` is built eagerly from ``G.layer_channels()`` and its Adam optimiser is created with the
  others; CUT builds it lazily on the first batch (``data_dependent_initialize``).
- Patch positions come from ``torch.randperm`` on the CPU (torch's global RNG, saved in
  checkpoints) instead of ``np.random.permutation``; flips use ``torch.rand``.
- The diagonal of the negatives is removed exactly instead of being set to -10 (same value for
  unit-length embeddings in float32).
- An image pool is available (``pool_size``; 0 in the presets, as in CUT).
- Logged ``G_nce`` / ``G_nce_idt`` are the unweighted losses (CUT logs them times ``lambda_NCE``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..config import NCEConfig
from ..factory import build_discriminator, build_generator, build_patch_heads
from ..losses.gan import GANLoss
from ..losses.patchnce import PatchSampleMLP, patch_nce_loss
from ..nets.init import init_weights
from ..nets.resnet_generator import ResnetGenerator
from .base import Method, adam, discriminator_step, update
from .image_pool import ImagePool

__all__ = ["CUTMethod", "patch_nce"]


def patch_nce(G: nn.Module, heads: PatchSampleMLP, layers: Sequence[str], nce: NCEConfig, src: Tensor, tgt: Tensor, *,
              flipped: bool = False, negatives_from_minibatch: bool = False) -> Tensor:
    """Mean over ``layers`` of the mean PatchNCE loss between ``tgt = G(src)`` (queries) and ``src`` (keys):
    both encoded by ``G``, sampled at the same positions and embedded by ``heads``; CUT's and SinCUT's.

    ``flipped``: ``tgt`` was generated from the horizontally flipped ``src``; its features are
    flipped back so that positions line up. Both are ``(N, C, H, W)``; returns a scalar.
    """
    feat_q = G.encode(tgt, layers)
    if flipped:
        feat_q = {name: f.flip(3) for name, f in feat_q.items()}
    emb_k, ids = heads(G.encode(src, layers), nce.nce_num_patches)
    emb_q, _ = heads(feat_q, nce.nce_num_patches, ids)
    losses = [patch_nce_loss(emb_q[name], emb_k[name], temperature=nce.nce_temperature, batch_size=src.shape[0],
                             negatives_from_minibatch=negatives_from_minibatch).mean() for name in layers]
    return torch.stack(losses).mean()


class CUTMethod(Method):
    """CUT / FastCUT: ResNet G + PatchGAN D + PatchNCE on G's encoder layers through MLP heads F.

    Networks: ``G`` and ``D`` from their sections (:mod:`sesim.factory`), ``F``
    (:class:`~sesim.losses.patchnce.PatchSampleMLP` over ``nce.nce_layers``), all initialised as the
    generator section says. Optimisers ``{"G", "D", "F"}``: Adam with the ``optim`` section. ``F`` is
    built here, not lazily on the first batch as in CUT.

    Raises:
        ValueError: ``nce_layers`` names a layer the generator does not have (the message lists
            the valid names), or is empty.
    """

    sections = ("data", "generator", "discriminator", "nce", "optim")
    mode = "single-modal"

    def __init__(self, **sections) -> None:
        super().__init__(**sections)
        data, g, d, optim = self.conf.data, self.conf.generator, self.conf.discriminator, self.conf.optim
        self.G: ResnetGenerator = init_weights(build_generator(self.mode, data, g), g.init, g.init_gain)
        self.D = init_weights(build_discriminator(self.mode, data, d, g), g.init, g.init_gain)
        self.nce_layers, self.F = build_patch_heads(self.G, self.conf.nce, g, hint=f" (with n_blocks={g.n_blocks})")
        self.gan = GANLoss(d.gan_mode)
        self.pool = ImagePool(d.pool_size)
        self.optimizers = {"G": adam(self.G.parameters(), optim), "D": adam(self.D.parameters(), optim),
                           "F": adam(self.F.parameters(), optim)}

    # ---------------------------------------------------------------------------------------
    def nce_loss(self, src: Tensor, tgt: Tensor, flipped: bool = False) -> Tensor:
        """:func:`patch_nce` over ``nce_layers``: ``tgt = G(src)`` (of the flipped ``src`` if ``flipped``)."""
        return patch_nce(self.G, self.F, self.nce_layers, self.conf.nce, src, tgt, flipped=flipped)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        d, nce = self.conf.discriminator, self.conf.nce
        real_a, real_b = batch["A"], batch["B"]
        use_nce = nce.lambda_nce > 0
        use_idt = use_nce and nce.nce_idt

        # 1. translate (A and, for the identity NCE, B in one batch)
        real = torch.cat([real_a, real_b]) if use_idt else real_a
        flipped = nce.flip_equivariance and self.training and bool(torch.rand(()) < 0.5)
        if flipped:
            real = real.flip(3)
        fake = self.G(real)
        fake_b = fake[: real_a.shape[0]]
        idt_b = fake[real_a.shape[0]:] if use_idt else None

        # 2. discriminator
        logs = discriminator_step(self.D, self.optimizers["D"], self.gan, real_b, fake_b, pool=self.pool)

        # 3. generator and heads (D frozen)
        self.D.requires_grad_(False)
        zero = fake_b.new_zeros(())
        loss_gan = self.gan.generator_loss(self.D(fake_b)) if d.lambda_gan > 0 else zero
        loss_nce = self.nce_loss(real_a, fake_b, flipped) if use_nce else zero
        logs.update(G_gan=loss_gan.item(), G_nce=loss_nce.item())
        if use_idt:
            loss_nce_idt = self.nce_loss(real_b, idt_b, flipped)
            loss_nce_both = 0.5 * (loss_nce + loss_nce_idt)
            logs["G_nce_idt"] = loss_nce_idt.item()
        else:
            loss_nce_both = loss_nce
        loss_g = d.lambda_gan * loss_gan + nce.lambda_nce * loss_nce_both
        if loss_g.requires_grad:  # False only when lambda_gan == lambda_nce == 0
            update([self.optimizers["G"], self.optimizers["F"]], loss_g, "G")
        self.D.requires_grad_(True)
        logs["G"] = loss_g.item()
        return logs

    def generators(self) -> dict[str, ResnetGenerator]:
        return {"AtoB": self.G}
