"""What every training recipe provides to the training loop (``sesim/train.py``)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..losses.gan import GANLoss
from .image_pool import ImagePool


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; raised before the offending update is applied."""

    def __init__(self, name: str, value: float) -> None:
        super().__init__(f"loss {name!r} is {value}; the update was not applied")
        self.name = name
        self.value = value


def checked(name: str, value: torch.Tensor) -> torch.Tensor:
    """Return ``value`` unchanged, or raise :class:`NonFiniteLossError` if it is NaN/inf."""
    v = float(value.detach())
    if not math.isfinite(v):
        raise NonFiniteLossError(name, v)
    return value


def update(optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer], loss: Tensor, name: str) -> None:
    """One step of each optimiser on ``loss`` (checked for NaN/inf before anything changes)."""
    optimizers = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    checked(name, loss).backward()
    for opt in optimizers:
        opt.step()


def discriminator_loss(D: nn.Module, gan: GANLoss, real: Tensor, fake: Tensor, pool: ImagePool | None = None) -> Tensor:
    """``gan``'s discriminator loss of ``D`` on ``real`` against ``fake`` (detached, through ``pool``)."""
    fake = fake.detach()
    return gan.discriminator_loss(D(real), D(pool.query(fake) if pool is not None else fake))


def discriminator_step(D: nn.Module, optimizer: torch.optim.Optimizer, gan: GANLoss, real: Tensor, fake: Tensor, *,
                       pool: ImagePool | None = None, penalty: Callable[[], Tensor] | None = None,
                       penalty_weight: float = 0.0) -> dict[str, float]:
    """One update of ``D`` (every recipe's, CycleGAN's two discriminators use the two functions above):
    :func:`discriminator_loss` plus ``penalty_weight * penalty()`` (a gradient penalty). ``D`` is
    left trainable. Returns the logged values ``D`` (and ``D_gp``, unweighted)."""
    D.requires_grad_(True)
    loss = discriminator_loss(D, gan, real, fake, pool)
    logs = {"D": loss.item()}
    if penalty is not None and penalty_weight > 0:
        gp = penalty()
        loss = loss + penalty_weight * gp
        logs["D_gp"] = gp.item()
    update(optimizer, loss, "D")
    return logs


def adam(params, optim: Any, lr: float | None = None) -> torch.optim.Adam:
    """Adam with the run's learning rate (or ``lr``) and betas (``optim``: the ``optim`` section)."""
    return torch.optim.Adam(params, lr=optim.lr if lr is None else lr, betas=(optim.beta1, optim.beta2))


class Method(nn.Module):
    """A training recipe: its networks (as named submodules), optimisers and one training step.

    A subclass lists the configuration sections it takes in :attr:`sections` (its constructor's
    keyword arguments; :func:`sesim.methods.build_method` passes exactly those, and they are kept
    in ``self.conf``), sets ``self.optimizers`` (name -> optimiser) and implements
    :meth:`train_step` and :meth:`generators`. The loop owns schedules, checkpoints and logging; a
    method owns what is optimised, in which order, with which weights.
    """

    #: the configuration sections the constructor takes (keyword arguments of the same names)
    sections: tuple[str, ...] = ()
    optimizers: dict[str, torch.optim.Optimizer]
    #: state-dict prefixes of fixed modules (e.g. a pretrained VGG) that checkpoints leave out
    frozen_prefixes: tuple[str, ...] = ()

    def __init__(self, **sections: Any) -> None:
        super().__init__()
        unknown = set(sections) - set(self.sections)
        if unknown:
            raise TypeError(f"{type(self).__name__} takes the sections {self.sections}, not {sorted(unknown)}")
        self.conf = SimpleNamespace(**sections)

    @classmethod
    def from_config(cls, cfg: Any) -> "Method":
        """This recipe built from the sections of a whole :class:`~sesim.config.TrainConfig` that it takes."""
        return cls(**{name: getattr(cfg, name) for name in cls.sections})

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def generators(self) -> dict[str, nn.Module]:
        """Translation networks by direction: ``{"AtoB": G}``; two-sided methods add ``"BtoA"``.

        Each is saved to the run folder (see :func:`sesim.checkpoint.generator_file`) and rebuilt
        by ``sesim translate`` from the arguments stored with its weights (:mod:`sesim.run`).
        """
        raise NotImplementedError

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """``(N, C, H, W)`` source images in [-1, 1] -> translations, same shape and range."""
        return self.generators()[direction](images)

    def sample_sources(self, images: torch.Tensor) -> torch.Tensor:
        """What the sample grids' "input" column shows of the inputs (the exemplar method's inputs
        carry the exemplar too). Default: the inputs themselves."""
        return images

    @torch.no_grad()
    def sample_columns(self, images: torch.Tensor) -> tuple[list[str], list[torch.Tensor]]:
        """What the training loop's sample grids show next to each input: column titles and, per
        column, ``(N, C, H, W)`` images in [-1, 1]. Default: one column, :meth:`translate`."""
        return ["translation"], [self.translate(images)]

    def feature_backbone(self) -> nn.Module | None:
        """The pretrained feature network of the content loss (``self.structure.extractor``), or
        ``None`` for methods without one (CUT, CycleGAN, GAN-only, pixel L1)."""
        return getattr(getattr(self, "structure", None), "extractor", None)

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """Options this recipe resolved while it was built (``"auto"`` layers made concrete), by
        section: ``{"structure": {"layers": (...)}}``. The training loop writes them into the run's
        configuration, so a resumed or translated run finds what it was trained with; the
        recipe's own sections are left as given. Default: the content loss's layers, if any."""
        layers = tuple(getattr(getattr(self, "structure", None), "layers", ()))
        if not layers:
            return {}
        perceptual = getattr(self.conf, "structure", None) and self.conf.structure.structure == "perceptual"
        return {"structure": {"perceptual_layers" if perceptual else "layers": layers}}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """``state_dict()`` without the fixed modules listed in :attr:`frozen_prefixes`."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self.frozen_prefixes)}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(self.frozen_prefixes)]
        if missing or unexpected:
            raise ValueError(f"checkpoint does not match the method: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def extra_state(self) -> dict[str, Any]:
        """Non-parameter training state to resume exactly: every :class:`ImagePool` attribute."""
        return {name: pool.state_dict() for name, pool in self._pools().items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for name, pool in self._pools().items():
            if name in state:
                pool.load_state_dict(state[name])

    def _pools(self) -> dict[str, ImagePool]:
        return {name: value for name, value in vars(self).items() if isinstance(value, ImagePool)}
