"""Training recipes. Each file owns one; :func:`build_method` picks one by ``(method, mode)`` and
gives it exactly the configuration sections it declares (:attr:`Method.sections`)."""

from __future__ import annotations

import dataclasses
import logging

from ..config import TrainConfig
from .base import Method, NonFiniteLossError
from .cut import CUTMethod
from .cyclegan import CycleGANMethod
from .exemplar import ExemplarMethod
from .multimodal import MultimodalMethod
from .sesim import SeSimMethod
from .single_image import SingleImageSeSimMethod, SinCUTMethod

log = logging.getLogger("sesim")

#: ``(--method, --mode)`` -> recipe
RECIPES: dict[tuple[str, str], type[Method]] = {
    ("sesim", "single-modal"): SeSimMethod,
    ("sesim", "multimodal"): MultimodalMethod,
    ("sesim", "single-image"): SingleImageSeSimMethod,
    ("cut", "single-modal"): CUTMethod,
    ("cut", "single-image"): SinCUTMethod,
    ("cyclegan", "single-modal"): CycleGANMethod,
    ("sesim", "exemplar"): ExemplarMethod,
}


def recipe(cfg: TrainConfig) -> tuple[type[Method], dict]:
    """The recipe class of ``cfg`` and the sections it is built with.

    One case is a translation, said here rather than hidden: ``--structure patchnce`` (the content-loss
    ablation) in the single-modal sesim recipe is exactly CUT without its identity term and flips,
    weighted by ``lambda_structure``; it is built as :class:`CUTMethod` with that NCE section.
    """
    key = (cfg.method, cfg.mode)
    if key not in RECIPES:
        methods = [method for (method, mode) in RECIPES if mode == cfg.mode]
        raise ValueError(f"--mode {cfg.mode} trains the {' or '.join(methods)} method only, not {cfg.method!r}")
    cls = RECIPES[key]
    sections = {name: getattr(cfg, name) for name in cls.sections}
    if cls is SeSimMethod and cfg.structure.structure == "patchnce":
        cls = CUTMethod
        nce = dataclasses.replace(cfg.nce, lambda_nce=cfg.structure.lambda_structure, nce_idt=False,
                                  flip_equivariance=False)
        sections = {name: nce if name == "nce" else getattr(cfg, name) for name in cls.sections}
    return cls, sections


def build_method(cfg: TrainConfig) -> Method:
    cls, sections = recipe(cfg)
    if cls is not RECIPES[(cfg.method, cfg.mode)]:
        log.info("--structure patchnce: training the single-modal recipe as CUT without identity NCE and flips "
                 "(lambda_nce = lambda_structure = %g)", cfg.structure.lambda_structure)
    return cls(**sections)


__all__ = ["RECIPES", "CUTMethod", "CycleGANMethod", "ExemplarMethod", "Method", "MultimodalMethod",
           "NonFiniteLossError",
           "SeSimMethod", "SinCUTMethod", "SingleImageSeSimMethod", "build_method", "recipe"]
