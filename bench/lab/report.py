"""Results as JSON, reports rendered from the JSON; the command-line flags the scripts share.

A benchmark writes ``<stem>.json`` and then renders ``<stem>.md`` from that file as read back, so
the report holds nothing the JSON does not, and ``--render`` (:func:`rerender`) rewrites the same
report from a committed JSON without measuring anything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from . import paths
from .methods import parse_sets

Render = Callable[[dict], str]


def write(folder: Path, stem: str, result: dict, render: Render, *, indent: int = 2,
          default: Callable[[Any], Any] | None = None) -> dict[str, Path]:
    """Write ``<folder>/<stem>.json`` and ``<stem>.md`` (rendered from the JSON as written)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(result, indent=indent, default=default) + "\n")
    return {"json": folder / f"{stem}.json", "md": rerender(folder, stem, render)}


def rerender(folder: Path, stem: str, render: Render) -> Path:
    """Rewrite ``<folder>/<stem>.md`` from ``<folder>/<stem>.json``; returns the report's path."""
    md = Path(folder) / f"{stem}.md"
    md.write_text(render(json.loads((Path(folder) / f"{stem}.json").read_text())))
    return md


def output_folder(ap: argparse.ArgumentParser, requested: str | Path | None, *, quick: bool) -> Path:
    """:func:`lab.paths.results_dir`, with a refused folder reported as a usage error of ``ap``."""
    try:
        return paths.results_dir(requested, quick=quick)
    except paths.CommittedResultsError as err:
        ap.error(str(err))


def add_render_flag(ap: argparse.ArgumentParser, where: str) -> None:
    ap.add_argument("--render", action="store_true",
                    help=f"measure nothing: rewrite the report from its JSON in {where} (default bench/results)")


def add_set_flag(ap: argparse.ArgumentParser, what: str) -> None:
    """``--set KEY=VALUE`` (repeatable; ``what`` is its help) into ``args.overrides``, a list of
    ``(key, value)``: ``dict()`` it."""
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", type=_set_item,
                    help=what + " (repeatable)")


def _set_item(item: str) -> tuple[str, str]:
    try:
        return next(iter(parse_sets([item]).items()))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def comma_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (an argparse ``type``)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_choices(choices: Iterable[str], hint: str = "") -> Callable[[str], list[str]]:
    """An argparse ``type``: :func:`comma_list`, refusing items not in ``choices`` (``hint`` ends the error)."""
    choices = tuple(choices)

    def parse(text: str) -> list[str]:
        items = comma_list(text)
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}{hint}")
        return items
    return parse


def comma_ints(text: str) -> list[int]:
    """``"0,1, 2"`` -> ``[0, 1, 2]`` (an argparse ``type``)."""
    return [int(item) for item in comma_list(text)]


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: ``header``, its ``|---|`` rule, then one line per row of cells."""
    return [table_row(header), "|" + "---|" * len(header), *(table_row(cells) for cells in rows)]


def table_row(cells: Sequence[Any]) -> str:
    """``| a | b |`` (cells through ``str``)."""
    return "| " + " | ".join(map(str, cells)) + " |"
