"""What the page asks for, answered from cached computations (thread-safe).

A *variant* of a run is the ``(step, style)`` its translation is shown at. Everything costly is
computed on demand and kept (least recently used first out): each run's translation of each image
per variant, the structure features of the image and of the translation, and the error maps. A
click on a point then only multiplies one query's feature vector with the cached features.
Computations run one at a time (one lock): the CPU's cores go to the torch ops.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.images import tensor_to_pil
from ..viz.errormap import sesim_error
from ..viz.heatmap import colorize
from .inputs import ViewImage
from .maps import features, local_window, query
from .runs import ViewError, ViewRun

#: blend weight of the heat colours over the image (as in ``sesim viz heatmap``)
HEAT_ALPHA = 0.6
#: cached results kept (translations, features, error maps)
CACHE_ENTRIES = 192

Variant = tuple[int, "int | str"]


class _LRU:
    def __init__(self, size: int) -> None:
        self.size, self.data = size, OrderedDict()

    def get(self, key, compute: Callable):
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        value = self.data[key] = compute()
        while len(self.data) > self.size:
            self.data.popitem(last=False)
        return value


def _values(a: np.ndarray) -> list:
    """``(h, w)`` floats -> a row-major list for JSON (``None`` where NaN)."""
    return [None if not math.isfinite(v) else round(float(v), 5) for v in a.ravel()]


def _pick(items: list, index: int, what: str):
    if not 0 <= index < len(items):
        raise ViewError(f"no {what} {index}; there are {len(items)}")
    return items[index]


def _png(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    tensor_to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


class ViewSession:
    """The runs and images of one ``sesim view``; every answer is a dict (JSON) or PNG bytes."""

    def __init__(self, runs: Sequence[ViewRun], images: Sequence[ViewImage]) -> None:
        if not runs:
            raise ViewError("give at least one --run")
        if not images:
            raise ViewError("no input images")
        self.runs, self.images = list(runs), list(images)
        self._lock = threading.Lock()
        self._cache = _LRU(CACHE_ENTRIES)

    def clear_cache(self) -> None:
        """Forget every computed translation, feature and error map (for benchmarks)."""
        with self._lock:
            self._cache.data.clear()

    # -- validation --------------------------------------------------------------------------
    def image(self, index: int) -> ViewImage:
        return _pick(self.images, index, "image")

    def run(self, index: int) -> ViewRun:
        return _pick(self.runs, index, "run")

    def default_variant(self, run: ViewRun) -> Variant:
        return run.latest, "ref" if run.reference_style is not None else 0

    def variants(self, given: dict[int, Variant] | None) -> list[Variant]:
        """One variant per run: the given ones (checked), the run's default for the others."""
        given = given or {}
        for k in given:
            self.run(k)
        out = []
        for k, run in enumerate(self.runs):
            step, style = given.get(k, self.default_variant(run))
            run.check_variant(step, style)
            out.append((step, style))
        return out

    def layer_for(self, run: ViewRun, layer: str) -> str:
        """``layer`` if ``run`` uses it, else the run's layer at the same position in the first
        run's list (runs may use different feature networks)."""
        if layer in run.layers:
            return layer
        first = self.runs[0].layers
        if layer not in first and not any(layer in r.layers for r in self.runs):
            raise ViewError(f"unknown layer {layer!r}; the runs use {sorted({n for r in self.runs for n in r.layers})}")
        position = first.index(layer) if layer in first else 0
        return run.layers[min(position, len(run.layers) - 1)]

    # -- cached computations (call with the lock held) ---------------------------------------
    def _translation(self, k: int, i: int, variant: Variant) -> torch.Tensor:
        run = self.runs[k]
        return self._cache.get(("y", k, i, variant), lambda: run.translate(self.images[i].image, *variant))

    def _features(self, k: int, i: int, variant: Variant | None) -> dict[str, torch.Tensor]:
        """Run ``k``'s structure features of image ``i`` (``variant=None``) or of its translation."""
        run = self.runs[k]
        image = (lambda: self.images[i].image) if variant is None else (lambda: self._translation(k, i, variant))
        return self._cache.get(("f", k, i, variant), lambda: features(run.structure, image()))

    def _warm(self, k: int, i: int, variant: Variant) -> None:
        with self._lock:
            self._features(k, i, None)
            self._features(k, i, variant)

    # -- answers -----------------------------------------------------------------------------
    def info(self) -> dict:
        ramp = colorize(np.linspace(0.0, 1.0, 256)[None])[0]
        return {
            "runs": [run.describe() for run in self.runs],
            "images": [{"id": i, "name": im.name, "width": im.image.shape[-1], "height": im.image.shape[-2]}
                       for i, im in enumerate(self.images)],
            "defaults": [{"step": s, "style": st} for s, st in self.variants(None)],
            "ramp": ramp.tolist(), "alpha": HEAT_ALPHA,
        }

    def image_png(self, i: int) -> bytes:
        return _png(self.image(i).image)

    def translation_png(self, i: int, k: int, variant: Variant, *, warm: bool = True) -> bytes:
        """The translation as PNG; with ``warm``, the features for clicks are computed right after,
        in the background, so that the first click on this image is answered from the cache."""
        self.image(i)
        self.run(k)
        variant = self.variants({k: variant})[k]
        with self._lock:
            png = _png(self._translation(k, i, variant))
        if warm:
            threading.Thread(target=self._warm, args=(k, i, variant), daemon=True).start()
        return png

    def query(self, i: int, point: tuple[int, int], layer: str, mode: str = "run",
              variants: dict[int, Variant] | None = None) -> dict:
        """Maps of the query at image pixel ``point = (x, y)``: one panel for the input (drawn by the
        first run's loss) and one per run's translation, each with its own colour range (shared by
        the pair it belongs to), and each run's per-query structure distance.

        ``mode``: ``"local"`` (the loss's window, or the paper's 32 for a global-map loss),
        ``"global"`` (whole map) or ``"run"`` (whatever the run's loss uses)."""
        t0 = time.perf_counter()
        image = self.image(i).image
        h, w = image.shape[-2:]
        x, y = point
        if not (0 <= x < w and 0 <= y < h):
            raise ViewError(f"point x={x}, y={y} lies outside the {w}x{h} image")
        if mode not in ("run", "local", "global"):
            raise ViewError(f"mode must be run, local or global, got {mode!r}")
        chosen = self.variants(variants)
        panels, losses = [], []
        with self._lock:
            for k, (run, variant) in enumerate(zip(self.runs, chosen)):
                name = self.layer_for(run, layer)
                window = {"run": run.structure.patch_size, "local": local_window(run.structure), "global": None}[mode]
                res = query(run.structure, self._features(k, i, None), self._features(k, i, variant), name,
                            (x, y), (h, w), window)
                lo = float(np.nanmin([res.map_x, res.map_y]))
                hi = float(np.nanmax([res.map_x, res.map_y]))
                cell = {"layer": name, "h": res.map_x.shape[0], "w": res.map_x.shape[1], "row": res.cell[0],
                        "col": res.cell[1], "window": res.window, "lo": lo, "hi": hi}
                if k == 0:
                    panels.append({"kind": "input", "run": 0, **cell, "values": _values(res.map_x)})
                panels.append({"kind": "translation", "run": k, **cell, "values": _values(res.map_y)})
                losses.append({"run": k, "layer": name, "value": res.distance, "distance": run.structure.distance,
                               "window": res.window})
        return {"image": i, "x": x, "y": y, "layer": layer, "mode": mode, "panels": panels, "losses": losses,
                "variants": [{"step": s, "style": st} for s, st in chosen],
                "ms": round(1000 * (time.perf_counter() - t0), 2)}

    def errors(self, i: int, variants: dict[int, Variant] | None = None) -> dict:
        """Each run's error map of its translation against the input (its own loss, all layers),
        one panel per translation with the range 0 .. its largest error."""
        t0 = time.perf_counter()
        self.image(i)
        chosen = self.variants(variants)
        panels = []
        with self._lock:
            for k, (run, variant) in enumerate(zip(self.runs, chosen)):
                err = self._cache.get(("err", k, i, variant), lambda: sesim_error(
                    self.images[i].image, self._translation(k, i, variant), run.structure))
                panels.append({"kind": "translation", "run": k, "h": err.shape[0], "w": err.shape[1],
                               "lo": 0.0, "hi": float(err.max()), "mean": float(err.mean()),
                               "values": _values(err)})
        return {"image": i, "panels": panels, "variants": [{"step": s, "style": st} for s, st in chosen],
                "ms": round(1000 * (time.perf_counter() - t0), 2)}
