"""Training recipes. Each file owns one; ``build_method`` picks one by the config's ``method``."""

from ..config import TrainConfig
from .base import Method, NonFiniteLossError
from .cut import CUTMethod
from .cyclegan import CycleGANMethod
from .sesim import SeSimMethod, build_generator

METHODS: dict[str, type[Method]] = {"sesim": SeSimMethod, "cyclegan": CycleGANMethod, "cut": CUTMethod}


def build_method(cfg: TrainConfig) -> Method:
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; available: {', '.join(METHODS)}")
    return METHODS[cfg.method](cfg)


__all__ = ["METHODS", "CUTMethod", "CycleGANMethod", "Method", "NonFiniteLossError", "SeSimMethod", "build_generator", "build_method"]
