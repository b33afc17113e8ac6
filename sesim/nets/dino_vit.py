"""DINO's ViT-B/8, built here (no torch.hub, no download), with weights from a user-supplied file.

The layout and parameter names are those of the ``vision_transformer.py`` of
facebookresearch/dino, so the released backbone state dict ``dino_vitbase8_pretrain.pth`` (what
``torch.hub.load('facebookresearch/dino:main', 'dino_vitb8')`` downloads into the torch hub
cache) loads key by key, strictly:

* ``patch_embed.proj``: 8 x 8 conv, stride 8, 3 -> 768; ``cls_token`` (1, 1, 768); ``pos_embed``
  (1, 1 + 28 * 28, 768) for 224 px inputs, bicubically resized for other grids as DINO does
  (``scale_factor = (n + 0.1) / 28`` per side);
* 12 pre-norm blocks ``blocks.i``: ``norm1`` -> ``attn.qkv`` (768 -> 3 x 768, with bias; 12 heads) ->
  softmax attention -> ``attn.proj``, residual; ``norm2`` -> ``mlp.fc1`` (768 -> 3072) -> GELU ->
  ``mlp.fc2``, residual. LayerNorm eps 1e-6. Final ``norm``; no classification head.

Only what the DINO-Struct metric needs is exposed: :meth:`DinoViT.last_keys` returns the attention
*keys* of the last block (the middle third of its ``qkv`` output, all heads concatenated), for
``(N, 3, H, W)`` inputs already normalised with ImageNet statistics, H and W multiples of 8 (extra
pixels are dropped by the patch conv, as in DINO). Small widths/depths exist for tests.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .weightfiles import load_weights_file, require_weights_file

__all__ = ["DINO_VITB8_FILE", "DINO_ENV", "DinoViT", "find_dino_weights"]

DINO_VITB8_FILE = "dino_vitbase8_pretrain.pth"
DINO_ENV = "SESIM_DINO_WEIGHTS"


def find_dino_weights(path: str | os.PathLike | None = None) -> Path:
    """Locate ``dino_vitbase8_pretrain.pth`` (flag path, ``$SESIM_DINO_WEIGHTS``, torch hub cache) or raise
    ``WeightsNotFoundError`` naming it."""
    return require_weights_file(
        DINO_VITB8_FILE, "DINO ViT-B/8", path=path, env=DINO_ENV, flag="--dino-weights",
        source_hint="It is the backbone released by facebookresearch/dino (dino_vitbase8_pretrain/"
                    "dino_vitbase8_pretrain.pth); torch.hub.load('facebookresearch/dino:main', 'dino_vitb8') on a "
                    "machine with internet leaves it in that machine's torch hub cache.")


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoViT(nn.Module):
    """ViT with DINO's parameter names (see the module doc).

    Args:
        weights: path to a DINO backbone state dict, ``"auto"`` (find ``dino_vitbase8_pretrain.pth``;
            raises ``WeightsNotFoundError`` naming it when absent) or ``None`` (random init: tests only,
            :attr:`weights_source` is then ``"random"``).
        dim, depth, heads, patch, grid: the architecture (defaults: ViT-B/8 at 224 px, 28 x 28 patches).
    """

    def __init__(self, weights: str | os.PathLike | None = "auto", *, dim: int = 768, depth: int = 12,
                 heads: int = 12, patch: int = 8, grid: int = 28, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        path = None if weights is None else find_dino_weights(None if weights == "auto" else weights)  # fail fast
        self.patch = patch
        self.patch_embed = _PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        if weights is None:
            gen = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in self.parameters():
                    if p.ndim > 1:
                        p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            self.weights_source, self.weights_file = "random", None
        else:
            state = load_weights_file(path, "DINO ViT-B/8")
            if isinstance(state, dict) and "teacher" in state:  # a full DINO training checkpoint
                state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state["teacher"].items()
                         if not k.removeprefix("module.").startswith("head.")}
            try:
                self.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise ValueError(f"{path} is not a DINO ViT backbone state dict of this size "
                                 f"(dim {dim}, depth {depth}, patch {patch}): {str(err)[:300]}") from None
            self.weights_source, self.weights_file = str(path), path
        self.eval().requires_grad_(False)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        """Position embeddings for an ``h x w`` patch grid (DINO's bicubic interpolation)."""
        n = self.pos_embed.shape[1] - 1
        if h * w == n and h == w:
            return self.pos_embed
        side = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((h + 0.1) / side, (w + 0.1) / side), mode="bicubic",
                             align_corners=False)
        if grid.shape[-2:] != (h, w):
            raise ValueError(f"position embedding resized to {tuple(grid.shape[-2:])}, expected {(h, w)}")
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` normalised images -> ``(N, 1 + h * w, dim)`` input tokens (CLS first)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) images, got {tuple(x.shape)}")
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        if h < 1 or w < 1:
            raise ValueError(f"images must be at least {self.patch} px per side, got {tuple(x.shape[-2:])}")
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        return t + self._pos_embed(h, w)

    @torch.no_grad()
    def last_keys(self, x: torch.Tensor) -> torch.Tensor:
        """Keys of the last block's attention, ``(N, T, dim)`` (T = 1 + patches, CLS first; heads concatenated)."""
        t = self.tokens(x)
        for block in self.blocks[:-1]:
            t = block(t)
        last = self.blocks[-1]
        dim = t.shape[-1]
        return last.attn.qkv(last.norm1(t))[..., dim:2 * dim]
