"""The exemplar-guided translator: MCL-Net's correspondence network and SPADE generator in one
module — what a run saves as ``generator.safetensors``, ``sesim translate`` loads and
``sesim export`` writes.

``translator(condition, exemplar)``: a conditional input ``(N, C_x, H, W)`` and an exemplar photo
``(N, C, H', W')`` (any size; both in [-1, 1]) -> a photo ``(N, C, H, W)`` in [-1, 1] with the
condition's layout and the exemplar's appearance. ``H`` and ``W`` must be multiples of
:attr:`stride` (``sesim translate`` pads).

With ``correspondence=False`` (the ablation "SPADE only", Table 3's baseline) there is no
correspondence network: the generator sees the exemplar resized to the output size but not
aligned with the condition (the paper's SPADE baseline takes the exemplar's style through a VAE
encoder instead; here the exemplar's pixels reach the generator, unaligned).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .correspondence import Correspondence, CorrespondenceNet
from .described import Described
from .spade import SPADEGenerator

__all__ = ["ExemplarTranslator"]


class ExemplarTranslator(Described):
    """Correspondence (optional) + SPADE generator driven by ``[condition, warped exemplar]``.

    Args:
        condition_channels, image_channels: channels of the conditional input and of photos.
        grid: side in pixels of the correspondence's input (the training size).
        correspondence: build the correspondence network (else: "SPADE only").
        channels, scm, scm_dim, temperature: see :class:`~sesim.nets.correspondence.CorrespondenceNet`.
        ngf, n_up, hidden: see :class:`~sesim.nets.spade.SPADEGenerator`.
    """

    def __init__(self, condition_channels: int = 3, image_channels: int = 3, *, grid: int = 64,
                 correspondence: bool = True, channels: int = 64, scm: bool = True, scm_dim: int = 256,
                 temperature: float = 0.01, ngf: int = 64, n_up: int = 3, hidden: int = 64) -> None:
        super().__init__()
        self.condition_channels, self.image_channels = condition_channels, image_channels
        self.correspondence = (CorrespondenceNet(condition_channels, image_channels, grid=grid, channels=channels,
                                                 scm=scm, scm_dim=scm_dim, temperature=temperature)
                               if correspondence else None)
        self.generator = SPADEGenerator(condition_channels + image_channels, image_channels, ngf=ngf, n_up=n_up,
                                        hidden=hidden)

    @property
    def stride(self) -> int:
        return self.generator.stride

    def guide(self, condition: torch.Tensor, exemplar: torch.Tensor,
              corr: Correspondence | None = None) -> torch.Tensor:
        """The generator's guide ``[condition, style image]`` at the condition's size: the warped exemplar
        (upsampled from the descriptor grid), or the exemplar itself without a correspondence network."""
        size = condition.shape[-2:]
        if exemplar.shape[0] != condition.shape[0]:  # one exemplar for the whole batch
            exemplar = exemplar.expand(condition.shape[0], -1, -1, -1)
        if self.correspondence is None:
            style = exemplar
        else:
            corr = corr if corr is not None else self.correspondence(condition, exemplar)
            style = corr.warped
        if tuple(style.shape[-2:]) != tuple(size):
            style = F.interpolate(style, size=size, mode="bilinear", align_corners=False)
        return torch.cat([condition, style], dim=1)

    def forward(self, condition: torch.Tensor, exemplar: torch.Tensor) -> torch.Tensor:
        self._check(condition, exemplar)
        return self.generator(self.guide(condition, exemplar))

    def _check(self, condition: torch.Tensor, exemplar: torch.Tensor) -> None:
        if condition.shape[1] != self.condition_channels or exemplar.shape[1] != self.image_channels:
            raise ValueError(f"expected a {self.condition_channels}-channel condition and a {self.image_channels}-"
                             f"channel exemplar, got {condition.shape[1]} and {exemplar.shape[1]} channels")
        if exemplar.shape[0] not in (1, condition.shape[0]):
            raise ValueError(f"{exemplar.shape[0]} exemplars for {condition.shape[0]} conditions (give one, or one each)")
