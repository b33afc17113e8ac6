"""Exemplar-guided translation: MCL-Net (Zhan et al., CVPR 2022; ``--mode exemplar``).

A conditional input ``X`` (label map, edge map) is translated into a photo in the style of an
exemplar photo ``Z``: the correspondence network (``sesim/nets/correspondence.py``) matches ``X``
with ``Z`` location by location and warps ``Z`` onto ``X``'s layout; a SPADE generator
(``sesim/nets/spade.py``) paints the photo from ``[X, warped Z]``. Both are one module,
:class:`~sesim.nets.exemplar_translator.ExemplarTranslator` (``self.G``), saved as the run's
generator; the discriminator is multi-scale and sees ``[X, photo]``.

Training data are pairs ``(X, Y)`` (``sesim/data/paired.py``). The exemplar of a step is, per
image, a *pseudo exemplar* — a geometrically distorted copy of ``Y`` — with probability
``--pseudo-exemplar`` (then the warp has a known target, ``Y`` itself), else another training
photo (what happens at test time: another layout, another appearance). Both, because the pseudo
pairs are the only supervision the warp gets, and the other photos are the only steps where
style and layout come from different images.

Per step (weights of the exemplar config section; docs/exemplar.md lists where they come from):

1. ``Z = distort(Y)`` where the sample is a pseudo pair, else the drawn photo.
2. Correspondence ``X <-> Z`` (with the cycle ``T'TZ``) and ``E_Z(Y)``; ``fake = G([X, TZ])``.
3. G and the correspondence network:
   ``l_cyc |T'TZ - Z|_1 + l_fcst |E_X(X) - E_Z(Y)|_1 + l_mcl MCL(desc(X), desc(Y))
   + l_perc |phi(fake) - phi(Y)|_1 + l_cxt CX(phi(fake), phi(Z)) + l_pse |TZ - Y|_1 (pseudo pairs)
   + l_perc |phi_low(fake) - phi_low(Y)|_1 (pseudo pairs) + l_gan adv(D(X, fake))``; ``phi``: the
   pretrained backbone (frozen), semantic layers; ``phi_low``: its low layers (``--pse-layers``).
4. D on ``[X, Y]`` against ``[X, fake]`` (all scales).

Without a correspondence (``--no-correspondence``, the SPADE-only row) the terms that need it
(cyc, fcst, mcl, pse) are absent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.paired import pseudo_exemplars
from ..factory import build_discriminator, build_generator
from ..losses.contextual import contextual_loss
from ..losses.gan import GANLoss
from ..losses.marginal_contrastive import MarginalContrastiveLoss
from ..nets.backbones import build_backbone, parse_layers, resolve_backbone
from ..nets.exemplar_translator import ExemplarTranslator
from ..nets.init import init_weights
from .base import Method, adam, discriminator_step, update

#: default backbone layers of the perceptual (semantic, to Y) and contextual (style, to Z) terms
PERCEPTUAL_LAYERS = {"efficientnet-lite0": ("stage3", "stage4"), "vgg16": ("relu4_1", "relu5_1")}
#: default low-level layers of the pseudo-pair appearance term (colour, texture)
PSEUDO_LAYERS = {"efficientnet-lite0": ("stem", "stage2"), "vgg16": ("relu1_1", "relu2_1")}
CONTEXTUAL_LAYERS = {"efficientnet-lite0": ("stage2", "stage3", "stage4"), "vgg16": ("relu2_1", "relu3_1", "relu4_1")}


class ExemplarMethod(Method):
    """MCL-Net and its ablations (module doc)."""

    sections = ("data", "generator", "discriminator", "structure", "exemplar", "optim")
    mode = "exemplar"
    frozen_prefixes = ("backbone.",)
    structure = None  # no structure loss (the training loop records the backbone from feature_backbone())

    def __init__(self, **sections) -> None:
        super().__init__(**sections)
        data, g, d, e = self.conf.data, self.conf.generator, self.conf.discriminator, self.conf.exemplar
        if data.size % 4 or data.size % 2 ** e.n_up:
            raise ValueError(f"--size {data.size} must be a multiple of 4 and of the SPADE generator's stride "
                             f"2**n_up = {2 ** e.n_up}")
        self.G = build_generator(self.mode, data, g, e)  # PyTorch's init: gain-0.02 kernels all but silenced SPADE
        self.D = init_weights(build_discriminator(self.mode, data, d, g), g.init, g.init_gain)
        if data.size < self.D.min_size:
            raise ValueError(f"--size {data.size} is too small for the multi-scale discriminator (needs >= "
                             f"{self.D.min_size} px); lower --n-scales-d or --n-layers-d")
        s = self.conf.structure  # the pretrained backbone of the perceptual and contextual terms
        choice = resolve_backbone(s.backbone, s.backbone_weights)
        self.perc_layers = parse_layers(choice.name, e.perc_layers, default=PERCEPTUAL_LAYERS[choice.name])
        self.cxt_layers = parse_layers(choice.name, e.cxt_layers, default=CONTEXTUAL_LAYERS[choice.name])
        self.pse_layers = (parse_layers(choice.name, e.pse_layers, default=PSEUDO_LAYERS[choice.name])
                           if e.pse_layers != ("off",) else ())
        layers = tuple(dict.fromkeys(self.perc_layers + self.cxt_layers + self.pse_layers))
        self.backbone = build_backbone(choice.name, layers, choice.weights).requires_grad_(False).eval()
        self.mcl = MarginalContrastiveLoss(e.mcl_margin, e.mcl_temperature)
        self.gan = GANLoss(d.gan_mode)
        self.optimizers = {"G": adam(self.G.parameters(), self.conf.optim),
                           "D": adam(self.D.parameters(), self.conf.optim, lr=e.lr_d)}

    def train(self, mode: bool = True) -> "ExemplarMethod":
        super().train(mode)
        self.backbone.eval()  # frozen, BatchNorm statistics included
        return self

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        e, d = self.conf.exemplar, self.conf.discriminator
        x, y = batch["A"], batch["B"]
        pseudo = batch["pseudo"].to(torch.bool).view(-1, 1, 1, 1)
        z = torch.where(pseudo, pseudo_exemplars(y), batch["Z"])                                    # 1.
        corr = self.G.correspondence(x, z, cycle=True) if self.G.correspondence is not None else None  # 2.
        fake = self.G.generator(self.G.guide(x, z, corr))

        self.D.requires_grad_(False)                                                                # 3.
        f_fake = self.backbone(fake)
        with torch.no_grad():
            f_y, f_z = self.backbone(y), self.backbone(z)
        terms = {
            "perc": sum(F.l1_loss(f_fake[k], f_y[k]) for k in self.perc_layers) / len(self.perc_layers),
            "cxt": contextual_loss(f_fake, f_z, self.cxt_layers),
            "gan": self.gan.generator_loss(self.D(torch.cat([x, fake], 1))),
        }
        if self.pse_layers and e.lambda_app > 0:  # on pseudo pairs Y has the exemplar's appearance: its colours/textures are the target
            low = sum((f_fake[k] - f_y[k]).abs().mean(dim=(1, 2, 3)) for k in self.pse_layers) / len(self.pse_layers)
            terms["app"] = (low * pseudo.flatten()).sum() / pseudo.sum().clamp_min(1)
        if corr is not None:
            feat_y, desc_y = self.G.correspondence.encode(y, condition=False)
            target = F.avg_pool2d(y, y.shape[-1] // corr.warped.shape[-1])
            terms["cyc"] = F.l1_loss(corr.cycled, corr.exemplar)
            terms["fcst"] = F.l1_loss(corr.features_x, feat_y)
            terms["mcl"] = self.mcl(corr.descriptors_x, desc_y) if e.lambda_mcl > 0 else fake.new_zeros(())
            terms["pse"] = ((corr.warped - target).abs() * pseudo).sum() / (pseudo.sum() * target[0].numel()).clamp_min(1)
        weights = {"perc": e.lambda_perc, "app": e.lambda_app, "cxt": e.lambda_cxt, "gan": d.lambda_gan,
                   "cyc": e.lambda_cyc, "fcst": e.lambda_fcst, "mcl": e.lambda_mcl, "pse": e.lambda_pse}
        loss_g = sum(weights[k] * v for k, v in terms.items())
        update(self.optimizers["G"], loss_g, "G")

        logs = discriminator_step(self.D, self.optimizers["D"], self.gan, torch.cat([x, y], 1),  # 4.
                                  torch.cat([x, fake], 1))
        return {**logs, "G": loss_g.item(), **{f"G_{k}": v.item() for k, v in terms.items()}}

    def resolved_options(self) -> dict[str, dict[str, tuple[str, ...]]]:
        return {"exemplar": {"perc_layers": self.perc_layers, "cxt_layers": self.cxt_layers,
                             "pse_layers": self.pse_layers}}

    def generators(self) -> dict[str, ExemplarTranslator]:
        return {"AtoB": self.G}

    def feature_backbone(self) -> torch.nn.Module:
        return self.backbone

    # -- inputs of sample grids and test-set translation: condition and exemplar stacked on channels
    def split(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 2C, H, W)`` = ``[condition, exemplar]`` -> the two halves."""
        c = self.conf.data.channels
        return images[:, :c], images[:, c:]

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """``(N, 2C, H, W)`` conditions stacked with exemplars -> ``(N, C, H, W)`` photos, all in [-1, 1]."""
        return self.G(*self.split(images))

    def sample_sources(self, images: torch.Tensor) -> torch.Tensor:
        return self.split(images)[0]

    @torch.no_grad()
    def sample_columns(self, images: torch.Tensor) -> tuple[list[str], list[torch.Tensor]]:
        """Sample grids: the exemplar, the warped exemplar (upsampled; the exemplar itself without a
        correspondence) and the translation."""
        x, z = self.split(images)
        warped = self.G.guide(x, z)[:, x.shape[1]:]
        return ["exemplar", "warped", "translation"], [z, warped, self.G(x, z)]
