"""``sesim evaluate``: score a folder of translations (or a run's test-set translations) and write
``metrics.json`` + ``metrics.md``.

Metrics (``--metrics``, comma-separated):

* ``fid``, ``kid`` -- Frechet distance and kernel distance (:mod:`sesim.metrics.frechet`) on the
  features of ``--extractor`` (:mod:`sesim.metrics.features`): named ``fid``/``kid`` only with the
  standard Inception, else ``fd_<tag>``/``kd_<tag>``. The Inception is fed by one of two FID
  implementations (``--fid-impl legacy|clean``, :mod:`sesim.metrics.fid_impl`). KID values are
  always reported x100 (:data:`sesim.metrics.frechet.KID_SCALE`; the raw value is in the details).
  With fewer than 2048 real or fake images, KID is listed before FID and FID carries a warning.
* ``prdc`` -- precision, recall, density, coverage (:mod:`sesim.metrics.prdc`, ``--k``, default 5)
  in the same feature space, named ``<metric>_<tag>``.
* ``lpips_diversity`` -- mean pairwise LPIPS over the K samples per input in ``--samples-dir``
  (:mod:`sesim.metrics.diversity`).
* ``segmentation`` -- pixel accuracy, mean class accuracy, mIoU of ``--segmenter`` on the
  translations against ``--labels`` (:mod:`sesim.metrics.segmentation`).
* ``sifid`` -- single-image FID (SinGAN: FID Inception through maxpool1, needs the pytorch-fid
  weights) of each translation against the one real image in ``--real`` (or the real image of the
  same name), averaged; ``selfsim`` -- FSeSim self-similarity distance between each translation
  and its source in ``--source`` (same name), averaged. Both from :mod:`sesim.metrics.single_image`.
* ``dino_struct`` -- DINO-Struct (CycleGAN-Turbo's structure distance: MSE of the self-similarity of
  DINO ViT-B/8 last-block keys; ``--dino-weights``), and ``struct`` -- the same measurement on the
  offline structure backbone, named ``struct_<backbone>`` (:mod:`sesim.metrics.dino_struct`); both
  against ``--source`` (same names), like ``selfsim``.

Every report has a ``header`` (:func:`header_lines` renders it): the FID implementation, the KID
scale, the sample counts, the feature extractor with its weights file and SHA-256, the structure
networks, the protocol (``--protocol``, :mod:`sesim.metrics.protocols`) and any warning.

Every entry in the output states the extractor/model (with weights file), the input resizing
and a metric version string. Missing standard weights stop the command with a message naming the
file and where to put it; nothing is substituted.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .config import _f
from .metrics.features import EXTRACTORS, Extractor, get_extractor, image_tensor, load_folder
from .metrics.fid_impl import FID_IMPLEMENTATIONS
from .metrics.frechet import KID_SCALE, frechet_distance, kernel_inception_distance
from .metrics.prdc import DEFAULT_K, prdc
from .metrics.protocols import PROTOCOLS, Protocol, count_deviations, get_protocol
from .nets.backbones import BACKBONES
from .ranges import count

__all__ = ["ALL_METRICS", "EvaluateOptions", "parse_metrics", "evaluate_folders", "evaluate_run", "write_report",
           "EvaluateError", "header_lines", "FID_MIN_SAMPLES"]

FEATURE_METRICS = ("fid", "kid", "prdc")
STRUCTURE_METRICS = ("selfsim", "dino_struct", "struct")
ALL_METRICS = FEATURE_METRICS + ("lpips_diversity", "segmentation", "sifid") + STRUCTURE_METRICS
#: below this many real or fake images FID is flagged and KID listed first (FID's 2048-d covariances)
FID_MIN_SAMPLES = 2048
VERSIONS = {
    "fd": "sesim-fd-1: Frechet distance of Gaussians (ddof=1 covariances), exact eigen-decomposition sqrt",
    "kd": "sesim-kd-1: unbiased MMD^2, cubic polynomial kernel (x.y/D+1)^3, mean/std over subsets",
    "prdc": "sesim-prdc-1: k-NN balls (Kynkaenniemi 2019 precision/recall, Naeem 2020 density/coverage)",
    "lpips": "sesim-lpips-1: LPIPS v0.1 (scaling layer, unit-normalised features, linear layers, spatial mean)",
    "segmentation": "sesim-seg-1: one confusion matrix over the set, ignore label 255",
    "struct": "sesim-struct-1: MSE of cosine self-similarity matrices (shorter side 224 px), mean over pairs",
}


class EvaluateError(ValueError):
    """Bad request for evaluate (message says what to do)."""


def parse_metrics(text: str | list[str] | tuple[str, ...]) -> list[str]:
    names = [n.strip().lower().replace("-", "_") for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    aliases = {"fd": "fid", "kd": "kid", "lpips": "lpips_diversity", "seg": "segmentation", "dino": "dino_struct",
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


@dataclass
class EvaluateOptions:
    """How to score. The fields declared with ``_f`` (default, help text, choices, range) are the
    scoring flags of ``sesim evaluate`` (the CLI generates them: ``kid_subsets`` ->
    ``--kid-subsets``); the others are for Python callers
    (networks given built) or filled in by :meth:`resolve`, which also fills the ``None`` defaults.

    ``extractor``: a name, or an :class:`~sesim.metrics.features.Extractor` (any network, e.g. a
    random one in tests); ``"inception"`` is built by :func:`~sesim.metrics.fid_impl.fid_extractor`
    for ``fid_impl``. ``source``: the inputs the translations were made from (for ``selfsim``,
    ``dino_struct``, ``struct``), matched by relative path. ``backbone`` / ``backbone_weights``: the
    feature network of ``selfsim`` and ``struct`` (:mod:`sesim.nets.backbones`, ``None``: auto)
    unless ``selfsim_loss`` / ``struct_metric`` is given; ``dino_metric``: a built
    :class:`~sesim.metrics.dino_struct.SelfSimilarityMSE` (else built from ``dino_weights``).
    ``segmenter``: a TorchScript file, ``module:function`` or a callable. ``segmentation_size``:
    ``(H, W)`` the translations are resized to (PIL bilinear) before segmentation; ``segment_real``:
    also segment the ``real`` images (same names as the labels), the upper-bound row in
    ``report["reference"]``. ``protocol``: a name or :class:`~sesim.metrics.protocols.Protocol`,
    stated in the header with any count deviation.
    """

    protocol: str | Protocol | None = _f(None, "a published evaluation protocol: image sets, size, metrics "
                                               "(docs/protocols.md)", choices=tuple(PROTOCOLS))
    metrics: str | list[str] | None = _f(None, "comma-separated: fid, kid, prdc, lpips_diversity, segmentation, "
                                               "sifid, selfsim, dino_struct, struct (default: the protocol's, else "
                                               "fid,kid)")
    extractor: str | Extractor = _f("inception", "features for fid/kid/prdc: inception (standard FID weights, named "
                                                 "fid/kid) or efficientnet-lite0 (pip-installed ImageNet weights, "
                                                 "named fd_effnet/kd_effnet, not comparable to published FID)",
                                    choices=EXTRACTORS)
    inception_weights: str | None = _f(None, "path to pt_inception-2015-12-05-6726825d.pth (else "
                                             "$SESIM_INCEPTION_WEIGHTS, else the torch hub cache)")
    fid_impl: str | None = _f(None, "FID implementation: legacy (pytorch-fid's bilinear resize and weights, what "
                                    "CUT-lineage papers report; default) or clean (clean-fid's antialiased resize and "
                                    "TorchScript Inception, run through the clean-fid package)",
                              choices=FID_IMPLEMENTATIONS)
    clean_inception_weights: str | None = _f(None, "--fid-impl clean: path to clean-fid's inception-2015-12-05.pt "
                                                   "(else $SESIM_CLEAN_INCEPTION_WEIGHTS, /tmp, the torch hub cache)")
    dino_weights: str | None = _f(None, "dino_struct: path to DINO's dino_vitbase8_pretrain.pth (else "
                                        "$SESIM_DINO_WEIGHTS, else the torch hub cache)")
    drn_weights: str | None = _f(None, "segmentation with --protocol cityscapes: DRN-D-22 Cityscapes checkpoint "
                                       "drn_d_22_cityscapes.pth (else $SESIM_DRN_WEIGHTS, else the torch hub cache)")
    kid_subsets: int = _f(100, "KID: random subsets averaged", range=count(1))
    kid_subset_size: int = _f(1000, "KID: images per subset (at most the smaller set)", range=count(2))
    k: int = _f(DEFAULT_K, "neighbours for precision/recall/density/coverage", range=count(1))
    samples_dir: str | os.PathLike | None = _f(None, "lpips_diversity: files <stem>_s<k>.png, K per input")
    lpips_net: str = _f("alex", "lpips_diversity: LPIPS trunk", choices=("alex", "vgg"))
    lpips_weights: str | None = _f(None, "LPIPS v0.1 linear layers file (else $SESIM_LPIPS_WEIGHTS, hub cache, or "
                                         "the installed lpips package)")
    lpips_backbone_weights: str | None = _f(None, "alexnet-owt-7be5be79.pth / vgg16-397923af.pth")
    segmenter: str | Callable | None = _f(None, "segmentation: TorchScript file or module:function")
    labels: str | os.PathLike | None = _f(None, "segmentation: label maps (class ids, 255 ignored)")
    num_classes: int | None = _f(None, "segmentation: number of classes (default: the protocol's, else 19)",
                                  range=count(1))
    source: str | os.PathLike | None = _f(None, "selfsim: the inputs the translations were made from")
    backbone: str | None = _f(None, "selfsim: feature network (default: the run's with --run, else auto: ImageNet "
                                    "VGG16 if its file is found, else ImageNet EfficientNet-Lite0)",
                              choices=("auto", *BACKBONES))
    backbone_weights: str | None = _f(None, "selfsim: auto | imagenet | random | path")
    seed: int = _f(0, "random seed of the KID subsets", range=count(0))
    device: str = _f("cpu", "cpu | cuda | cuda:N | mps")
    # Python only: networks given built, and what resolve() fills in for a protocol
    lpips_model: torch.nn.Module | None = None
    sifid_extractor: Callable | None = None
    selfsim_loss: torch.nn.Module | None = None
    dino_metric: Any = None
    struct_metric: Any = None
    segmentation_size: tuple[int, int] | None = None
    segment_real: bool | None = None

    @staticmethod
    def flag_fields() -> list[dataclasses.Field]:
        """The fields that are ``sesim evaluate`` flags (those with a help text, maybe empty), in order."""
        return [f for f in dataclasses.fields(EvaluateOptions) if "help" in f.metadata]

    def resolve(self, run_config: Any = None) -> EvaluateOptions:
        """A copy with the defaults left open filled in: the protocol's metrics, FID implementation
        and class count, and when it scores segmentation, its size, the upper-bound row of the real
        photos and its DRN-D-22 (unless a segmenter is given); the structure metrics (selfsim,
        struct) on the backbone a run recorded it was trained with, unless one is given
        (``run_config``: the run's :class:`~sesim.config.TrainConfig`). Resolving again changes nothing."""
        proto = get_protocol(self.protocol)
        metrics = parse_metrics(self.metrics if self.metrics is not None else proto.metrics if proto else "fid,kid")
        new = dataclasses.replace(self, protocol=proto, metrics=metrics,
                                  fid_impl=self.fid_impl or (proto.fid_impl if proto else "legacy"),
                                  num_classes=self.num_classes or (proto.num_classes if proto else 19))
        protocol_segments = bool(proto and proto.segmentation_size and "segmentation" in metrics)
        if new.segment_real is None:
            new.segment_real = protocol_segments
        if protocol_segments:
            new.segmentation_size = new.segmentation_size or proto.segmentation_size
            if new.segmenter is None:
                from .nets.drn import DRNSegmenter

                new.segmenter = DRNSegmenter(new.drn_weights or "auto", classes=new.num_classes)
        if run_config is not None and run_config.resolved.get("backbone"):
            new.backbone = new.backbone or run_config.structure.backbone
            new.backbone_weights = new.backbone_weights or run_config.structure.backbone_weights
        return new


def evaluate_folders(real: str | os.PathLike | None, fake: str | os.PathLike, options: EvaluateOptions | None = None,
                     **changes: Any) -> dict:
    """Score the translations in ``fake`` (against the images in ``real``) with ``options``, changed
    by ``changes`` (:class:`EvaluateOptions` fields by name, e.g. ``metrics="fid,kid"``); returns the
    report dict (see module doc), nothing is written."""
    opts = dataclasses.replace(options or EvaluateOptions(), **changes).resolve()
    metrics, proto = opts.metrics, opts.protocol
    fake_images = load_folder(fake)
    if not fake_images:
        raise EvaluateError(f"no images in {fake}")
    report: dict[str, Any] = {
        "sesim_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "real": str(real) if real else None, "fake": str(fake), "n_fake": len(fake_images), "metrics": {},
    }
    header: dict[str, Any] = {"protocol": proto.name if proto else None, "fid_implementation": None,
                              "kid_scale": KID_SCALE, "counts": {"fake": len(fake_images)}, "extractor": None,
                              "structure": {}, "warnings": []}
    out = report["metrics"]
    need_real = ([m for m in metrics if m in FEATURE_METRICS or m == "sifid"]
                 + (["segment_real"] if opts.segment_real else []))
    real_images = {}
    if need_real:
        if real is None:
            raise EvaluateError(f"{', '.join(need_real)}: --real DIR is required (real target-domain images)")
        real_images = load_folder(real)
        if len(real_images) < (2 if any(m in FEATURE_METRICS for m in metrics) else 1):
            raise EvaluateError(f"need at least 2 real images in {real}, found {len(real_images)}")
        report["n_real"] = header["counts"]["real"] = len(real_images)

    if any(m in FEATURE_METRICS for m in metrics):
        ext = build_feature_extractor(opts)
        fr = ext.features(list(real_images.values()))
        ff = ext.features(list(fake_images.values()))
        report["extractor"] = {"tag": ext.tag, "description": ext.description, "feature_dim": int(fr.shape[1])}
        header["extractor"] = _weights_record(ext.description, ext.weights_file)
        header["fid_implementation"] = _implementation_text(ext)
        few = min(len(fr), len(ff)) < FID_MIN_SAMPLES
        entries: dict[str, dict] = {}
        if "fid" in metrics:
            note = ("FD is biased upwards at small set sizes: compare values only at equal set sizes")
            entries[ext.fd_name] = _entry(frechet_distance(fr, ff), ext.description, VERSIONS["fd"], n_real=len(fr),
                                          n_fake=len(ff), note=note)
            if few:
                fd, kd = ("FID", "KID") if ext.tag == "inception" else (ext.fd_name, ext.kd_name)
                warning = (f"{fd} from {len(fr)} real / {len(ff)} fake images (< {FID_MIN_SAMPLES}): biased upward "
                           f"and noisy; compare only at these exact counts, prefer {kd} (unbiased, listed first)")
                entries[ext.fd_name]["warning"] = warning
                header["warnings"].append(warning)
        if "kid" in metrics:
            m = min(opts.kid_subset_size, len(fr), len(ff))
            mean, std = kernel_inception_distance(fr, ff, subsets=opts.kid_subsets, subset_size=m, seed=opts.seed)
            entries[ext.kd_name] = _entry(KID_SCALE * mean, ext.description, VERSIONS["kd"], scale=KID_SCALE,
                                          std=KID_SCALE * std, raw=mean, subsets=opts.kid_subsets, subset_size=m)
        out.update({name: entries[name] for name in feature_names(metrics, ext, few)})
        if "prdc" in metrics:
            kk = min(opts.k, len(fr) - 1, len(ff) - 1)
            if kk < 1:
                raise EvaluateError("prdc needs at least 2 real and 2 fake images")
            for name, value in prdc(fr, ff, k=kk).items():
                out[f"{name}_{ext.tag}"] = _entry(value, ext.description, VERSIONS["prdc"], k=kk)

    if "lpips_diversity" in metrics:
        out["lpips_diversity"] = _lpips_diversity(opts)

    if "segmentation" in metrics:
        if opts.segmenter is None or opts.labels is None:
            raise EvaluateError("segmentation needs --segmenter (TorchScript file or module:function, or --drn-weights "
                                "with --protocol cityscapes) and --labels DIR (label maps named like the translations)")
        seg = _segmentation(out, opts.segmenter, fake_images, opts)
        header["structure"]["segmentation"] = _weights_record(out["seg_mean_iou"]["model"],
                                                              getattr(seg, "weights_file", None))
        if opts.segment_real:
            report["reference"] = {"real photos": {}}
            _segmentation(report["reference"]["real photos"], seg, real_images, opts)

    opts = build_structure_metrics(opts)
    if "sifid" in metrics:
        out["sifid"] = _sifid(real_images, fake_images, opts)
    if "selfsim" in metrics:
        out["selfsim"] = _selfsim(fake_images, opts)
        header["structure"]["selfsim"] = _weights_record(out["selfsim"]["model"],
                                                         getattr(opts.selfsim_loss.extractor, "weights_file", None))
    for name, metric in (("dino_struct", opts.dino_metric), ("struct", opts.struct_metric)):
        if name not in metrics:
            continue
        pairs = _source_pairs(fake_images, opts.source, metric.name)
        vals = [metric.distance(s, f) for s, f in pairs]
        out[metric.name] = _entry(float(np.mean(vals)), metric.description, VERSIONS["struct"], images=len(vals))
        header["structure"][metric.name] = _weights_record(metric.description, metric.weights_file)

    if proto is not None:
        header["warnings"] += count_deviations(proto, len(fake_images), len(real_images) if real_images else None)
        sizes = {tuple(img.shape[-2:]) for img in fake_images.values()}
        if sizes != {tuple(proto.size)}:
            header["warnings"].append(f"protocol {proto.name} scores {proto.size[0]}x{proto.size[1]} images; the "
                                      f"translations are {', '.join(f'{h}x{w}' for h, w in sorted(sizes))}")
    report["header"] = header
    return report


def feature_names(metrics: list[str], ext: Extractor, few: bool) -> list[str]:
    """The output names of the ``fid`` / ``kid`` in ``metrics`` in report order: KID first when
    ``few`` (fewer than :data:`FID_MIN_SAMPLES` real or fake images)."""
    names = [name for metric, name in (("fid", ext.fd_name), ("kid", ext.kd_name)) if metric in metrics]
    return names[::-1] if few else names


def build_feature_extractor(opts: EvaluateOptions) -> Extractor:
    """The feature network of fid/kid/prdc: ``opts.extractor`` if built, else by name (the FID
    Inception of ``opts.fid_impl``)."""
    from .metrics.fid_impl import fid_extractor

    if opts.fid_impl not in FID_IMPLEMENTATIONS:
        raise EvaluateError(f"--fid-impl {opts.fid_impl!r}: choose from {', '.join(FID_IMPLEMENTATIONS)}")
    if isinstance(opts.extractor, Extractor):
        return opts.extractor
    name = opts.extractor or "inception"
    if name == "inception":
        return fid_extractor(opts.fid_impl, inception_weights=opts.inception_weights,
                             clean_inception_weights=opts.clean_inception_weights, device=opts.device)
    if opts.fid_impl != "legacy":
        raise EvaluateError(f"--fid-impl {opts.fid_impl} applies to the FID Inception, not to --extractor {name}")
    return get_extractor(name, device=opts.device)


def build_structure_metrics(opts: EvaluateOptions) -> EvaluateOptions:
    """A copy of (resolved) ``opts`` with the networks of its structure metrics built where not given:
    the selfsim loss and the DINO-Struct / struct measurements."""
    backbone, weights = opts.backbone or "auto", opts.backbone_weights or "auto"
    new = dataclasses.replace(opts)
    if "selfsim" in opts.metrics and opts.selfsim_loss is None:
        from .metrics.single_image import selfsim_metric_loss

        new.selfsim_loss = selfsim_metric_loss(backbone, weights)
    if "dino_struct" in opts.metrics and opts.dino_metric is None:
        from .metrics.dino_struct import dino_struct_metric

        new.dino_metric = dino_struct_metric(opts.dino_weights or "auto", device=opts.device)
    if "struct" in opts.metrics and opts.struct_metric is None:
        from .metrics.dino_struct import backbone_struct_metric

        new.struct_metric = backbone_struct_metric(backbone, weights, device=opts.device)
    return new


def _lpips_diversity(opts: EvaluateOptions) -> dict:
    """Mean pairwise LPIPS over the K samples per input in ``opts.samples_dir``."""
    from .data.images import list_images, load_image
    from .metrics.diversity import group_samples, lpips_diversity

    if opts.samples_dir is None:
        raise EvaluateError("lpips_diversity needs --samples-dir DIR with files <stem>_s<k>.png")
    model = opts.lpips_model
    if model is None:
        from .nets.lpips import build_lpips

        model = build_lpips(opts.lpips_net, backbone_weights=opts.lpips_backbone_weights or "auto",
                            linear_weights=opts.lpips_weights or "auto")
    sdir = Path(opts.samples_dir)
    groups = group_samples(list_images(sdir), sdir)
    loaded = {stem: [image_tensor(load_image(p, 3)) for p in paths] for stem, paths in groups.items()}
    res = lpips_diversity(model, loaded)
    backbone = getattr(model.backbone, "weights_source", "given")
    desc = (f"LPIPS v0.1 {getattr(model, 'net_name', type(model.backbone).__name__)}; backbone "
            f"{backbone}; linear {getattr(model, 'linear_source', '?')}; images at their own size")
    return _entry(res["mean"], desc, VERSIONS["lpips"], **{k: v for k, v in res.items() if k != "mean"})


def _implementation_text(ext: Extractor) -> str:
    from .metrics.fid_impl import IMPLEMENTATION_TEXT

    if ext.implementation in IMPLEMENTATION_TEXT:
        return IMPLEMENTATION_TEXT[ext.implementation]
    return f"none: {ext.tag} features, not the FID Inception (values named {ext.fd_name}/{ext.kd_name}, not FID/KID)"


def _weights_record(description: str, weights_file: str | os.PathLike | None) -> dict:
    """``{"description", "weights_file", "sha256"}`` of a network used by a metric (hash of the file, if any)."""
    from .nets.backbones import file_sha256

    path = None if weights_file is None else Path(weights_file)
    ok = path is not None and path.is_file()
    return {"description": description, "weights_file": str(path) if path else None,
            "sha256": file_sha256(path) if ok else None}


def _segmentation(out: dict, segmenter, images: dict, opts: EvaluateOptions) -> Callable:
    """Pixel accuracy, mean class accuracy and mIoU entries of ``segmenter`` on ``images`` into ``out``."""
    from .metrics.segmentation import IGNORE_INDEX, load_segmenter, segmentation_accuracy

    seg = load_segmenter(segmenter) if isinstance(segmenter, str) else segmenter
    size, num_classes = opts.segmentation_size, opts.num_classes
    if size is not None:
        images = {key: _resize_uint8(img, size) for key, img in images.items()}
    res = segmentation_accuracy(seg, images, opts.labels, num_classes=num_classes)
    name = segmenter if isinstance(segmenter, str) else getattr(segmenter, "__name__", "given")
    resized = f"resized to {size[0]}x{size[1]} (PIL bilinear)" if size is not None else "at image size"
    desc = (f"segmenter {name}; weights {getattr(seg, 'weights_source', 'given')}; input RGB [0,1] {resized}; output "
            f"resized to label size; ignore {IGNORE_INDEX}")
    for key in ("pixel_accuracy", "mean_class_accuracy", "mean_iou"):
        out[f"seg_{key}"] = _entry(res[key], desc, VERSIONS["segmentation"], num_classes=num_classes,
                                   images=res["images"], pixels=res["pixels"])
    out["seg_mean_iou"]["details"]["class_iou"] = res["class_iou"]
    return seg


def _resize_uint8(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(3, H, W)`` uint8 -> ``(3, size[0], size[1])`` uint8 with PIL bilinear."""
    from PIL import Image

    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return image_tensor(Image.fromarray(image.permute(1, 2, 0).numpy()).resize((size[1], size[0]), Image.BILINEAR))


def _source_pairs(fake: dict, source, metric: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(source image, translation)`` pairs matched by relative path (for the structure metrics)."""
    if source is None:
        raise EvaluateError(f"{metric} needs --source DIR (the inputs the translations were made from)")
    src = load_folder(source)
    pairs = [(src[key], img) for key, img in fake.items() if key in src]
    if not pairs:
        raise EvaluateError(f"no translation in the fake folder has a source image of the same name in {source}")
    return pairs


def _as_unit(img: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` uint8 -> ``(1, 3, H, W)`` float in [-1, 1], what the single-image metrics take."""
    return img[None].float() / 127.5 - 1.0


def _sifid(real: dict, fake: dict, opts: EvaluateOptions) -> dict:
    """SIFID of each translation against the single real target image (or the real one of the same
    name), averaged over images."""
    from .metrics.single_image import sifid, sifid_inception_extractor

    extractor = opts.sifid_extractor or sifid_inception_extractor(opts.inception_weights or "auto")
    if len(real) != 1 and len(real) != len(fake):
        raise EvaluateError("sifid compares each translation with one real image: give --real with a single "
                            "image, or with one image per translation (same names)")
    refs = {k: (real[k] if len(real) > 1 else next(iter(real.values()))) for k in fake}
    if len(real) > 1 and any(k not in real for k in fake):
        raise EvaluateError("sifid: real and fake folders must hold images with the same names")
    vals = [float(sifid(_as_unit(refs[k]), _as_unit(img), extractor)) for k, img in fake.items()]
    desc = (f"{getattr(extractor, 'description', 'FID Inception-v3 through maxpool1 (64 ch), no resizing')}"
            f"; weights {getattr(extractor, 'weights_source', 'given')}")
    return _entry(float(np.mean(vals)), desc, "sesim.metrics.single_image.sifid (SinGAN)", images=len(vals))


def _selfsim(fake: dict, opts: EvaluateOptions) -> dict:
    """FSeSim self-similarity distance of each translation from its source, averaged over images."""
    from .metrics.single_image import self_similarity_distance
    from .nets.backbones import describe_backbone

    pairs = _source_pairs(fake, opts.source, "selfsim")
    loss = opts.selfsim_loss
    vals = [float(self_similarity_distance(_as_unit(s), _as_unit(f), loss)) for s, f in pairs]
    desc = (f"FSeSim distance (1 - cos of self-similarity maps), {describe_backbone(loss.extractor)} "
            f"{'+'.join(loss.layers)}, {loss.num_queries} {loss.sampling} queries, "
            f"{loss.patch_size or 'global'}-position windows; images at their own size; only comparable "
            "with the same backbone")
    return _entry(float(np.mean(vals)), desc, "sesim.metrics.single_image.self_similarity_distance",
                  images=len(vals))


def evaluate_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, options: EvaluateOptions | None = None, *,
                 overwrite: bool = False, real: str | os.PathLike | None = None, **changes: Any) -> dict:
    """Translate the run's testA into ``out_dir/translations`` and evaluate against testB (or ``real``)
    with ``options`` and ``changes`` as :func:`evaluate_folders`; the structure metrics default to
    the run's backbone."""
    from .data.unpaired import domain_dirs
    from .run import Run
    from .translate import translate_paths

    run_dir = Path(run_dir)
    cfg = Run(run_dir).config
    opts = dataclasses.replace(options or EvaluateOptions(), **changes).resolve(cfg)
    try:
        test_a, test_b = domain_dirs(cfg.data, "test")
    except (FileNotFoundError, ValueError) as err:
        raise EvaluateError(f"the run's data has no test set ({err}); use --real/--fake folders instead") from err
    fake = Path(out_dir) / "translations"
    translate_paths(run_dir, test_a, fake, overwrite=overwrite, progress=False, device=opts.device)
    report = evaluate_folders(real or test_b, fake, opts, source=opts.source or test_a)
    report["run"] = str(run_dir)
    report["source"] = str(test_a)
    return report


def format_value(v: Any) -> str:
    """A metric value in a table: floats to 4 significant digits."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _file_words(record: dict | None) -> str:
    if not record or not record.get("weights_file"):
        return "no weights file (random or built-in weights)"
    sha = record.get("sha256")
    return f"file {record['weights_file']}" + (f" (SHA-256 {sha})" if sha else "")


def header_lines(report: dict) -> list[str]:
    """The header every output starts with: protocol, FID implementation, KID scale, counts, extractor
    (weights file and SHA-256), structure networks and warnings; one line each, Markdown list items."""
    h = report.get("header") or {}
    lines = []
    if h.get("protocol"):
        proto = get_protocol(h["protocol"])
        lines.append(f"- protocol: **{proto.name}**, {proto.title}; {proto.size[0]}x{proto.size[1]} px "
                     "(docs/protocols.md)")
    lines.append(f"- FID implementation: {h.get('fid_implementation') or 'not computed (no FID/KID metric)'}")
    scale = h.get("kid_scale", KID_SCALE)
    lines.append(f"- KID scale: x{scale} (every KID/KD value is {scale} x the unbiased MMD^2)")
    counts = h.get("counts", {})
    lines.append("- samples: " + ", ".join(f"{n} {what}" for what, n in (("translations", counts.get("fake")),
                                                                           ("real images", counts.get("real")))
                                           if n is not None))
    ext = h.get("extractor")
    lines.append(f"- feature extractor: {ext['description']}; {_file_words(ext)}" if ext else
                 "- feature extractor: none (no FID/KID/PRDC metric)")
    for name, record in (h.get("structure") or {}).items():
        lines.append(f"- {name} network: {record['description']}; {_file_words(record)}")
    lines += [f"- **warning**: {w}" for w in h.get("warnings", [])]
    return lines


def markdown_summary(report: dict) -> str:
    lines = ["# sesim evaluate", "", *header_lines(report), f"- fake: `{report['fake']}` ({report['n_fake']} images)"]
    if report.get("real"):
        lines.append(f"- real: `{report['real']}` ({report.get('n_real', '?')} images)")
    if report.get("run"):
        lines.append(f"- run: `{report['run']}` (translations of `{report.get('source')}`)")
    lines += [f"- sesim {report['sesim_version']}, {report['created']}", "",
              "| metric | value | model | version |", "| --- | --- | --- | --- |"]
    models: list[str] = []
    rows = list(report["metrics"].items())
    for ref, entries in (report.get("reference") or {}).items():
        rows += [(f"{name} ({ref}, upper bound)", e) for name, e in entries.items()]
    for name, e in rows:
        extra = e.get("details", {})
        val = format_value(e["value"]) + (f" +- {format_value(extra['std'])}" if "std" in extra else "")
        if "scale" in extra:
            name = f"{name} (x{extra['scale']})"
        if e["model"] not in models:
            models.append(e["model"])
        lines.append(f"| {name} | {val} | [{models.index(e['model']) + 1}] | {e['version'].split(':')[0]} |")
    lines += ["", "Models (feature extractor or network, weights, input resizing and normalisation):", ""]
    lines += [f"{i}. {m}" for i, m in enumerate(models, 1)]
    lines += ["", "Versions:", ""] + [f"- {v}" for k, v in VERSIONS.items()
                                     if any(e["version"] == v for _, e in rows)]
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
