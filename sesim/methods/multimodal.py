"""Multi-modal F/LSeSim translation (paper Sec. 4.2, Table 2; ``--mode multimodal``).

One MUNIT-style generator (content encoder with instance norm, AdaIN decoder driven by a style
code through an MLP; ``sesim/nets/munit.py``) and one multi-scale discriminator
(``sesim/nets/multiscale_d.py``). As in the paper there is no cycle and no second generator or
discriminator: appearance comes from the adversarial loss, structure from F/LSeSim between the
input and the translation. F/LSeSim compares self-similarity patterns only, so it leaves the
appearance free to follow the style code.

The authors never released this code; this is sesim's own recipe. Its one addition to the
paper's description is MUNIT's *latent (style) reconstruction*: an optional style encoder E_s
(part of the generator, so it is saved with it) is trained to recover the sampled code from the
translation, ``lambda_style * |E_s(G(a, s)) - s|_1`` (MUNIT's ``recon_s_w`` = 1). It costs one
extra small network in training (a few strided convs on the translation) and buys two things:
the decoder cannot ignore the code (a GAN + structure loss alone has no term that rewards
diverse outputs, and collapses towards one appearance per input), and ``sesim translate
--style-from IMAGE`` can take the appearance of a reference image. ``--lambda-style 0`` trains
without it (no style encoder is built).

Per step, in this order:

1. LSeSim only: one step of the structure heads (as in ``sesim/methods/sesim.py``).
2. Sample ``s ~ N(0, I)`` per image (torch's global RNG, so resume is exact); ``fake = G(a, s)``.
3. D: ``sum over scales 0.5 * (gan(D(b), real) + gan(D(pool(fake)), fake))``.
4. G (with E_s): ``lambda_gan * gan(D(fake), real) + lambda * S(a, fake) + lambda_style * |E_s(fake) - s|_1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nets.init import init_weights
from ..nets.munit import MultimodalGenerator, style_codes
from .base import discriminator_step, update
from .sesim import StructureLossMethod  # the same content losses and head step as single-modal sesim

#: seed of the style code used for the training-loop sample grids (a sample of the prior, fixed over the run)
SAMPLE_STYLE_SEED = 0
#: style codes shown side by side in the training-loop sample grids
SAMPLE_STYLES = 3


class MultimodalMethod(StructureLossMethod):
    """MUNIT-style content/style generator + multi-scale D, trained with a GAN loss and F/LSeSim."""

    mode = "multimodal"

    def __init__(self, **sections) -> None:
        if sections["structure"].structure == "patchnce":
            raise ValueError("--mode multimodal supports --structure fsesim, lsesim, perceptual, l1 or none "
                             "(patchnce needs the ResNet generator's encoder layers)")
        super().__init__(**sections)
        data, d = self.conf.data, self.conf.discriminator
        if data.size < self.D.min_size:
            raise ValueError(f"--size {data.size} is too small for the multi-scale discriminator "
                             f"({d.n_scales_d} scales x {d.n_layers_d} layers need >= {self.D.min_size} px); "
                             "lower --n-scales-d or --n-layers-d")

    def build_generator(self) -> MultimodalGenerator:
        G = super().build_generator()
        # the style MLP always gets Kaiming init (MUNIT's): with N(0, 0.02) weights its AdaIN
        # parameters start at ~0 and the style code has no visible effect for a long time
        init_weights(G.style_mlp, "kaiming")
        return G

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        g, d, s = self.conf.generator, self.conf.discriminator, self.conf.structure
        real_a, real_b = batch["A"], batch["B"]
        logs: dict[str, float] = {}

        # 1. structure heads (LSeSim)
        warming_up = self.warming_up_heads()
        source = self.head_step(real_a, real_b, logs)
        if warming_up:  # --head-warmup: only the heads learn for now
            return logs

        # 2. one sampled style per image
        style = torch.randn(real_a.shape[0], self.G.style_dim, device=real_a.device)
        fake_b = self.G(real_a, style)

        # 3. discriminator (all scales)
        logs.update(discriminator_step(self.D, self.optimizers["D"], self.gan, real_b, fake_b, pool=self.pool))

        # 4. generator (+ style encoder)
        self.D.requires_grad_(False)
        loss_gan = self.gan.generator_loss(self.D(fake_b))
        loss_structure = self.structure(real_a if source is None else source, fake_b)
        loss_g = d.lambda_gan * loss_gan + s.lambda_structure * loss_structure
        if self.G.has_style_encoder:
            loss_style = F.l1_loss(self.G.encode_style(fake_b), style)
            loss_g = loss_g + g.lambda_style * loss_style
            logs["G_style"] = loss_style.item()
        update(self.optimizers["G"], loss_g, "G")
        self.D.requires_grad_(True)
        logs.update(G_gan=loss_gan.item(), G_structure=loss_structure.item(), G=loss_g.item())
        return logs

    def generators(self) -> dict[str, MultimodalGenerator]:
        return {"AtoB": self.G}

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """Translations with one fixed sampled style code (the first code of
        ``style_codes(..., seed=SAMPLE_STYLE_SEED)``, also what ``sesim translate`` uses by default),
        so sample grids over a run are comparable. ``(N, C, H, W)`` in [-1, 1] -> same."""
        style = style_codes(self.G.style_dim, 1, SAMPLE_STYLE_SEED).to(images.device)
        return self.G(images, style)

    @torch.no_grad()
    def sample_columns(self, images: torch.Tensor) -> tuple[list[str], list[torch.Tensor]]:
        """Sample grids: one column per style code 0..SAMPLE_STYLES-1 of seed ``SAMPLE_STYLE_SEED``
        (the codes of ``sesim translate --samples 3 --seed 0``), fixed over the run."""
        styles = style_codes(self.G.style_dim, SAMPLE_STYLES, SAMPLE_STYLE_SEED).to(images.device)
        out = self.translate_styles(images, styles)
        return [f"style {k}" for k in range(SAMPLE_STYLES)], [out[:, k] for k in range(SAMPLE_STYLES)]

    @torch.no_grad()
    def translate_styles(self, images: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` and ``(K, style_dim)`` codes -> ``(N, K, C, H, W)`` translations."""
        content = self.G.encode_content(images)
        return torch.stack([self.G.decode(content, s) for s in styles], dim=1)
