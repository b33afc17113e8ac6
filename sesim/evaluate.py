"""``sesim evaluate``: score a folder of translations (or a run's test-set translations) and write
``metrics.json`` + ``metrics.md``.

Metrics (``--metrics``, comma-separated):

* ``fid``, ``kid`` -- Frechet distance and kernel distance (:mod:`sesim.metrics.frechet`) on the
  features of ``--extractor`` (:mod:`sesim.metrics.features`): named ``fid``/``kid`` only with the
  standard Inception, else ``fd_<tag>``/``kd_<tag>``.
* ``prdc`` -- precision, recall, density, coverage (:mod:`sesim.metrics.prdc`, ``--k``, default 5)
  in the same feature space, named ``<metric>_<tag>``.
* ``lpips_diversity`` -- mean pairwise LPIPS over the K samples per input in ``--samples-dir``
  (:mod:`sesim.metrics.diversity`).
* ``segmentation`` -- pixel accuracy, mean class accuracy, mIoU of ``--segmenter`` on the
  translations against ``--labels`` (:mod:`sesim.metrics.segmentation`).
* ``sifid`` -- single-image FID (SinGAN: FID Inception through maxpool1, needs the pytorch-fid
  weights) of each translation against the one real image in ``--real`` (or the real image of the
  same name), averaged; ``selfsim`` -- FSeSim self-similarity distance between each translation
  and its source in ``--source`` (same name), averaged. Both from :mod:`sesim.metrics.single_image`
  (registered in :data:`SINGLE_IMAGE_METRICS`).

Every entry in the output states the extractor/model (with weights file), the input resizing
and a metric version string. Missing standard weights stop the command with a message naming the
file and where to put it; nothing is substituted.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .metrics.features import Extractor, get_extractor, load_folder
from .metrics.frechet import frechet_distance, kernel_inception_distance
from .metrics.prdc import DEFAULT_K, prdc

__all__ = ["ALL_METRICS", "parse_metrics", "evaluate_folders", "evaluate_run", "write_report", "EvaluateError",
           "SINGLE_IMAGE_METRICS"]

FEATURE_METRICS = ("fid", "kid", "prdc")
ALL_METRICS = FEATURE_METRICS + ("lpips_diversity", "segmentation", "sifid", "selfsim")
VERSIONS = {
    "fd": "sesim-fd-1: Frechet distance of Gaussians (ddof=1 covariances), exact eigen-decomposition sqrt",
    "kd": "sesim-kd-1: unbiased MMD^2, cubic polynomial kernel (x.y/D+1)^3, mean/std over subsets",
    "prdc": "sesim-prdc-1: k-NN balls (Kynkaenniemi 2019 precision/recall, Naeem 2020 density/coverage)",
    "lpips": "sesim-lpips-1: LPIPS v0.1 (scaling layer, unit-normalised features, linear layers, spatial mean)",
    "segmentation": "sesim-seg-1: one confusion matrix over the set, ignore label 255",
}


class EvaluateError(ValueError):
    """Bad request for evaluate (message says what to do)."""


def _single_image_metrics() -> dict[str, Callable]:
    """``sifid`` / ``selfsim`` from :mod:`sesim.metrics.single_image` if it exists (another module's work)."""
    try:
        from .metrics import single_image
    except ImportError:
        return {}
    found = {}
    if hasattr(single_image, "sifid"):
        found["sifid"] = single_image.sifid
    if hasattr(single_image, "self_similarity_distance"):
        found["selfsim"] = single_image.self_similarity_distance
    return found


#: name -> function; filled lazily by :func:`_single_image_metrics`.
SINGLE_IMAGE_METRICS: dict[str, Callable] = {}


def parse_metrics(text: str | list[str] | tuple[str, ...]) -> list[str]:
    names = [n.strip().lower().replace("-", "_") for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    aliases = {"fd": "fid", "kd": "kid", "lpips": "lpips_diversity", "seg": "segmentation",
               "density": "prdc", "coverage": "prdc", "precision": "prdc", "recall": "prdc"}
    out: list[str] = []
    for n in names:
        n = aliases.get(n, n)
        if n not in ALL_METRICS:
            raise EvaluateError(f"unknown metric {n!r}; choose from {', '.join(ALL_METRICS)}")
        if n not in out:
            out.append(n)
    if not out:
        raise EvaluateError("no metric given")
    return out


def _entry(value: Any, model: str, version: str, **details: Any) -> dict:
    return {"value": value, "model": model, "version": version, **({"details": details} if details else {})}


def evaluate_folders(real: str | os.PathLike | None, fake: str | os.PathLike, *, metrics: list[str] | str = "fid,kid",
                     extractor: Extractor | str | None = "inception", inception_weights: str | None = None,
                     kid_subsets: int = 100, kid_subset_size: int = 1000, k: int = DEFAULT_K, seed: int = 0,
                     samples_dir: str | os.PathLike | None = None, lpips_model: torch.nn.Module | None = None,
                     lpips_net: str = "alex", lpips_weights: str | None = None,
                     lpips_backbone_weights: str | None = None, segmenter: str | Callable | None = None,
                     labels: str | os.PathLike | None = None, num_classes: int = 19,
                     source: str | os.PathLike | None = None, sifid_extractor: Callable | None = None,
                     selfsim_loss: torch.nn.Module | None = None, backbone: str = "auto",
                     backbone_weights: str | None = "auto", device: str = "cpu") -> dict:
    """Compute ``metrics`` and return the report dict (see module doc); nothing is written.

    ``extractor``: an :class:`~sesim.metrics.features.Extractor` (any network, e.g. a random one in
    tests) or a name for :func:`~sesim.metrics.features.get_extractor`. ``source``: the inputs the
    translations were made from (for ``selfsim``), matched by relative path. ``backbone`` /
    ``backbone_weights``: the feature network of ``selfsim`` (:mod:`sesim.nets.backbones`) unless
    ``selfsim_loss`` is given.
    """
    metrics = parse_metrics(metrics)
    fake_images = load_folder(fake)
    if not fake_images:
        raise EvaluateError(f"no images in {fake}")
    report: dict[str, Any] = {
        "sesim_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "real": str(real) if real else None, "fake": str(fake), "n_fake": len(fake_images), "metrics": {},
    }
    out = report["metrics"]
    need_real = [m for m in metrics if m in FEATURE_METRICS or m == "sifid"]
    real_images = {}
    if need_real:
        if real is None:
            raise EvaluateError(f"{', '.join(need_real)}: --real DIR is required (real target-domain images)")
        real_images = load_folder(real)
        if len(real_images) < (2 if any(m in FEATURE_METRICS for m in metrics) else 1):
            raise EvaluateError(f"need at least 2 real images in {real}, found {len(real_images)}")
        report["n_real"] = len(real_images)

    if any(m in FEATURE_METRICS for m in metrics):
        ext = extractor if isinstance(extractor, Extractor) else get_extractor(
            extractor or "inception", inception_weights=inception_weights, device=device)
        fr = ext.features(list(real_images.values()))
        ff = ext.features(list(fake_images.values()))
        report["extractor"] = {"tag": ext.tag, "description": ext.description, "feature_dim": int(fr.shape[1])}
        if "fid" in metrics:
            out[ext.fd_name] = _entry(frechet_distance(fr, ff), ext.description, VERSIONS["fd"], n_real=len(fr),
                                      n_fake=len(ff), note="FD is biased upwards at small set sizes: compare values "
                                                           "only at equal set sizes")
        if "kid" in metrics:
            m = min(kid_subset_size, len(fr), len(ff))
            mean, std = kernel_inception_distance(fr, ff, subsets=kid_subsets, subset_size=m, seed=seed)
            out[ext.kd_name] = _entry(mean, ext.description, VERSIONS["kd"], std=std, subsets=kid_subsets,
                                      subset_size=m)
        if "prdc" in metrics:
            kk = min(k, len(fr) - 1, len(ff) - 1)
            if kk < 1:
                raise EvaluateError("prdc needs at least 2 real and 2 fake images")
            for name, value in prdc(fr, ff, k=kk).items():
                out[f"{name}_{ext.tag}"] = _entry(value, ext.description, VERSIONS["prdc"], k=kk)

    if "lpips_diversity" in metrics:
        from .metrics.diversity import group_samples, lpips_diversity

        if samples_dir is None:
            raise EvaluateError("lpips_diversity needs --samples-dir DIR with files <stem>_s<k>.png")
        if lpips_model is None:
            from .nets.lpips import build_lpips

            lpips_model = build_lpips(lpips_net, backbone_weights=lpips_backbone_weights or "auto",
                                      linear_weights=lpips_weights or "auto")
        sdir = Path(samples_dir)
        from .data.images import list_images

        groups = group_samples(list_images(sdir), sdir)
        loaded = {stem: [load_folder_file(p) for p in paths] for stem, paths in groups.items()}
        res = lpips_diversity(lpips_model, loaded)
        backbone = getattr(lpips_model.backbone, "weights_source", "given")
        desc = (f"LPIPS v0.1 {getattr(lpips_model, 'net_name', type(lpips_model.backbone).__name__)}; backbone "
                f"{backbone}; linear {getattr(lpips_model, 'linear_source', '?')}; images at their own size")
        out["lpips_diversity"] = _entry(res["mean"], desc, VERSIONS["lpips"],
                                        **{k2: v for k2, v in res.items() if k2 != "mean"})

    if "segmentation" in metrics:
        from .metrics.segmentation import IGNORE_INDEX, load_segmenter, segmentation_accuracy

        if segmenter is None or labels is None:
            raise EvaluateError("segmentation needs --segmenter (TorchScript file or module:function) and "
                                "--labels DIR (label maps named like the translations)")
        seg = load_segmenter(segmenter) if isinstance(segmenter, str) else segmenter
        res = segmentation_accuracy(seg, fake_images, labels, num_classes=num_classes)
        desc = (f"segmenter {segmenter if isinstance(segmenter, str) else getattr(segmenter, '__name__', 'given')}"
                f"; input RGB [0,1] at image size; output resized to label size; ignore {IGNORE_INDEX}")
        for key in ("pixel_accuracy", "mean_class_accuracy", "mean_iou"):
            out[f"seg_{key}"] = _entry(res[key], desc, VERSIONS["segmentation"], num_classes=num_classes,
                                       images=res["images"], pixels=res["pixels"])
        out["seg_mean_iou"]["details"]["class_iou"] = res["class_iou"]

    single = [m for m in metrics if m in ("sifid", "selfsim")]
    if single:
        SINGLE_IMAGE_METRICS.update(_single_image_metrics())
        missing = [m for m in single if m not in SINGLE_IMAGE_METRICS]
        if missing:
            raise EvaluateError(f"{', '.join(missing)}: sesim.metrics.single_image is not available in this install")
        if selfsim_loss is None and "selfsim" in single:
            from .metrics.single_image import selfsim_metric_loss

            selfsim_loss = selfsim_metric_loss(backbone, backbone_weights)
        _single_image(out, single, real_images, fake_images, source, inception_weights, sifid_extractor,
                      selfsim_loss)
    return report


def load_folder_file(path: Path) -> torch.Tensor:
    """One image file as RGB ``(3, H, W)`` uint8."""
    from .data.images import load_image

    return torch.from_numpy(np.asarray(load_image(path, 3)).copy()).permute(2, 0, 1).contiguous()


def _single_image(out: dict, names: list[str], real: dict, fake: dict, source, inception_weights=None,
                  sifid_extractor=None, selfsim_loss=None) -> None:
    """Per-image SIFID (translation vs the single real target image) and self-similarity distance
    (translation vs its source), averaged over images. The functions take ``(1, 3, H, W)`` tensors in [-1, 1]."""
    def t(img):
        return img[None].float() / 127.5 - 1.0

    if "sifid" in names:
        from .metrics.single_image import sifid_inception_extractor

        fn = SINGLE_IMAGE_METRICS["sifid"]
        extractor = sifid_extractor or sifid_inception_extractor(inception_weights or "auto")
        if len(real) != 1 and len(real) != len(fake):
            raise EvaluateError("sifid compares each translation with one real image: give --real with a single "
                                "image, or with one image per translation (same names)")
        refs = {k: (real[k] if len(real) > 1 else next(iter(real.values()))) for k in fake}
        if len(real) > 1 and any(k not in real for k in fake):
            raise EvaluateError("sifid: real and fake folders must hold images with the same names")
        vals = [float(fn(t(refs[k]), t(img), extractor)) for k, img in fake.items()]
        desc = (f"{getattr(extractor, 'description', 'FID Inception-v3 through maxpool1 (64 ch), no resizing')}"
                f"; weights {getattr(extractor, 'weights_source', 'given')}")
        out["sifid"] = _entry(float(np.mean(vals)), desc, "sesim.metrics.single_image.sifid (SinGAN)",
                              images=len(vals))
    if "selfsim" in names:
        if source is None:
            raise EvaluateError("selfsim needs --source DIR (the inputs the translations were made from)")
        src = load_folder(source)
        pairs = [(src[k], v) for k, v in fake.items() if k in src]
        if not pairs:
            raise EvaluateError(f"no translation in the fake folder has a source image of the same name in {source}")
        fn = SINGLE_IMAGE_METRICS["selfsim"]
        loss = selfsim_loss
        vals = [float(fn(t(s), t(f), loss)) for s, f in pairs]
        from .nets.backbones import describe_backbone

        desc = (f"FSeSim distance (1 - cos of self-similarity maps), {describe_backbone(loss.extractor)} "
                f"{'+'.join(loss.layers)}, {loss.num_queries} {loss.sampling} queries, "
                f"{loss.patch_size or 'global'}-position windows; images at their own size; only comparable "
                "with the same backbone")
        out["selfsim"] = _entry(float(np.mean(vals)), desc, "sesim.metrics.single_image.self_similarity_distance",
                                images=len(vals))


def evaluate_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, overwrite: bool = False,
                 real: str | os.PathLike | None = None, **kwargs: Any) -> dict:
    """Translate the run's testA into ``out_dir/translations`` and evaluate against testB (or ``real``)."""
    from .config import TrainConfig
    from .checkpoint import CONFIG_FILE
    from .train import domain_dirs
    from .translate import translate_paths

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise EvaluateError(f"{run_dir} is not a sesim run folder (no {CONFIG_FILE})")
    cfg = TrainConfig.load(run_dir / CONFIG_FILE)
    if cfg.resolved.get("backbone"):  # selfsim on the features the run was trained with
        kwargs.setdefault("backbone", cfg.loss.backbone)
        kwargs.setdefault("backbone_weights", cfg.loss.backbone_weights)
    try:
        test_a, test_b = domain_dirs(cfg, "test")
    except (FileNotFoundError, ValueError) as err:
        raise EvaluateError(f"the run's data has no test set ({err}); use --real/--fake folders instead") from err
    fake = Path(out_dir) / "translations"
    translate_paths(run_dir, test_a, fake, overwrite=overwrite, progress=False, device=kwargs.get("device", "cpu"))
    report = evaluate_folders(real or test_b, fake, source=kwargs.pop("source", None) or test_a, **kwargs)
    report["run"] = str(run_dir)
    report["source"] = str(test_a)
    return report


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown_summary(report: dict) -> str:
    lines = ["# sesim evaluate", "", f"- fake: `{report['fake']}` ({report['n_fake']} images)"]
    if report.get("real"):
        lines.append(f"- real: `{report['real']}` ({report.get('n_real', '?')} images)")
    if report.get("run"):
        lines.append(f"- run: `{report['run']}` (translations of `{report.get('source')}`)")
    lines += [f"- sesim {report['sesim_version']}, {report['created']}", "",
              "| metric | value | model | version |", "| --- | --- | --- | --- |"]
    models: list[str] = []
    for name, e in report["metrics"].items():
        extra = e.get("details", {})
        val = _fmt(e["value"]) + (f" +- {_fmt(extra['std'])}" if "std" in extra else "")
        if e["model"] not in models:
            models.append(e["model"])
        lines.append(f"| {name} | {val} | [{models.index(e['model']) + 1}] | {e['version'].split(':')[0]} |")
    lines += ["", "Models (feature extractor or network, weights, input resizing and normalisation):", ""]
    lines += [f"{i}. {m}" for i, m in enumerate(models, 1)]
    lines += ["", "Versions:", ""] + [f"- {v}" for k, v in VERSIONS.items()
                                     if any(e["version"] == v for e in report["metrics"].values())]
    tag = report.get("extractor", {}).get("tag")
    if tag and tag != "inception":
        lines += ["", f"Feature metrics use `{tag}` features: not comparable to published FID/KID values."]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.md`` in ``out_dir`` (refuses to replace them unless ``overwrite``)."""
    out_dir = Path(out_dir)
    paths = (out_dir / "metrics.json", out_dir / "metrics.md")
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown_summary(report))
    return paths
