"""Structure-preserving augmentations: LSeSim's positives (same layout, different appearance).

They run on batched tensors on the training device, with per-image random factors from torch's
global RNG (so a resumed run draws the same ones). Geometry is never changed, so location ``i``
of the augmented image is location ``i`` of the original.
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF


def color_jitter(images: torch.Tensor, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                 hue: float = 0.3) -> torch.Tensor:
    """Random brightness/contrast/saturation/hue per image, in random order (like torchvision's
    ColorJitter with the public code's strengths 0.5, 0.5, 0.5, 0.3).

    Args:
        images: ``(N, C, H, W)`` in [-1, 1], ``C`` = 3 (or 1: saturation and hue are skipped).

    Returns:
        ``(N, C, H, W)`` in [-1, 1].
    """
    x = (images.detach() + 1) * 0.5
    out = []
    for img in x:
        ops = [
            (TF.adjust_brightness, 1 + brightness * (2 * torch.rand(()).item() - 1)),
            (TF.adjust_contrast, 1 + contrast * (2 * torch.rand(()).item() - 1)),
        ]
        if img.shape[0] == 3:
            ops.append((TF.adjust_saturation, 1 + saturation * (2 * torch.rand(()).item() - 1)))
            ops.append((TF.adjust_hue, hue * (2 * torch.rand(()).item() - 1)))
        for k in torch.randperm(len(ops)).tolist():
            fn, factor = ops[k]
            img = fn(img, factor)
        out.append(img.clamp(0, 1))
    return torch.stack(out) * 2 - 1


def blur_and_noise(images: torch.Tensor, max_sigma: float = 1.5, max_noise: float = 0.1) -> torch.Tensor:
    """Random Gaussian blur (sigma in [0, max_sigma] px) and additive noise (std up to
    ``max_noise`` in [-1, 1] units) per image: changes texture, keeps layout.

    Args/returns: ``(N, C, H, W)`` in [-1, 1].
    """
    out = []
    for img in images.detach():
        sigma = max_sigma * torch.rand(()).item()
        if sigma > 0.3:
            k = 2 * int(round(2 * sigma)) + 1
            img = TF.gaussian_blur(img, [k, k], [sigma, sigma])
        img = img + max_noise * torch.rand(()).item() * torch.randn_like(img)
        out.append(img.clamp(-1, 1))
    return torch.stack(out)


def structure_preserving_augment(images: torch.Tensor, kind: str = "color") -> torch.Tensor:
    """``"color"``: :func:`color_jitter` (public code); ``"color_blur"``: then :func:`blur_and_noise`."""
    if kind == "color":
        return color_jitter(images)
    if kind == "color_blur":
        return blur_and_noise(color_jitter(images))
    raise ValueError(f"unknown augmentation {kind!r}; choose color or color_blur")
