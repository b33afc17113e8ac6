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

For the content-loss ablation (paper Fig. 6, Table 3) ``cfg.structure.structure`` swaps S for a
perceptual loss, pixel L1 or nothing (GAN only), on the same networks and schedule; the Table 3
rows are options of the spatially-correlative loss itself (``keys``, ``layers``, ``patch_size``,
``distance``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..config import DataConfig, DiscriminatorConfig, GeneratorConfig, OptimConfig, StructureConfig
from ..data.augment import structure_preserving_augment
from ..factory import build_discriminator, build_generator, build_structure_loss
from ..losses.gan import GANLoss
from ..losses.spatial import Features, SpatialCorrelativeLoss
from ..nets.init import init_weights
from .base import Method, adam, discriminator_step, update
from .image_pool import ImagePool


class StructureLossMethod(Method):
    """What the F/LSeSim recipes share (single-modal here, multi-modal in ``multimodal.py``): G and D
    of :attr:`mode` built from their sections, the content loss, the GAN loss, the image pool, Adam
    for G, D and the LSeSim heads, and the heads' step."""

    sections = ("data", "generator", "discriminator", "structure", "optim")
    #: which generator / discriminator family (:mod:`sesim.factory`)
    mode = "single-modal"

    @property
    def frozen_prefixes(self) -> tuple[str, ...]:  # a fixed backbone is not saved in checkpoints
        trained = getattr(self.structure, "train_backbone", False)
        return () if trained else ("structure.extractor.",)

    def __init__(self, *, data: DataConfig, generator: GeneratorConfig, discriminator: DiscriminatorConfig,
                 structure: StructureConfig, optim: OptimConfig) -> None:
        super().__init__(data=data, generator=generator, discriminator=discriminator, structure=structure, optim=optim)
        self.G = self.build_generator()
        self.D = init_weights(build_discriminator(self.mode, data, discriminator, generator), generator.init,
                              generator.init_gain)
        self.structure = build_structure_loss(structure)
        self.gan = GANLoss(discriminator.gan_mode)
        self.pool = ImagePool(discriminator.pool_size)
        self.optimizers = {"G": adam(self.G.parameters(), optim), "D": adam(self.D.parameters(), optim)}
        self.learned = isinstance(self.structure, SpatialCorrelativeLoss) and self.structure.learned
        self.head_steps = 0  # head updates so far (resumed with the checkpoint): the --head-warmup clock
        if structure.head_warmup and not self.learned:
            raise ValueError("--head-warmup trains the learned structure heads: it needs --structure lsesim")
        if structure.head_warmup < 0:
            raise ValueError(f"--head-warmup must be >= 0, got {structure.head_warmup}")
        if self.learned:
            self.optimizers["head"] = adam(self.structure.head_parameters(), optim, lr=optim.lr_head)

    def build_generator(self) -> torch.nn.Module:
        """G of :attr:`mode` from the generator section, initialised as the section says."""
        g = self.conf.generator
        return init_weights(build_generator(self.mode, self.conf.data, g), g.init, g.init_gain)

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
        augment = self.conf.structure.augment
        positives, others = structure_preserving_augment(real_a, augment), real_b.flip(2, 3)
        if translation is not None:
            positives = [translation, positives]
            others = [others, structure_preserving_augment(real_b, augment).flip(2, 3)]
        loss_head, source_features = self.structure.contrastive_loss(real_a, positives, others,
                                                                     return_source_features=True)
        update(self.optimizers["head"], loss_head, "head_nce")
        logs["head_nce"] = loss_head.item()
        return source_features

    def warming_up_heads(self) -> bool:
        """True while ``--head-warmup`` steps train only the LSeSim heads (the caller then skips G and D)."""
        return self.learned and self.head_steps < self.conf.structure.head_warmup

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "head_steps": self.head_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.head_steps = int(state.get("head_steps", 0))


class SeSimMethod(StructureLossMethod):
    """ResNet generator + 70x70 PatchGAN trained with a GAN loss and F/LSeSim."""

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        g, d, s = self.conf.generator, self.conf.discriminator, self.conf.structure
        real_a, real_b = batch["A"], batch["B"]
        logs: dict[str, float] = {}

        # 1. structure heads (LSeSim): learn maps that match under appearance changes
        warming_up = self.warming_up_heads()
        fake_b = fake_features = translation = None
        if self.learned and s.head_on_translation:  # the public code's head batch includes the translation
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
        logs.update(discriminator_step(self.D, self.optimizers["D"], self.gan, real_b, fake_b, pool=self.pool))

        # 3. generator (D frozen; the structure loss uses the heads but never updates them)
        self.D.requires_grad_(False)
        loss_gan = self.gan.generator_loss(self.D(fake_b))
        loss_structure = self.structure(real_a if source is None else source,
                                        fake_b if fake_features is None else fake_features)
        loss_g = d.lambda_gan * loss_gan + s.lambda_structure * loss_structure
        if g.lambda_identity > 0 or s.lambda_structure_identity > 0:
            idt_b = self.G(real_b)
            loss_idt = F.l1_loss(idt_b, real_b)
            loss_structure_idt = self.structure(real_b, idt_b)
            loss_g = loss_g + g.lambda_identity * loss_idt + s.lambda_structure_identity * loss_structure_idt
            logs["G_identity"] = loss_idt.item()
            logs["G_structure_identity"] = loss_structure_idt.item()
        update(self.optimizers["G"], loss_g, "G")
        self.D.requires_grad_(True)
        logs.update(G_gan=loss_gan.item(), G_structure=loss_structure.item(), G=loss_g.item())
        return logs

    def generators(self) -> dict[str, torch.nn.Module]:
        return {"AtoB": self.G}
