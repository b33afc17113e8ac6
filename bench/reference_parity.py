"""Does sesim's ``public-code`` loss give the authors' ``Spatial_Loss``? Value and gradient, side by side.

Needs the authors' F-LSeSim code (``../shared/reference/F-LSeSim`` beside the repository, or
``--reference PATH``); without it this script says so and exits 0 without comparing anything.

Both sides get identical inputs: the same images, the same VGG16 weights (one fixed random-init
torchvision VGG16 state dict -- no ImageNet file exists on the benchmark machine; the comparison does
not depend on the weight values), the same query locations (the ones their ``PatchSim`` draws are
recorded and handed to sesim through ``SpatialCorrelativeLoss.forward(queries=...)``) and, for
LSeSim, the same head weights (theirs, built lazily on their first call, copied into sesim's
``StructureHead``\\ s). Cases:

* **FSeSim**, their ``SpatialCorrelativeLoss(loss_mode, 256, patch_size, use_norm=False)`` with
  ``attn_layers 4,7,9``: global maps (patch 64 at 256 px) and local windows (patch 32: relu3_1's
  64 x 64 map at 256 px uses 32 x 32 windows; relu4_x's 32 x 32 maps stay global, as in their code),
  ``cos`` and ``l1``.
* **LSeSim G step** (``--learned_attn``): the same loss through the 1x1-conv heads, heads frozen.
* **LSeSim head step**: their ``backward_F`` batch with ``--augment`` (source twice; translation and
  augmented source as positives; flipped target and augmented target as "other") against sesim's
  ``contrastive_loss`` with ``positive_vs_other=True`` on the same batch; the gradient compared is
  the one into the heads' weights.

Per case: the relative difference of the loss, ``|a - b| / |a|``, and of the gradient,
``max |g_a - g_b| / max |g_a|`` (into the translation image for the G-step losses). Each comparison
runs at two levels: **images** (both VGG16s, both input normalisations; the loss's full path) and
**features** (their VGG16's features fed to both map/distance computations). The target is 1e-5.

    python bench/reference_parity.py        # 128 and 256 px, writes bench/results/reference_parity.{md,json}
    python bench/reference_parity.py --sizes 128 --out bench/work/parity-quick
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import types
from pathlib import Path

import torch

from lab import ROOT
from lab.reference_code import (
    ATTN_LAYER_NAMES,
    ReferenceMissing,
    copy_heads,
    find_reference,
    import_reference,
    random_vgg16_file,
    reference_commit,
)
from sesim.losses.spatial import PUBLIC_CODE_SETTINGS, SpatialCorrelativeLoss
from sesim.nets.backbones import build_backbone
from sesim.ops.selfsim import map_distance, self_similarity, window_index

TOLERANCE = 1e-5
ATTN_LAYERS = [4, 7, 9]


def rel(a, b) -> float:
    """``max |a - b| / max |a|`` over everything in ``a`` and ``b`` (tensors, or sequences of tensors
    taken together: a parameter whose gradient is zero up to rounding, e.g. a bias that the maps'
    mean-centring removes, must not count as a large relative error on its own)."""
    if isinstance(a, (list, tuple)):
        a, b = torch.cat([t.detach().flatten() for t in a]), torch.cat([t.detach().flatten() for t in b])
    a = torch.as_tensor(a.detach() if torch.is_tensor(a) else a, dtype=torch.float64)
    b = torch.as_tensor(b.detach() if torch.is_tensor(b) else b, dtype=torch.float64)
    scale = a.abs().max().clamp_min(1e-30)
    return float((a - b).abs().max() / scale)


class RecordedQueries:
    """Wraps their ``PatchSim.forward`` to keep the query ids it draws (the first call per layer)."""

    def __init__(self, patch_sim) -> None:
        self.ids: list[torch.Tensor] = []
        self._forward = patch_sim.forward

        def forward(feat, patch_ids=None):
            sim, ids = self._forward(feat, patch_ids)
            if patch_ids is None:
                self.ids.append(ids.clone())
            return sim, ids

        patch_sim.forward = forward

    def by_layer(self) -> dict[str, torch.Tensor]:
        ids, self.ids = self.ids, []
        assert len(ids) == len(ATTN_LAYER_NAMES), f"recorded {len(ids)} query draws"
        return dict(zip(ATTN_LAYER_NAMES, ids))


def their_loss(losses, mode: str, patch: int, learned: bool):
    crit = losses.SpatialCorrelativeLoss(mode, 256, patch, False, learned, T=0.07)
    stub = types.SimpleNamespace(attn_layers=ATTN_LAYERS, criterionSpatial=crit)
    return crit, stub


@functools.lru_cache(maxsize=2)
def _extractor(vgg_file: Path):
    """sesim's VGG16 as the ``public-code`` preset builds it (``backbone vgg16``, weights from the file),
    built once: every case shares it (it is frozen), which spares loading the 528 MB file per case."""
    return build_backbone(PUBLIC_CODE_SETTINGS["backbone"], PUBLIC_CODE_SETTINGS["layers"], str(vgg_file))


def our_loss(vgg_file: Path, mode: str, patch: int, learned: bool, size: int) -> SpatialCorrelativeLoss:
    s = {k: v for k, v in PUBLIC_CODE_SETTINGS.items() if k != "backbone"}
    s.update(distance=mode, extractor=_extractor(vgg_file), learned=learned, temperature=0.07,
             positive_vs_other=True)
    # The public code's rule: windows only where the patch is smaller than the feature map (their
    # `pw < W and ph < H`); sesim's window_index is global when the patch covers the map, the same rule.
    s["patch_size"] = patch
    return SpatialCorrelativeLoss(**s).eval()


def compare_case(sc_model, losses, norm, their_vgg, vgg_file, x, y, mode, patch, learned, size) -> dict:
    crit, stub = their_loss(losses, mode, patch, learned)
    rec = RecordedQueries(crit.patch_sim)
    ours = our_loss(vgg_file, mode, patch, learned, size)
    to01 = lambda t: norm((t + 1) * 0.5)  # noqa: E731  (their backward_G's input mapping)
    if learned:  # their heads are built on the first call; copy them into ours
        with torch.no_grad():
            sc_model.Spatial_Loss(stub, their_vgg, to01(x), to01(y), None)
        rec.ids = []
        copy_heads([getattr(crit, f"conv_{i}") for i in range(len(ATTN_LAYERS))], ours)
    their_vgg.requires_grad_(False)
    crit.requires_grad_(False)

    # images -> loss, gradient into the translation image
    ya = y.clone().requires_grad_(True)
    la = sc_model.Spatial_Loss(stub, their_vgg, to01(x), to01(ya), None)
    (ga,) = torch.autograd.grad(la, ya)
    queries = rec.by_layer()
    yb = y.clone().requires_grad_(True)
    lb = ours(x, yb, queries=queries)
    (gb,) = torch.autograd.grad(lb, yb)

    # identical features (theirs) -> loss, gradient into the translation's features
    with torch.no_grad():
        fx = their_vgg(to01(x), ATTN_LAYERS, encode_only=True)
        fy = their_vgg(to01(y), ATTN_LAYERS, encode_only=True)
    fya = [f.clone().requires_grad_(True) for f in fy]
    lfa = sum(crit.loss(a, b, None, i).mean() for i, (a, b) in enumerate(zip(fx, fya))) / len(fx)
    gfa = torch.autograd.grad(lfa, fya)
    qf = rec.by_layer()
    fyb = [f.clone().requires_grad_(True) for f in fy]
    lfb = 0.0
    for name, a, b in zip(ATTN_LAYER_NAMES, fx, fyb):
        if learned:
            a, b = ours.heads[name](a, frozen=True), ours.heads[name](b, frozen=True)
        h, w = a.shape[-2:]
        win = window_index(qf[name], h, w, ours.patch_size)
        sa = self_similarity(a, qf[name], win, norm=ours.norm, tanh_scale=ours.tanh_scale)
        sb = self_similarity(b, qf[name], win, norm=ours.norm, tanh_scale=ours.tanh_scale)
        d = map_distance(sa, sb, ours.distance, mask_keep=ours.mask_keep, mask_from=ours.mask_from,
                         smooth_l1=ours.smooth_l1)
        lfb = lfb + d.mean() / len(fx)
    gfb = torch.autograd.grad(lfb, fyb)
    local = [name for name, f in zip(ATTN_LAYER_NAMES, fx) if patch < f.shape[-1] and patch < f.shape[-2]]
    return {
        "case": f"{'LSeSim G step' if learned else 'FSeSim'}, {mode}, patch {patch}",
        "windows": ", ".join(f"{n} local" for n in local) or "all global",
        "loss_theirs": float(la.detach()), "loss_ours": float(lb.detach()),
        "loss_rel": rel(la, lb), "grad_rel": rel(ga, gb),
        "feature_loss_rel": rel(lfa, lfb), "feature_grad_rel": rel(gfa, gfb),
    }


def compare_head_step(sc_model, losses, norm, their_vgg, vgg_file, x, y, b, size, patch) -> dict:
    """Their backward_F with --augment against sesim's contrastive_loss on the same batch."""
    crit, stub = their_loss(losses, "cos", patch, True)
    rec = RecordedQueries(crit.patch_sim)
    ours = our_loss(vgg_file, "cos", patch, True, size)
    to01 = lambda t: norm((t + 1) * 0.5)  # noqa: E731
    with torch.no_grad():
        sc_model.Spatial_Loss(stub, their_vgg, to01(x), to01(y), None)  # builds their heads
    rec.ids = []
    copy_heads([getattr(crit, f"conv_{i}") for i in range(len(ATTN_LAYERS))], ours)
    g = torch.Generator().manual_seed(3)
    x_aug = (x + 0.3 * torch.rand(x.shape, generator=g) - 0.15).clamp(-1, 1)
    b_aug = (b + 0.3 * torch.rand(b.shape, generator=g) - 0.15).clamp(-1, 1)
    their_vgg.requires_grad_(False)
    crit.requires_grad_(True)
    src = torch.cat([to01(x), to01(x)])
    tgt = torch.cat([to01(y), to01(x_aug)])
    oth = torch.cat([to01(b), to01(b_aug)])
    la = sc_model.Spatial_Loss(stub, their_vgg, src, tgt, oth)
    heads_a = [p for i in range(len(ATTN_LAYERS)) for p in getattr(crit, f"conv_{i}").parameters()]
    ga = torch.autograd.grad(la, heads_a)
    queries = rec.by_layer()
    lb = ours.contrastive_loss(torch.cat([x, x]), torch.cat([y, x_aug]), torch.cat([b, b_aug]).flip(2, 3),
                               queries=queries)
    heads_b = [p for name in ATTN_LAYER_NAMES for p in ours.heads[name].parameters()]
    gb = torch.autograd.grad(lb, heads_b)
    return {
        "case": f"LSeSim head step (InfoNCE, --augment batch), patch {patch}",
        "windows": "relu3_1 local" if patch < size // 4 else "all global",  # relu3_1 is at stride 4
        "loss_theirs": float(la.detach()), "loss_ours": float(lb.detach()), "loss_rel": rel(la, lb),
        "grad_rel": rel(ga, gb), "grad_into": "head weights",
    }


def run(sizes: list[int], reference: Path, scratch: Path, patches: tuple[int, ...] = (64, 32)) -> dict:
    vgg_file = random_vgg16_file(scratch / "vgg16-random.pth", seed=0)
    import_reference(reference, vgg_file)
    import importlib

    losses = importlib.import_module("models.losses")
    sc_model = importlib.import_module("models.sc_model").SCModel
    their_vgg = losses.VGG16().eval()
    norm = losses.Normalization("cpu")
    rows = []
    for size in sizes:
        g = torch.Generator().manual_seed(size)
        x, y, b = (torch.rand(1, 3, size, size, generator=g) * 2 - 1 for _ in range(3))
        y = (0.6 * x + 0.4 * y).clamp(-1, 1)  # a "translation" that keeps some of x's structure
        torch.manual_seed(0)
        cases = [compare_case(sc_model, losses, norm, their_vgg, vgg_file, x, y, mode, patch, learned, size)
                 for learned in (False, True) for mode in ("cos", "l1") for patch in patches]
        cases += [compare_head_step(sc_model, losses, norm, their_vgg, vgg_file, x, y, b, size, patch)
                  for patch in patches]
        rows += [{"size": size, **r} for r in cases]
        print(f"  {size} px: {len(cases)} cases compared", file=sys.stderr)
    worst = max(max(r["loss_rel"], r["grad_rel"], r.get("feature_loss_rel", 0), r.get("feature_grad_rel", 0))
                for r in rows)
    return {"sizes": sizes, "reference_commit": reference_commit(reference), "tolerance": TOLERANCE,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows, "worst_rel": worst,
            "pass": worst <= TOLERANCE,
            "weights": "one random-init torchvision VGG16 state dict (seed 0) for both sides; no ImageNet file here"}


def report(res: dict) -> str:
    lines = [
        "# Parity with the authors' `Spatial_Loss`", "",
        f"Authors' F-LSeSim commit `{res['reference_commit']}`, imported at run time (not part of sesim); "
        f"torch {res['torch']}, {res['threads']} thread(s). Weights: {res['weights']}. Query locations: the "
        "ones their `PatchSim` drew, handed to sesim. sesim side: the `public-code` loss settings "
        "(`PUBLIC_CODE_SETTINGS`; tanh similarity, top-quarter mask from the translation's map, SmoothL1 "
        "of the distance) with the patch size and distance of the row.", "",
        "Relative differences: loss `|a-b|/|a|`, gradient `max|g_a-g_b|/max|g_a|` (into the translation image "
        "for the G-step rows, into the head weights for the head-step rows). *images*: each side's own VGG16 "
        "and input normalisation; *features*: their VGG16's features into both map computations.", "",
        "| px | case | windows | loss (theirs) | loss (sesim) | loss rel. diff (images) | grad rel. diff (images) "
        "| loss rel. diff (features) | grad rel. diff (features) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        f = lambda k: f"{r[k]:.1e}" if k in r else "—"  # noqa: E731
        lines.append(f"| {r['size']} | {r['case']} | {r['windows']} | {r['loss_theirs']:.7g} | {r['loss_ours']:.7g} | "
                     f"{f('loss_rel')} | {f('grad_rel')} | {f('feature_loss_rel')} | {f('feature_grad_rel')} |")
    lines += ["", f"Worst relative difference: **{res['worst_rel']:.1e}** (target {res['tolerance']:.0e}): "
              f"**{'PASS' if res['pass'] else 'FAIL'}**.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="128,256", help="image sizes, comma-separated (local windows need 256)")
    ap.add_argument("--patches", default="64,32", help="their --patch_size values (64: global at 256 px; "
                    "32: relu3_1 windows at 256 px)")
    ap.add_argument("--reference", default=None, help="folder of the authors' F-LSeSim code")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for reference_parity.{md,json}")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        reference = find_reference(args.reference)
    except ReferenceMissing as err:
        print(f"SKIPPED: {err}. Nothing was compared.")
        return 0
    with tempfile.TemporaryDirectory(prefix="sesim-parity-") as tmp:
        res = run([int(v) for v in args.sizes.split(",")], reference, Path(tmp),
                  tuple(int(v) for v in args.patches.split(",")))
    text = report(res)
    print(text)
    if not args.no_write:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "reference_parity.md").write_text(text)
        (out / "reference_parity.json").write_text(json.dumps(res, indent=1) + "\n")
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
