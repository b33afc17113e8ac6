"""A feature space for realism scores (Frechet distance, KID), trained only on real images.

FID measures realism in the feature space of an Inception-v3 trained on ImageNet. That network
cannot be downloaded on the machines sesim's benchmark targets, and a randomly initialised one
gives features that barely react to what distinguishes the domains. :class:`RealismFeatures` is a
small CNN trained, from scratch and **only on real images** (never on generator output), on three
tasks at once:

* **domain**: is this a real domain-A or a real domain-B image? (the features must notice exactly
  what a translator has to change);
* **rotation** (self-supervised, Gidaris et al. 2018): which of 0/90/180/270 degrees was the
  image rotated by? (asks for features about content and layout, not only global colour);
* **degradation**: was this real image blurred, noised or pixelated (half of the images are,
  synthetically)? (asks for features that notice blur, noise and blockiness, the usual generator
  artefacts -- learned from degraded copies of real images, never from generator output).

Inputs are augmented with random horizontal flips and random shifts (up to 1/8 of the size,
reflection padding). The network is four conv + BatchNorm + ReLU stages (stride 2, 2, 2, 1); the
features are the global average of the last one (``dim`` values, after ReLU), like Inception's
pool3. Training is deterministic given ``seed`` (same machine, same thread count); 1500 steps take
about 50 s on one CPU thread at 64 px.

What the features capture depends on the task. Measured after 1500 steps, FD against held-out
real B images, relative to the FD of the true targets: on the built-in scenes task, blurred
targets (2x down and up) score about 100x higher, noisy (sigma 12/255) ones 100x, upside-down ones
200x, the untranslated inputs 100x; on the real-photo task the untranslated inputs score 450x
higher, blurred targets 60x, noisy ones only 6x and upside-down ones 5x -- there the features are
mostly about colour and tone (the domain cue), less about detail, and not about orientation.

Frechet distance and KID computed on these features (:mod:`sesim.metrics.frechet`) are useful
to *compare translators on the same task and reference set*; they are **not comparable to
published FID/KID numbers**, to numbers from another task, or to another fit of the extractor.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["RealismFeatures"]


def _to_tensor(images) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 (or ``(N, 3, H, W)`` float in [-1, 1]) -> ``(N, 3, H, W)`` float in [-1, 1]."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, H, W) tensor, got {tuple(images.shape)}")
        return images.float()
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class _Net(nn.Module):
    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        w = width

        def block(cin: int, cout: int, k: int, s: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2 if s == 1 else 1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU())

        self.stages = nn.ModuleList([
            block(3, w, 4, 2),            # H/2
            block(w, 2 * w, 4, 2),        # H/4
            block(2 * w, 4 * w, 4, 2),    # H/8
            block(4 * w, dim, 3, 1),      # H/8
        ])
        self.domain = nn.Linear(dim, 2)
        self.rotation = nn.Linear(dim, 4)
        self.degraded = nn.Linear(dim, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x.mean(dim=(2, 3))


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (separable, 7 taps, reflect padding)."""
    n, c, h, w = x.shape
    t = torch.arange(-3, 4, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # (n, 7)
    y = F.pad(x, (3, 3, 3, 3), mode="reflect").reshape(1, n * c, h + 6, w + 6)
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(y, kk[:, None, None, :], groups=n * c)
    y = F.conv2d(y, kk[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def degrade(x: torch.Tensor, kind: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Synthetic degradations of real images: 0 none, 1 blur, 2 noise, 3 pixelation (per image ``kind``)."""
    n, _, h, w = x.shape
    out = x.clone()
    sel = kind == 1
    if sel.any():
        sigma = torch.empty(int(sel.sum())).uniform_(0.7, 2.0, generator=g)
        out[sel] = _blur(x[sel], sigma)
    sel = kind == 2
    if sel.any():
        amp = torch.empty(int(sel.sum()), 1, 1, 1).uniform_(0.04, 0.15, generator=g)
        out[sel] = (x[sel] + amp * torch.randn(x[sel].shape, generator=g)).clamp(-1, 1)
    sel = kind == 3
    if sel.any():
        f = 2 if torch.rand(1, generator=g).item() < 0.5 else 4
        small = F.avg_pool2d(x[sel], f)
        out[sel] = F.interpolate(small, size=(h, w), mode="nearest")
    return out


class RealismFeatures:
    """Small CNN feature extractor for FD/KID, trained only on real A and real B images.

    ``fit(real_a, real_b)`` trains it (``(N, H, W, 3)`` uint8 arrays, any square size >= 16);
    ``features(images)`` returns ``(N, dim)`` float64 features.
    """

    def __init__(self, *, dim: int = 64, width: int = 16, steps: int = 1500, batch_size: int = 32,
                 lr: float = 2e-3, seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.dim, self.width, self.steps, self.batch_size = int(dim), int(width), int(steps), int(batch_size)
        self.lr, self.seed = float(lr), int(seed)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
        self.net: _Net | None = None
        self.history: list[dict[str, float]] = []

    # -- training
    @staticmethod
    def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random horizontal flip and random shift by up to 1/8 of the size (reflection padding);
        integer shifts, so no interpolation blur."""
        n, _, h, w = x.shape
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        ph, pw = max(1, h // 8), max(1, w // 8)
        padded = F.pad(x, (pw, pw, ph, ph), mode="reflect")
        dy = torch.randint(0, 2 * ph + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * pw + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, x.shape[1], h, padded.shape[-1])
        out = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, x.shape[1], h, w)
        return out.gather(3, cols)

    def fit(self, real_a, real_b) -> "RealismFeatures":
        a, b = _to_tensor(real_a), _to_tensor(real_b)
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(f"real A {tuple(a.shape[1:])} and real B {tuple(b.shape[1:])} must have the same size")
        if a.shape[-1] != a.shape[-2]:
            raise ValueError("images must be square (the rotation task rotates them)")
        g = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = _Net(self.dim, self.width).to(self.device)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=(0.5, 0.999))
        half = max(1, self.batch_size // 2)
        self.net.train()
        self.history = []
        for step in range(self.steps):
            ia = torch.randint(0, a.shape[0], (half,), generator=g)
            ib = torch.randint(0, b.shape[0], (half,), generator=g)
            x = self._augment(torch.cat([a[ia], b[ib]]), g)
            n = x.shape[0]
            dom = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(half, dtype=torch.long)])
            kind = torch.where(torch.rand(n, generator=g) < 0.5, torch.randint(1, 4, (n,), generator=g), 0)
            x = degrade(x, kind, g)
            rot = torch.randint(0, 4, (n,), generator=g)
            for k in range(1, 4):
                x[rot == k] = torch.rot90(x[rot == k], k, dims=(2, 3))
            x, dom, rot, kind = (t.to(self.device) for t in (x, dom, rot, kind))
            f = self.net.features(x)
            loss_dom = F.cross_entropy(self.net.domain(f), dom)
            loss_rot = F.cross_entropy(self.net.rotation(f), rot)
            loss_deg = F.cross_entropy(self.net.degraded(f), (kind > 0).long())
            opt.zero_grad(set_to_none=True)
            (loss_dom + loss_rot + loss_deg).backward()
            opt.step()
            if step % 50 == 0 or step == self.steps - 1:
                self.history.append({"step": step, "domain": loss_dom.item(), "rotation": loss_rot.item(),
                                     "degraded": loss_deg.item()})
        self.net.eval()
        return self

    # -- inference
    @torch.no_grad()
    def features(self, images, *, batch: int = 256) -> np.ndarray:
        """``(N, dim)`` float64 features of ``(N, H, W, 3)`` uint8 images (or ``(N, 3, H, W)`` in [-1, 1])."""
        if self.net is None:
            raise RuntimeError("RealismFeatures is not fitted; call fit(real_a, real_b) first")
        x = _to_tensor(images)
        out = [self.net.features(x[i : i + batch].to(self.device)).cpu() for i in range(0, x.shape[0], batch)]
        return torch.cat(out).double().numpy()

    @torch.no_grad()
    def domain_accuracy(self, real_a, real_b) -> float:
        """Accuracy of the domain head on (held-out) real images: how separable the domains are."""
        fa, fb = (torch.from_numpy(self.features(v)).float().to(self.device) for v in (real_a, real_b))
        pa, pb = self.net.domain(fa).argmax(1), self.net.domain(fb).argmax(1)
        return float(torch.cat([pa == 0, pb == 1]).float().mean())

    def state_dict(self) -> dict:
        if self.net is None:
            raise RuntimeError("RealismFeatures is not fitted")
        return {"config": {"dim": self.dim, "width": self.width}, "net": self.net.state_dict()}

    def load_state_dict(self, state: dict) -> "RealismFeatures":
        self.dim, self.width = int(state["config"]["dim"]), int(state["config"]["width"])
        self.net = _Net(self.dim, self.width)
        self.net.load_state_dict(state["net"])
        self.net.to(self.device)
        self.net.eval()
        return self

