"""One rule for where a benchmark writes: committed results in ``bench/results/``, quick runs in
``bench/work/`` (git-ignored).

A ``--quick`` run (or any reduced run a script calls quick) writes to ``bench/work/results-quick/``
unless told otherwise, and refuses a destination inside ``bench/results/``: a regression check
never replaces the results the documentation quotes.
"""

from __future__ import annotations

from pathlib import Path

from . import ROOT

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work"
QUICK_RESULTS = WORK / "results-quick"


class CommittedResultsError(ValueError):
    """A quick run was asked to write into ``bench/results/``."""


def is_committed(path: str | Path) -> bool:
    """True for ``bench/results/`` and anything inside it."""
    path, results = Path(path).resolve(), RESULTS.resolve()
    return path == results or results in path.parents


def results_dir(requested: str | Path | None = None, *, quick: bool = False) -> Path:
    """The folder a run writes its reports to: ``requested`` when given, else ``bench/results/``
    (a full run) or ``bench/work/results-quick/`` (a quick one).

    Raises:
        CommittedResultsError: ``quick`` and the folder is ``bench/results/`` or inside it.
    """
    out = Path(requested) if requested else (QUICK_RESULTS if quick else RESULTS)
    if quick and is_committed(out):
        raise CommittedResultsError(f"a quick run never writes into {RESULTS} (the committed results); "
                                    f"leave the output folder at its default ({QUICK_RESULTS}) or pick one outside it")
    return out
