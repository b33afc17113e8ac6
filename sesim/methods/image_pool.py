"""History buffer of generated images for discriminator updates (Shrivastava et al. 2017; CycleGAN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["ImagePool"]


class ImagePool:
    """Buffer of previously generated images, so D is also trained on older fakes.

    ``query`` processes images one by one: while the pool holds fewer than ``pool_size``
    images, the image is stored and returned. Once full, with probability 0.5 a uniformly
    chosen stored image is returned and replaced by the new one; otherwise the new image is
    returned and the pool is unchanged. ``pool_size=0`` disables the buffer (inputs are
    returned unchanged).

    All randomness comes from torch's global RNG (``torch.rand`` / ``torch.randint``), or from
    ``generator`` if one is given, so saving and restoring the RNG state together with
    :meth:`state_dict` reproduces a run exactly.

    Stored (and returned) images are detached copies, so the result never carries gradients
    back into the generator (except in pass-through mode, where the input itself is returned).
    """

    def __init__(self, pool_size: int = 50, generator: torch.Generator | None = None) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.generator = generator
        self.images: list[Tensor] = []  # each (C, H, W)

    def __len__(self) -> int:
        """Number of images currently stored."""
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """Exchange a batch of new fakes against the history.

        Args:
            images: (N, C, H, W) generated images (typically in [-1, 1]).

        Returns:
            (N, C, H, W) tensor on ``images``' device and dtype, mixing new and stored images
            (detached), or ``images`` itself when ``pool_size == 0``.
        """
        if self.pool_size == 0:
            return images
        if images.dim() != 4:
            raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(images.shape)}")
        out: list[Tensor] = []
        for image in images.detach():
            image = image.clone()
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
                continue
            if torch.rand((), generator=self.generator).item() < 0.5:
                idx = int(torch.randint(0, self.pool_size, (), generator=self.generator).item())
                old = self.images[idx]
                self.images[idx] = image
                out.append(old.to(device=images.device, dtype=images.dtype))
            else:
                out.append(image)
        return torch.stack(out, dim=0)

    def state_dict(self) -> dict[str, Any]:
        """``{"pool_size": int, "images": list of (C, H, W) tensors}`` (copies, in pool order)."""
        return {"pool_size": self.pool_size, "images": [img.clone() for img in self.images]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`. ``images`` may also be a stacked (K, C, H, W) tensor.

        Raises:
            ValueError: if the stored pool size differs from this pool's or there are too many images.
        """
        size = int(state["pool_size"])
        if size != self.pool_size:
            raise ValueError(f"state has pool_size={size}, this pool has pool_size={self.pool_size}")
        imgs: Tensor | Sequence[Tensor] = state["images"]
        images = [img.detach().clone() for img in imgs]
        if len(images) > self.pool_size:
            raise ValueError(f"state holds {len(images)} images, more than pool_size={self.pool_size}")
        self.images = images
