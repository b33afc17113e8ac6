"""Statistics over seeds: mean and sample standard deviation, table cells, and what counts as a difference."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

NAN = float("nan")


def _finite(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def mean_std(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1) of the values that are not None or NaN;
    the std is NaN for fewer than two values, both are NaN for none."""
    v = [x for x in values if _finite(x)]
    if not v:
        return NAN, NAN
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else NAN


def cell(mean: float | None, std: float | None, digits: int) -> str:
    """``"m ± s"`` with ``digits`` decimals; ``"m"`` when the std is None or NaN; ``"–"`` without a mean."""
    if not _finite(mean):
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if _finite(std) else "")


def summarize(rows: Sequence[dict], metrics: Iterable[str], *, group: tuple[str, ...] = ("task", "method"),
              maximum: Iterable[str] = (), first: Iterable[str] = ()) -> list[dict]:
    """One row per ``group`` value (in order of appearance): ``label``, ``n_seeds`` and ``failed_seeds``
    (rows with an ``"error"``), then ``<metric>`` and ``<metric>_std`` (:func:`mean_std` over the
    rows without an error) for each of ``metrics`` the first good row has, the largest value of each
    of ``maximum`` and the value of the first good row for each of ``first``."""
    keys = list(dict.fromkeys(tuple(r[k] for k in group) for r in rows))
    out = []
    for key in keys:
        members = [r for r in rows if tuple(r[k] for k in group) == key]
        good = [r for r in members if "error" not in r]
        s = {**dict(zip(group, key)), "label": (good or members)[0]["label"], "n_seeds": len(good),
             "failed_seeds": len(members) - len(good)}
        if good:
            for k in metrics:
                if k in good[0]:
                    s[k], s[k + "_std"] = mean_std(r[k] for r in good)
            s.update({k: max(r[k] for r in good) for k in maximum if k in good[0]})
            s.update({k: good[0][k] for k in first if k in good[0]})
        out.append(s)
    return out


def compare(a: dict, b: dict, key: str, higher: bool) -> str | None:
    """``a`` against ``b`` on ``key``: 'better' / 'worse' / 'equal', or 'within the seed spread' when
    the difference of the means is no larger than the larger sample std of the two (None: no values)."""
    if not (_finite(a.get(key)) and _finite(b.get(key))):
        return None
    diff = a[key] - b[key]
    spread = max(a.get(key + "_std", NAN), b.get(key + "_std", NAN))
    if diff == 0:
        return "equal"
    if not math.isnan(spread) and abs(diff) <= spread:
        return "within the seed spread"
    return "better" if (diff > 0) == higher else "worse"
