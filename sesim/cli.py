"""The ``sesim`` command: ``train``, ``translate``, ``demo``, ``presets``. Thin: it parses flags and
calls the layers below. Training flags are generated from the config dataclasses (one flag per
field, help text from the field), so the CLI and the saved ``config.json`` never disagree."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from . import __version__
from .config import SECTIONS, TrainConfig, available_presets, load_preset_text

RESUME_OVERRIDABLE = ("steps", "device", "checkpoint_every", "sample_every", "log_every", "workers", "num_samples")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} options")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            shown = ",".join(default) if isinstance(default, tuple) else default
            help_text = f.metadata.get("help", "")
            if "default" not in help_text:
                help_text += f" (default: {shown})"
            if isinstance(default, bool):
                group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            else:
                group.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sesim", description="Structure-preserving unpaired image translation "
                                     "with the spatially-correlative loss (F/LSeSim).")
    parser.add_argument("--version", action="version", version=f"sesim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a translator (or continue a run with --resume)")
    p.add_argument("--preset", default=None, help="comma-separated presets applied in order (see `sesim presets`)")
    p.add_argument("--resume", metavar="RUN", default=None, help="continue the run in this folder")
    p.add_argument("--method", default=None, help="training recipe (sesim)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flags(p)

    p = sub.add_parser("translate", help="translate an image or a folder with a trained run")
    p.add_argument("--run", required=True, help="run folder (holds config.json and generator.safetensors)")
    p.add_argument("--input", required=True, help="an image file or a folder of images (searched recursively)")
    p.add_argument("--output", required=True, help="output folder; files keep their stem, saved as PNG")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (equal sizes are batched)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB",
                   help="BtoA uses the reverse generator of two-sided methods (CycleGAN)")
    p.add_argument("--weights", default=None, help="a generator .safetensors other than the run's latest")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("demo", help="generate a toy labels->photo task, train on it and write a results page")
    p.add_argument("--out", default="sesim-demo", help="folder for the data, the run and the page")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the demo preset's)")
    p.add_argument("--structure", choices=("fsesim", "lsesim"), default=None, help="structure loss variant")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("export", help="write a run's generator as ONNX or TorchScript")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--output", default=None, help="output file (default: RUN/generator.<ext>)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    sub.add_parser("presets", help="list the built-in presets")
    return parser


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig()
    if args.method:
        cfg.method = args.method
    for name in (args.preset or "").split(","):
        if name.strip():
            cfg.apply_preset(name.strip())
    for key in _given_config_flags(args):
        cfg.set_flat(key, getattr(args, key))
    return cfg


def _given_config_flags(args: argparse.Namespace) -> list[str]:
    return [f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None]


def cmd_train(args: argparse.Namespace) -> int:
    from .train import resume, train

    progress = not args.no_progress
    if args.resume:
        given = _given_config_flags(args)
        fixed = [k for k in given if k not in RESUME_OVERRIDABLE]
        if fixed or args.preset or args.method:
            raise SystemExit(f"sesim train --resume: cannot change {fixed or ['--preset/--method']} of an existing run; "
                             f"only {', '.join('--' + k.replace('_', '-') for k in RESUME_OVERRIDABLE)}")
        overrides = {k: getattr(args, k) for k in given if k != "steps"}
        steps = int(args.steps) if args.steps is not None else None
        run = resume(args.resume, steps=steps, progress=progress, overrides=overrides)
    else:
        cfg = _config_from_args(args)
        if not (cfg.data.data or cfg.data.dir_a or cfg.data.dir_b):
            raise SystemExit("sesim train: give --data DIR (with trainA/ and trainB/) or --dir-a and --dir-b")
        run = train(cfg, progress=progress)
    print(f"run folder: {run}")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from .translate import translate_paths

    written = translate_paths(args.run, args.input, args.output, overwrite=args.overwrite, batch_size=args.batch_size,
                              device=args.device, direction=args.direction, weights=args.weights,
                              progress=not args.no_progress)
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


def cmd_presets(_args: argparse.Namespace) -> int:
    import tomllib

    for name in available_presets():
        print(f"{name:14s} {tomllib.loads(load_preset_text(name)).get('description', '')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    from .data.images import EmptyFolderError, ImageError
    from .nets.vgg import WeightsNotFoundError
    from .train import TrainingError
    from .translate import TranslateError

    commands = {"train": cmd_train, "translate": cmd_translate, "demo": cmd_demo, "export": cmd_export,
                "presets": cmd_presets}
    try:
        return commands[args.command](args)
    except (TrainingError, TranslateError, WeightsNotFoundError, ImageError, EmptyFolderError,
            FileNotFoundError, NotADirectoryError, FileExistsError, ValueError) as err:
        print(f"sesim {args.command}: error: {err}", file=sys.stderr)
        return 1
