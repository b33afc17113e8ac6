"""Components from their own configuration sections: generators, discriminators, content losses,
PatchNCE heads. The one place where an option's value becomes a constructor argument.

Generators and discriminators are :class:`~sesim.nets.described.Described`: they remember these
arguments, and run folders store them with the weights, so inference rebuilds a generator from its
file alone (:mod:`sesim.run`). Building from a configuration is for training, and for run folders
written before generators carried their arguments.
"""

from __future__ import annotations

from torch import nn

from .config import DataConfig, DiscriminatorConfig, ExemplarConfig, GeneratorConfig, NCEConfig, StructureConfig
from .losses.patchnce import PatchSampleMLP
from .losses.perceptual import NoContentLoss, PerceptualLoss, PixelL1Loss
from .losses.spatial import SpatialCorrelativeLoss
from .nets.exemplar_translator import ExemplarTranslator
from .nets.multiscale_d import MultiScaleDiscriminator
from .nets.munit import MultimodalGenerator
from .nets.patchgan import PatchDiscriminator
from .nets.resnet_generator import ResnetGenerator
from .nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

__all__ = ["build_generator", "build_discriminator", "build_structure_loss", "build_patch_heads"]


def build_generator(mode: str, data: DataConfig, g: GeneratorConfig,
                    exemplar: ExemplarConfig | None = None) -> nn.Module:
    """The translation network of ``mode``, with fresh (PyTorch default) weights (``exemplar``: the
    exemplar section, for ``mode="exemplar"``)."""
    c = data.channels
    if mode == "exemplar":  # correspondence + SPADE generator in one module
        e = exemplar or ExemplarConfig()
        return ExemplarTranslator(c, c, grid=data.size, correspondence=e.correspondence, channels=e.corr_channels,
                                  scm=e.scm, scm_dim=e.scm_dim, temperature=e.corr_temperature, ngf=g.ngf,
                                  n_up=e.n_up, hidden=e.spade_hidden)
    if mode == "single-modal":
        return ResnetGenerator(c, c, ngf=g.ngf, n_blocks=g.n_blocks, norm=g.norm, antialias=g.antialias,
                               upsample=None if g.upsample == "auto" else g.upsample)
    if mode == "multimodal":  # a style encoder iff its reconstruction term is on
        return MultimodalGenerator(c, c, ngf=g.ngf, n_res=g.n_blocks, style_dim=g.style_dim, mlp_dim=g.mlp_dim,
                                   style_encoder=g.lambda_style > 0)
    if mode == "single-image":
        return StyleGAN2Generator(c, c, ngf=g.ngf, n_down=g.n_downsampling, n_blocks=g.n_blocks, noise=g.noise_inputs)
    raise ValueError(f"unknown mode {mode!r}")


def build_discriminator(mode: str, data: DataConfig, d: DiscriminatorConfig, g: GeneratorConfig) -> nn.Module:
    """The discriminator of ``mode`` (``g`` gives the normalisation and resampling it shares with G)."""
    c = data.channels
    if mode == "single-modal":
        return PatchDiscriminator(c, d.ndf, d.n_layers_d, g.norm, antialias=g.antialias)
    if mode == "multimodal":
        return MultiScaleDiscriminator(c, d.ndf, d.n_layers_d, d.n_scales_d)
    if mode == "exemplar":  # conditional: sees [condition, photo]
        return MultiScaleDiscriminator(2 * c, d.ndf, d.n_layers_d, d.n_scales_d)
    if mode == "single-image":
        return StyleGAN2Discriminator(c, size=data.size, ndf=d.ndf)
    raise ValueError(f"unknown mode {mode!r}")


def build_structure_loss(s: StructureConfig) -> nn.Module:
    """The content loss ``(source, translation) -> scalar`` chosen by ``s.structure`` (``patchnce``
    is not a standalone loss: it needs the generator's encoder; :mod:`sesim.methods` trains it as CUT)."""
    if s.structure == "perceptual":
        return PerceptualLoss(s.perceptual_layers, backbone=s.backbone, weights=s.backbone_weights)
    if s.structure == "l1":
        return PixelL1Loss()
    if s.structure == "none":
        return NoContentLoss()
    if s.structure not in ("fsesim", "lsesim"):
        raise ValueError(f"--structure {s.structure} has no standalone loss module")
    learned = s.structure == "lsesim"
    return SpatialCorrelativeLoss(
        s.layers, backbone=s.backbone, weights=s.backbone_weights, num_queries=s.num_queries, sampling=s.sampling,
        keys=s.keys, patch_size=s.patch_size, norm=s.feature_norm, distance=s.distance, mask_keep=s.mask_keep,
        mask_from=s.mask_from, smooth_l1=s.smooth_l1, learned=learned, temperature=s.temperature,
        tanh_scale=s.tanh_scale, positive_vs_other=s.positive_vs_other, train_backbone=s.train_backbone and learned,
    )


def build_patch_heads(generator: nn.Module, nce: NCEConfig, g: GeneratorConfig,
                      hint: str = "") -> tuple[list[str], PatchSampleMLP]:
    """PatchNCE's layers (``nce.nce_layers`` of ``generator``, by name) and their MLP heads ``F``.

    Raises:
        ValueError: a named layer does not exist in ``generator``, or none is named; the message
            lists the valid names (and ``hint``).
    """
    layers = list(dict.fromkeys(nce.nce_layers))
    valid = generator.layer_names()
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise ValueError(f"nce_layers: unknown generator layer(s) {unknown}{hint}; valid names are {', '.join(valid)}")
    if not layers:
        raise ValueError(f"nce_layers is empty; choose generator layers among {', '.join(valid)}")
    channels = generator.layer_channels()
    heads = PatchSampleMLP({name: channels[name] for name in layers}, nce.nce_mlp_channels, init=g.init,
                           init_gain=g.init_gain)
    return layers, heads
