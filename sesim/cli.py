"""The ``sesim`` command: ``train``, ``translate``, ``evaluate``, ``viz``, ``view``, ``demo``, ``export``,
``presets``. Thin: it parses flags and calls the layers below. Training flags are generated from the config
dataclasses (one flag per field, help text and range from the field), so the CLI and the saved ``config.json``
never disagree; the ``translate`` and ``evaluate`` flags come the same way from ``TranslateOptions`` and
``EvaluateOptions``. Every numeric flag is range-checked at parse time (its ``type=``, a
:class:`~sesim.ranges.Range`; tests/test_cli_validation.py checks that none is missing)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .config import RESUME_OPTIONS, OptionError, TrainConfig, available_presets, convert, load_preset_text, option_fields
from .ranges import count


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``sesim train: error: argument --log-every: ... (see --help)``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _FieldValue:
    """argparse ``type=`` of a config flag: checks the value with :func:`sesim.config.convert` (type,
    choices, range) at parse time and passes the text on unchanged (the config converts it again)."""

    def __init__(self, f: dataclasses.Field) -> None:
        self.field = f

    def __call__(self, text: str) -> str:
        try:
            convert(text, self.field)
        except OptionError as err:
            raise argparse.ArgumentTypeError(err.reason) from None
        return text


#: ``viz --side``: panel width in pixels
SIDE = count(16, 4096)


def _flag(name: str) -> str:
    """The command-line flag of an option: ``patch_size`` -> ``--patch-size``."""
    return "--" + name.replace("_", "-")


def _add_option_flags(parser: argparse.ArgumentParser, fields) -> None:
    """One flag per options field (``TranslateOptions``, ``EvaluateOptions``): its default, help,
    choices, ``metavar`` and argparse ``type`` (its ``type``, else its ``range``) from the field;
    a boolean field that defaults to false is a switch."""
    for f in fields:
        meta = f.metadata
        if f.default is False:
            parser.add_argument(_flag(f.name), action="store_true", help=meta["help"])
            continue
        parser.add_argument(_flag(f.name), default=f.default, choices=meta.get("choices"), metavar=meta.get("metavar"),
                            type=meta.get("type") or meta.get("range"), help=meta["help"] or None)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    for section, f in option_fields():
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{section.replace('_', '-')} options")
        group = groups[section]
        flags = [_flag(name) for name in (f.name, *f.metadata.get("aliases", ()))]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = ",".join(default) if isinstance(default, tuple) else default
        help_text = f.metadata.get("help", "")
        if "default" not in help_text:
            help_text += f" (default: {shown})"
        if isinstance(default, bool):
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(*flags, dest=f.name, default=None, metavar=f.name.upper(), type=_FieldValue(f),
                               help=help_text)


def config_flags(cfg: TrainConfig) -> list[str]:
    """``sesim train`` flags that set every option of ``cfg`` (those that are None are left to their
    defaults); the inverse of the flags :func:`build_parser` generates from the config dataclasses."""
    flags = []
    for _, f in option_fields():
        value = cfg.get_flat(f.name)
        if value is None:
            continue
        flag = _flag(f.name)
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    return flags


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sesim", description="Structure-preserving unpaired image translation "
                                     "with the spatially-correlative loss (F/LSeSim).")
    parser.add_argument("--version", action="version", version=f"sesim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a translator (or continue a run with --resume)")
    p.add_argument("--preset", default=None, help="comma-separated presets applied in order (see `sesim presets`)")
    p.add_argument("--resume", metavar="RUN", default=None, help="continue the run in this folder")
    p.add_argument("--from-previous", action="store_true",
                   help="with --resume: continue from the previous checkpoint (checkpoint.prev.pt), when the latest "
                        "is damaged")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flags(p)

    p = sub.add_parser("translate", help="translate an image or a folder with a trained run")
    p.add_argument("--run", required=True, help="run folder (holds config.json and generator.safetensors)")
    p.add_argument("--input", required=True, help="an image file or a folder of images (searched recursively)")
    p.add_argument("--output", required=True, help="output folder; files keep their stem, saved as PNG")
    from .translate import TranslateOptions

    _add_option_flags(p, dataclasses.fields(TranslateOptions))
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("demo", help="generate a toy labels->photo task, train on it and write a results page")
    p.add_argument("--out", default="sesim-demo", help="folder for the data, the run and the page")
    p.add_argument("--steps", type=count(1), default=None, help="training steps (default: the demo preset's)")
    p.add_argument("--structure", choices=("fsesim", "lsesim"), default=None, help="structure loss variant")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("export", help="write a run's generator as ONNX or TorchScript")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--output", default=None, help="output file (default: RUN/generator.<ext>)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    sub.add_parser("presets", help="list the built-in presets")
    _add_evaluate_parser(sub)
    _add_viz_parser(sub)
    _add_view_parser(sub)
    return parser


def _add_view_parser(sub) -> None:
    p = sub.add_parser("view", help="a local web page: click a point, see its self-similarity maps in the input "
                       "and the translations, layer by layer and step by step")
    p.add_argument("--run", action="append", required=True, metavar="RUN",
                   help="run folder; repeat to compare runs side by side")
    p.add_argument("--input", default=None, metavar="IMAGE_OR_FOLDER",
                   help="images to look at (default: the first run's sample images)")
    p.add_argument("--size", type=count(0), default=None, metavar="PX", help="--input images: longer side in pixels "
                   "(default: the first run's training size; 0 keeps their size)")
    p.add_argument("--style-from", default=None, metavar="IMAGE",
                   help="multimodal runs: start with the style of this target-domain image")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=count(0, 65535), default=8765, help="port (0: any free port; default 8765)")
    p.add_argument("--no-open", action="store_true", help="do not open a browser")


def _add_viz_parser(sub) -> None:
    p = sub.add_parser("viz", help="figures that explain a translation (self-similarity heat maps, loss error maps)")
    vsub = p.add_subparsers(dest="viz_command", required=True)
    h = vsub.add_parser("heatmap", help="self-similarity maps of query points, source vs translation, per layer")
    h.add_argument("--source", required=True, help="source image")
    h.add_argument("--translation", default=None, help="its translation (default: translate with --run's generator)")
    h.add_argument("--run", default=None, help="use this run's structure loss (and its trained LSeSim heads)")
    h.add_argument("--points", default=None, help="query points in source pixels, 'x,y;x,y' (default: 3 on the diagonal)")
    h.add_argument("--layers", default=None, help="comma-separated backbone layers (default: the loss's layers)")
    h.add_argument("--side", type=SIDE, default=160, help="panel width in pixels")
    e = vsub.add_parser("errormap", help="per-location error of L1, perceptual, PatchNCE, FSeSim, LSeSim between images")
    e.add_argument("--a", required=True, help="reference image (e.g. the source)")
    e.add_argument("--b", required=True, nargs="+", help="one or more images compared with --a (one row each)")
    e.add_argument("--run", default=None, help="use this run's structure loss / LSeSim heads (or a CUT run's PatchNCE)")
    e.add_argument("--side", type=SIDE, default=128, help="panel width in pixels")
    c = vsub.add_parser("correspondence", help="exemplar runs: where each input point takes its colour from in the "
                        "exemplar, the warped exemplar, and the exemplar's self-correlation maps")
    c.add_argument("--run", required=True, help="a --mode exemplar run folder")
    c.add_argument("--input", required=True, help="conditional input image")
    c.add_argument("--exemplar", required=True, help="exemplar photo")
    c.add_argument("--points", default=None, help="exemplar points of the self-correlation maps, 'x,y;x,y' "
                   "(default: 3 on the diagonal)")
    c.add_argument("--side", type=SIDE, default=128, help="panel width in pixels")
    for q in (h, e):
        q.add_argument("--backbone", choices=("auto", "vgg16", "efficientnet-lite0"), default="auto",
                       help="without --run: the feature network (auto: ImageNet VGG16 if its file is found, else "
                       "ImageNet EfficientNet-Lite0; with --run, the run's own)")
        q.add_argument("--backbone-weights", "--vgg-weights", dest="backbone_weights", default="auto",
                       help="without --run: auto | imagenet | random | path to a state dict")
        q.add_argument("--feature-norm", choices=("auto", "l2", "centered_l2", "tanh"), default="auto",
                       help="without --run: FSeSim feature normalisation (auto: l2 with pretrained weights, "
                       "centered_l2 with random-init features)")
    for q in (h, e, c):
        q.add_argument("--output", required=True, help="figure file (.png)")
        q.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then each ``--preset`` in order, then the flags given."""
    cfg = TrainConfig()
    for name in (args.preset or "").split(","):
        if name.strip():
            cfg.apply_preset(name.strip())
    for key in _given_config_flags(args):
        cfg.set_flat(key, getattr(args, key))
    return cfg


def _given_config_flags(args: argparse.Namespace) -> list[str]:
    return [f.name for _, f in option_fields() if getattr(args, f.name, None) is not None]


def cmd_train(args: argparse.Namespace) -> int:
    from .train import resume, train

    progress = not args.no_progress
    if args.resume:
        given = _given_config_flags(args)
        fixed = [k for k in given if k not in RESUME_OPTIONS]
        if fixed or args.preset:
            raise SystemExit(f"sesim train --resume: cannot change {fixed or ['--preset']} of an existing run; "
                             f"only {', '.join(map(_flag, RESUME_OPTIONS))}")
        overrides = {k: getattr(args, k) for k in given if k != "steps"}
        steps = int(args.steps) if args.steps is not None else None
        run = resume(args.resume, steps=steps, progress=progress, overrides=overrides,
                     from_previous=args.from_previous)
    else:
        if args.from_previous:
            raise SystemExit("sesim train: --from-previous needs --resume RUN")
        cfg = _config_from_args(args)
        if not (cfg.data.data or cfg.data.dir_a or cfg.data.dir_b):
            raise SystemExit("sesim train: give --data DIR (with trainA/ and trainB/) or --dir-a and --dir-b")
        run = train(cfg, progress=progress)
    print(f"run folder: {run}")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from .translate import TranslateOptions, translate_paths

    options = TranslateOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TranslateOptions)})
    written = translate_paths(args.run, args.input, args.output, options, progress=not args.no_progress)
    print(f"wrote {len(written)} image(s) to {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    page = run_demo(Path(args.out), steps=args.steps, structure=args.structure, device=args.device,
                    seed=args.seed, progress=not args.no_progress)
    print(f"results page: {page}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_run

    path = export_run(args.run, args.output, fmt=args.format, direction=args.direction, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def _add_evaluate_parser(sub) -> None:
    from .evaluate import EvaluateOptions

    p = sub.add_parser("evaluate", help="score translations (FID/KID, density/coverage, LPIPS diversity, "
                       "segmentation accuracy, structure distances), or every snapshot of a run (--snapshots); "
                       "writes metrics.json and metrics.md (sweep.json/.md/.png)")
    p.add_argument("--real", default=None, help="folder of real target-domain images")
    p.add_argument("--fake", default=None, help="folder of translations")
    p.add_argument("--run", default=None, help="a run folder: translate its testA, compare with its testB")
    p.add_argument("--out", default=None, help="output folder for metrics.json/metrics.md "
                   "(default: RUN/eval with --run, RUN/sweep with --snapshots/--protocol, else ./sesim-eval)")
    p.add_argument("--snapshots", default=None, metavar="all|last|STEPS",
                   help="with --run: score the run's generator snapshots (sesim train --snapshot-every), all, the "
                   "last, or comma-separated steps; writes sweep.json/.md/.png with the best and the last step; "
                   "resumable (scored snapshots are not scored again)")
    p.add_argument("--select-on", default=None, metavar="DIR",
                   help="pick the best snapshot on this validation folder (valA/ + valB/, or testA/ + testB/) and "
                   "report it on the test set (default: picked on the test set itself, which is optimistic)")
    p.add_argument("--select-on-labels", default=None, metavar="DIR", help="segmentation labels of --select-on")
    p.add_argument("--select-by", default=None, metavar="METRIC",
                   help="the metric that picks the best snapshot, an output name such as kid, fid, seg_mean_iou "
                   "(default: the first one listed: KID below 2048 images)")
    p.add_argument("--keep-translations", action="store_true", help="--snapshots: keep each snapshot's translations")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace existing metrics/translations in --out")
    _add_option_flags(p, EvaluateOptions.flag_fields())  # --protocol, --metrics, ...: how to score


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import EvaluateOptions, evaluate_folders, evaluate_run, header_lines, write_report

    options = EvaluateOptions(**{f.name: getattr(args, f.name) for f in EvaluateOptions.flag_fields()})
    if args.run and (args.snapshots or args.protocol or args.select_on):
        return _evaluate_sweep(args, options)
    if args.snapshots or args.select_on:
        raise SystemExit("sesim evaluate: --snapshots and --select-on need --run RUN")
    if args.run and args.fake:
        raise SystemExit("sesim evaluate: give either --run or --fake, not both")
    fake = args.fake or args.samples_dir  # lpips_diversity alone needs only the samples
    if not (args.run or fake):
        raise SystemExit("sesim evaluate: give --fake DIR (and --real DIR), or --run RUN")
    out = Path(args.out or (Path(args.run) / "eval" if args.run else "sesim-eval"))
    if (out / "metrics.json").exists() and not args.overwrite:
        raise FileExistsError(f"{out / 'metrics.json'} exists; pass --overwrite or choose another --out")
    if args.run:
        report = evaluate_run(args.run, out, options, overwrite=args.overwrite, real=args.real)
    else:
        report = evaluate_folders(args.real, fake, options)
    json_path, md_path = write_report(report, out, overwrite=args.overwrite)
    print("\n".join(header_lines(report)))
    for name, entry in report["metrics"].items():
        value = entry["value"]
        print(f"{name:28s} {value:.6g}" if isinstance(value, float) else f"{name:28s} {value}")
    for ref, entries in (report.get("reference") or {}).items():
        for name, entry in entries.items():
            print(f"{name + ' (' + ref + ')':28s} {entry['value']:.6g}")
    print(f"wrote {json_path} and {md_path}")
    return 0


def _evaluate_sweep(args: argparse.Namespace, options) -> int:
    """``sesim evaluate --run RUN --snapshots ...``: score the run's history (sesim.sweep)."""
    from .evaluate import header_lines
    from .sweep import sweep_run

    if args.fake or args.samples_dir or args.source:
        raise SystemExit("sesim evaluate --snapshots: the run's own test set is translated; --fake, --samples-dir "
                         "and --source do not apply")
    out = Path(args.out) if args.out else Path(args.run) / "sweep"
    data = sweep_run(args.run, out, options, snapshots=args.snapshots or "last", select_on=args.select_on,
                     select_on_labels=args.select_on_labels, select_by=args.select_by, real=args.real,
                     keep_translations=args.keep_translations, overwrite=args.overwrite,
                     progress=not args.no_progress)
    print("\n".join(header_lines({"header": data.get("header", {})})))
    cols = data["metric_order"]
    print("step      " + " ".join(f"{c:>14s}" for c in cols))
    for step in data["steps"]:
        rec = data["snapshots"][str(step)]["test"]
        marks = [m for m, on in (("best", step == data["best_step"]), ("last", step == data["last_step"])) if on]
        print(f"{step:<9d} " + " ".join(f"{rec.get(c, float('nan')):14.5g}" for c in cols) + "  " + " + ".join(marks))
    by = data["settings"]["select_by"]
    sel = data["selection"][by]
    print(f"last: step {sel['last']['step']}, {by} {sel['last']['value']:.5g}; best: step {sel['best']['step']}, {by} "
          f"{sel['best']['value']:.5g} (picked on the {data['selected_on']} set)")
    print(f"note: {data['note']}")
    print(f"wrote {out / 'sweep.json'}, {out / 'sweep.md'} and {out / 'sweep.png'}")
    return 0


def cmd_viz(args: argparse.Namespace) -> int:
    from .explain import correspondence_command, errormap_command, heatmap_command

    if args.viz_command == "correspondence":
        path = correspondence_command(args.run, args.input, args.exemplar, args.output, points=args.points,
                                      side=args.side, overwrite=args.overwrite)
    elif args.viz_command == "heatmap":
        path = heatmap_command(args.source, args.output, translation=args.translation, run=args.run,
                               points=args.points, layers=args.layers, backbone=args.backbone,
                               backbone_weights=args.backbone_weights, feature_norm=args.feature_norm,
                               side=args.side, overwrite=args.overwrite)
    else:
        path, maps = errormap_command(args.a, args.b, args.output, run=args.run, backbone=args.backbone,
                                      backbone_weights=args.backbone_weights, feature_norm=args.feature_norm,
                                      side=args.side, overwrite=args.overwrite)
        for b, row in zip(args.b, maps):
            print(f"{b}: " + ", ".join(f"{m.name} {m.mean:.4f}" for m in row if m is not None))
    print(f"wrote {path}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from .view.server import serve

    code = serve(args.run, args.input, host=args.host, port=args.port, open_browser=not args.no_open,
                 style_from=args.style_from, size=args.size)
    # Once the server has stopped nothing is left to save, but its daemon threads (request handlers,
    # the background feature warm-up) may still be inside torch, and tearing the interpreter down
    # under them aborts the process ("terminate called without an active exception", exit -6, seen
    # on SIGINT/SIGTERM). Leave directly instead, with the streams flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_presets(_args: argparse.Namespace) -> int:
    import tomllib

    for name in available_presets():
        print(f"{name:14s} {tomllib.loads(load_preset_text(name)).get('description', '')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    from .data.images import EmptyFolderError, ImageError
    from .nets.weightfiles import WeightsNotFoundError
    from .train import TrainingError
    from .translate import TranslateError

    commands = {"train": cmd_train, "translate": cmd_translate, "demo": cmd_demo, "export": cmd_export,
                "evaluate": cmd_evaluate, "presets": cmd_presets, "viz": cmd_viz, "view": cmd_view}
    try:
        return commands[args.command](args)
    except (TrainingError, TranslateError, WeightsNotFoundError, ImageError, EmptyFolderError,
            FileNotFoundError, NotADirectoryError, FileExistsError, ValueError) as err:
        print(f"sesim {args.command}: error: {err}", file=sys.stderr)
        return 1
