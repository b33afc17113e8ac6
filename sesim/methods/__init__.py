"""Training recipes. Each file owns one; ``build_method`` picks one by the config's ``method``."""

import torch

from ..config import TrainConfig
from .base import Method, NonFiniteLossError
from .cut import CUTMethod
from .cyclegan import CycleGANMethod
from .sesim import SeSimMethod
from .sesim import build_generator as _build_translation_generator

METHODS: dict[str, type[Method]] = {"sesim": SeSimMethod, "cyclegan": CycleGANMethod, "cut": CUTMethod}


def build_generator(cfg: TrainConfig) -> torch.nn.Module:
    """The network a run saves and ``sesim translate`` rebuilds from ``config.json``."""
    if cfg.model.mode == "exemplar":  # correspondence + SPADE generator in one module
        from .exemplar import build_exemplar_translator

        return build_exemplar_translator(cfg)
    return _build_translation_generator(cfg)


def build_method(cfg: TrainConfig) -> Method:
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; available: {', '.join(METHODS)}")
    if cfg.model.mode == "exemplar":  # --mode exemplar: MCL-Net (correspondence + SPADE G + multi-scale D)
        if cfg.method != "sesim":
            raise ValueError(f"--mode exemplar has its own recipe; --method {cfg.method!r} does not apply")
        from .exemplar import ExemplarMethod

        return ExemplarMethod(cfg)
    if cfg.model.mode == "multimodal":  # --mode multimodal: MUNIT-style G + multi-scale D
        if cfg.method != "sesim":
            raise ValueError(f"--mode multimodal trains the sesim method only, not {cfg.method!r}")
        from .multimodal import MultimodalMethod

        return MultimodalMethod(cfg)
    if cfg.model.mode == "single-image":  # --mode single-image: StyleGAN2-style G/D on patches of one image pair
        from .single_image import SingleImageSeSimMethod, SinCUTMethod

        if cfg.method not in ("sesim", "cut"):
            raise ValueError(f"--mode single-image trains the sesim or cut (SinCUT) method, not {cfg.method!r}")
        return SingleImageSeSimMethod(cfg) if cfg.method == "sesim" else SinCUTMethod(cfg)
    if cfg.method == "sesim" and cfg.loss.structure == "patchnce":
        return CUTMethod(patchnce_content_config(cfg))
    return METHODS[cfg.method](cfg)


def patchnce_content_config(cfg: TrainConfig) -> TrainConfig:
    """The content-loss ablation ``--structure patchnce``: the one-sided sesim recipe with PatchNCE
    (weighted by ``lambda_structure``) in place of F/LSeSim is exactly CUT without its identity
    term and flips, so it is trained by :class:`CUTMethod` with those settings."""
    out = TrainConfig.from_dict(cfg.to_dict())
    out.method = "cut"
    out.update("loss", {"lambda_nce": cfg.loss.lambda_structure, "nce_idt": False, "flip_equivariance": False})
    return out


__all__ = ["METHODS", "CUTMethod", "CycleGANMethod", "Method", "NonFiniteLossError", "SeSimMethod", "build_generator", "build_method"]
