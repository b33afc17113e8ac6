"""A run folder, opened: its configuration, its generators, its training state.

Every command that reads a run folder (``train --resume``, ``translate``, ``evaluate``, ``viz``,
``view``, ``export``) opens it through :class:`Run`, so a folder is validated one way and every
problem with it is a :class:`RunError` naming the file and what to do.

Generators are rebuilt from the arguments stored next to their weights
(:mod:`sesim.nets.described`); folders written before generators carried them are rebuilt from
``config.json`` (:mod:`sesim.factory`). Neither path imports a training recipe; :meth:`Run.method`
does, for the commands that need the whole trained method (the LSeSim heads of ``viz``/``view``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    CONFIG_FILE, STATE_FILE, RunFileError, generator_file, generator_metadata, load_generator_weights, load_state,
)
from .config import TrainConfig
from .factory import build_generator
from .methods import Method, build_method
from .nets.described import NetworkSpecError
from .nets.registry import build_network
from .runtime import seed_everything

__all__ = ["Run", "RunError", "load_generator"]


class RunError(ValueError):
    """A run folder that cannot be used as asked (missing, not a run, damaged, lacking a file)."""


def load_generator(path: str | Path, cfg: TrainConfig | None = None, *, device: str | torch.device = "cpu",
                   what: str = "") -> nn.Module:
    """The generator in a ``.safetensors`` file, rebuilt from the arguments stored with it (or, for
    older files, from ``cfg``), weights loaded, in eval mode on ``device``.

    Raises:
        RunError: no such file, a damaged file, or weights of another network.
    """
    path = Path(path)
    try:
        state = load_generator_weights(path)
    except (FileNotFoundError, RunFileError) as err:
        raise RunError(str(err)) from None
    spec = generator_metadata(path).get("network")
    try:
        if spec:
            generator = build_network(spec)
        elif cfg is not None:
            generator = build_generator(cfg.mode, cfg.data, cfg.generator, cfg.exemplar)
        else:
            raise RunError(f"{path} does not say which network it holds (written by an older sesim); pass the run "
                           "folder it came from")
        generator.load_state_dict(state)
    except (RuntimeError, NetworkSpecError) as err:  # keys or shapes of another network
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunError(f"{path} does not hold the generator of {what or 'this run'} ({first}); pass the weights of "
                       "this run, or the run folder they came from") from None
    return generator.to(device).eval()


class Run:
    """An existing run folder. ``Run(path)`` checks it and reads ``config.json``."""

    def __init__(self, path: str | Path) -> None:
        self.dir = Path(path)
        if not self.dir.exists():
            raise RunError(f"run folder {self.dir} does not exist")
        if not self.dir.is_dir():
            raise RunError(f"{self.dir} is a file; give a run folder")
        if not (self.dir / CONFIG_FILE).is_file():
            raise RunError(f"{self.dir} is not a sesim run folder (no {CONFIG_FILE})")
        try:
            self.config = TrainConfig.load(self.dir / CONFIG_FILE)
        except ValueError as err:
            raise RunError(str(err)) from None

    @property
    def name(self) -> str:
        return self.dir.name

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    # -- generators ------------------------------------------------------------------------
    def generator_path(self, direction: str = "AtoB") -> Path:
        """``generator.safetensors`` (AtoB) or ``generator_BtoA.safetensors``, checked to exist."""
        path = self.dir / generator_file(direction)
        if not path.is_file():
            if direction != "AtoB" and (self.dir / generator_file("AtoB")).is_file():
                raise RunError(f"{path} not found: method {self.config.method!r} is one-sided and only translates AtoB")
            raise RunError(f"{path} not found: the run has not saved a generator yet")
        return path

    def generator(self, direction: str = "AtoB", *, weights: str | Path | None = None,
                  device: str | torch.device = "cpu") -> nn.Module:
        """The run's latest generator for ``direction`` (or the one in ``weights``), in eval mode."""
        path = Path(weights) if weights else self.generator_path(direction)
        return load_generator(path, self.config, device=device, what=str(self.dir / CONFIG_FILE))

    # -- training state --------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def state(self) -> dict[str, Any]:
        """The resume state (``checkpoint.pt``)."""
        if not self.state_path.is_file():
            raise RunError(f"{self.state_path} not found: the run has not saved a checkpoint yet")
        try:
            return load_state(self.state_path)
        except RunFileError as err:
            raise RunError(str(err)) from None

    def method(self, device: str | torch.device = "cpu") -> Method:
        """The run's training method with every trained network (from ``checkpoint.pt``), in eval mode.

        Seeds torch with the run's seed first, so that a randomly initialised (untrained, unsaved)
        feature network comes out identical to the one the run was trained with."""
        state = self.state()
        seed_everything(self.config.run.seed)
        method = build_method(self.config)
        method.load_trainable_state_dict(state["method"])
        return method.to(device).eval()
