"""Single-modal F/LSeSim translation (paper Sec. 4.1): one generator A -> B, one discriminator,
adversarial loss for appearance, spatially-correlative loss for structure. No cycle, no second
generator.

Per step, in this order:

1. LSeSim only: one step of the structure heads on InfoNCE (Eq. 3) between ``real_a`` and a
   structure-preserving augmentation of it, with the maps of a flipped ``real_b`` as extra
   negatives (as in the public code); with ``--head-on-translation`` the public code's batch of
   two pairs, (source, translation) and (source, augmented source). The translation and its
   backbone features are computed once and reused by steps 2-3.
2. D: ``0.5 * (gan(D(real_b), real) + gan(D(pool(fake_b)), fake))``.
3. G: ``lambda_gan * gan(D(fake_b), real) + lambda * S(real_a, fake_b)`` (+ optional identity terms).
   The structure loss uses the heads but never updates them.

For the content-loss ablation (paper Fig. 6, Table 3) ``cfg.loss.structure`` swaps S for a
perceptual loss, pixel L1 or nothing (GAN only), on the same networks and schedule; the Table 3
rows are options of the spatially-correlative loss itself (``keys``, ``layers``, ``patch_size``,
``distance``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..data.augment import structure_preserving_augment
from ..losses.gan import GANLoss
from ..losses.perceptual import NoContentLoss, PerceptualLoss, PixelL1Loss
from ..losses.spatial import Features, SpatialCorrelativeLoss
from ..nets.init import init_weights
from ..nets.patchgan import PatchDiscriminator
from ..nets.resnet_generator import ResnetGenerator
from .base import Method, checked
from .image_pool import ImagePool


def build_generator(cfg: TrainConfig) -> torch.nn.Module:
    """The translation network of a run, as ``sesim translate`` rebuilds it from ``config.json``."""
    if cfg.model.mode == "multimodal":  # MUNIT-style content/style generator (sesim/methods/multimodal.py)
        from .multimodal import build_multimodal_generator

        return build_multimodal_generator(cfg)
    if cfg.model.mode == "single-image":  # StyleGAN2-style generator (sesim/methods/single_image.py)
        from .single_image import build_single_image_generator

        return build_single_image_generator(cfg)
    m, c = cfg.model, cfg.data.channels
    return ResnetGenerator(c, c, ngf=m.ngf, n_blocks=m.n_blocks, norm=m.norm, antialias=m.antialias,
                           upsample=None if m.upsample == "auto" else m.upsample)


def build_discriminator(cfg: TrainConfig) -> PatchDiscriminator:
    """The PatchGAN of the single-modal methods (sesim, CUT, CycleGAN), from ``cfg.model``."""
    m = cfg.model
    return PatchDiscriminator(cfg.data.channels, m.ndf, m.n_layers_d, m.norm, antialias=m.antialias)


def build_structure_loss(cfg: TrainConfig) -> torch.nn.Module:
    """The content loss ``(source, translation) -> scalar`` chosen by ``cfg.loss.structure``, on the
    feature network chosen by ``cfg.loss.backbone`` / ``backbone_weights`` (see sesim.nets.backbones)."""
    lc = cfg.loss
    if lc.structure == "perceptual":
        return PerceptualLoss(lc.perceptual_layers, backbone=lc.backbone, weights=lc.backbone_weights)
    if lc.structure == "l1":
        return PixelL1Loss()
    if lc.structure == "none":
        return NoContentLoss()
    return SpatialCorrelativeLoss(
        lc.layers, backbone=lc.backbone, weights=lc.backbone_weights, num_queries=lc.num_queries,
        sampling=lc.sampling, keys=lc.keys,
        patch_size=lc.patch_size, norm=lc.feature_norm, distance=lc.distance, mask_keep=lc.mask_keep,
        mask_from=lc.mask_from, smooth_l1=lc.smooth_l1,
        learned=lc.structure == "lsesim", temperature=lc.temperature, tanh_scale=lc.tanh_scale,
        positive_vs_other=lc.positive_vs_other, train_backbone=lc.train_backbone and lc.structure == "lsesim",
    )


class StructureLossMethod(Method):
    """What the F/LSeSim recipes share (single-modal here, multi-modal in ``multimodal.py``): the
    content loss, the GAN loss, the image pool, Adam for G, D and the LSeSim heads, and the heads'
    step. A subclass builds ``self.G`` and ``self.D``, then calls :meth:`setup_losses`."""

    @property
    def frozen_prefixes(self) -> tuple[str, ...]:  # a fixed backbone is not saved in checkpoints
        trained = getattr(self.structure, "train_backbone", False)
        return () if trained else ("structure.extractor.",)

    def setup_losses(self, cfg: TrainConfig) -> None:
        lc, o = cfg.loss, cfg.optim
        self.structure = build_structure_loss(cfg)
        self.gan = GANLoss(lc.gan_mode)
        self.pool = ImagePool(lc.pool_size)
        adam = dict(betas=(o.beta1, o.beta2))
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=o.lr, **adam),
            "D": torch.optim.Adam(self.D.parameters(), lr=o.lr, **adam),
        }
        self.learned = isinstance(self.structure, SpatialCorrelativeLoss) and self.structure.learned
        self.head_steps = 0  # head updates so far (resumed with the checkpoint): the --head-warmup clock
        if lc.head_warmup and not self.learned:
            raise ValueError("--head-warmup trains the learned structure heads: it needs --structure lsesim")
        if lc.head_warmup < 0:
            raise ValueError(f"--head-warmup must be >= 0, got {lc.head_warmup}")
        if self.learned:
            self.optimizers["head"] = torch.optim.Adam(self.structure.head_parameters(), lr=o.lr_head or o.lr, **adam)

    def head_step(self, real_a: torch.Tensor, real_b: torch.Tensor, logs: dict[str, float],
                  translation: torch.Tensor | Features | None = None) -> Features | None:
        """LSeSim only (a no-op otherwise): one step of the structure heads on InfoNCE (Eq. 3) between
        ``real_a`` and a structure-preserving augmentation of it, with a flipped ``real_b`` as extra
        negatives. With ``translation`` (the step's translation of ``real_a``, or its features; used
        detached), the public code's ``--augment`` batch instead: pairs (``real_a``, translation)
        against flipped ``real_b`` and (``real_a``, augmented ``real_a``) against a flipped augmented
        ``real_b``. Returns the fixed backbone's features of ``real_a`` for the generator's loss, or None."""
        if not self.learned:
            return None
        self.head_steps += 1
        augment = self.cfg.loss.augment
        opt = self.optimizers["head"]
        opt.zero_grad(set_to_none=True)
        positives, others = structure_preserving_augment(real_a, augment), real_b.flip(2, 3)
        if translation is not None:
            positives = [translation, positives]
            others = [others, structure_preserving_augment(real_b, augment).flip(2, 3)]
        loss_head, source_features = self.structure.contrastive_loss(real_a, positives, others,
                                                                     return_source_features=True)
        checked("head_nce", loss_head).backward()
        opt.step()
        logs["head_nce"] = loss_head.item()
        return source_features

    def discriminator_step(self, real_b: torch.Tensor, fake_b: torch.Tensor, logs: dict[str, float]) -> None:
        """One update of D on ``real_b`` against a pooled, detached ``fake_b`` (both (N, C, H, W) in [-1, 1])."""
        self.D.requires_grad_(True)
        opt = self.optimizers["D"]
        opt.zero_grad(set_to_none=True)
        loss_d = self.gan.discriminator_loss(self.D(real_b), self.D(self.pool.query(fake_b.detach())))
        checked("D", loss_d).backward()
        opt.step()
        logs["D"] = loss_d.item()

    def warming_up_heads(self) -> bool:
        """True while ``--head-warmup`` steps train only the LSeSim heads (the caller then skips G and D)."""
        return self.learned and self.head_steps < self.cfg.loss.head_warmup

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "head_steps": self.head_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.head_steps = int(state.get("head_steps", 0))

class SeSimMethod(StructureLossMethod):
    """ResNet generator + 70x70 PatchGAN trained with a GAN loss and F/LSeSim."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.G = init_weights(build_generator(cfg), m.init, m.init_gain)
        self.D = init_weights(build_discriminator(cfg), m.init, m.init_gain)
        self.setup_losses(cfg)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        lc = self.cfg.loss
        real_a, real_b = batch["A"], batch["B"]
        logs: dict[str, float] = {}

        # 1. structure heads (LSeSim): learn maps that match under appearance changes
        warming_up = self.warming_up_heads()
        fake_b = fake_features = translation = None
        if self.learned and lc.head_on_translation:  # the public code's head batch includes the translation
            if warming_up:
                with torch.no_grad():
                    translation = self.G(real_a)
            else:  # computed once: G's output (and, with a fixed backbone, its features) serve the heads
                fake_b = self.G(real_a)  # detached and G's loss with their graph
                if self.structure.train_backbone:  # the head step changes the backbone: no features to reuse
                    translation = fake_b.detach()
                else:
                    translation = fake_features = self.structure.features(fake_b)
        source = self.head_step(real_a, real_b, logs, translation)
        if warming_up:  # --head-warmup: the heads learn before the generator sees their maps
            return logs

        # 2. discriminator
        if fake_b is None:
            fake_b = self.G(real_a)
        self.discriminator_step(real_b, fake_b, logs)

        # 3. generator
        self.D.requires_grad_(False)
        opt = self.optimizers["G"]
        opt.zero_grad(set_to_none=True)
        loss_gan = self.gan.generator_loss(self.D(fake_b))
        loss_structure = self.structure(real_a if source is None else source,
                                        fake_b if fake_features is None else fake_features)
        loss_g = lc.lambda_gan * loss_gan + lc.lambda_structure * loss_structure
        if lc.lambda_identity > 0 or lc.lambda_structure_identity > 0:
            idt_b = self.G(real_b)
            loss_idt = F.l1_loss(idt_b, real_b)
            loss_structure_idt = self.structure(real_b, idt_b)
            loss_g = loss_g + lc.lambda_identity * loss_idt + lc.lambda_structure_identity * loss_structure_idt
            logs["G_identity"] = loss_idt.item()
            logs["G_structure_identity"] = loss_structure_idt.item()
        checked("G", loss_g).backward()
        opt.step()
        self.D.requires_grad_(True)
        logs.update(G_gan=loss_gan.item(), G_structure=loss_structure.item(), G=loss_g.item())
        return logs

    def generators(self) -> dict[str, ResnetGenerator]:
        return {"AtoB": self.G}
