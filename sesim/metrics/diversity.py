"""LPIPS diversity of multi-sample (multimodal) translations.

For each input, K >= 2 translations are given; the score of the input is the mean LPIPS distance
over its ``K (K - 1) / 2`` pairs, and the reported value is the mean (and standard deviation) over
inputs. Higher means more diverse outputs. 0 for a deterministic translator.

Layout of ``--samples-dir``: files named ``<stem>_s<k>.<ext>`` (``k`` = 0, 1, ...), in one folder or
in sub-folders; e.g. ``frankfurt_0001_s0.png``, ``frankfurt_0001_s1.png``, ... Inputs with a single
sample are skipped (reported as ``skipped``). All samples of one input must have the same size.
"""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

__all__ = ["group_samples", "lpips_diversity", "SAMPLE_PATTERN"]

SAMPLE_PATTERN = re.compile(r"^(?P<stem>.+)_s(?P<k>\d+)$")


def group_samples(paths: list[Path], root: Path) -> dict[str, list[Path]]:
    """``{stem (relative, no extension): [paths sorted by k]}`` for files named ``<stem>_s<k>.*``."""
    groups: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for p in paths:
        rel = p.relative_to(root).with_suffix("")
        m = SAMPLE_PATTERN.match(rel.name)
        if m:
            groups[str(rel.with_name(m["stem"]))].append((int(m["k"]), p))
    return {stem: [p for _, p in sorted(v)] for stem, v in sorted(groups.items())}


@torch.no_grad()
def lpips_diversity(lpips_model: torch.nn.Module, groups: dict[str, list[torch.Tensor]]) -> dict:
    """Mean pairwise LPIPS per input, averaged over inputs.

    ``groups``: ``{stem: [(3, H, W) uint8 tensors]}``; ``lpips_model(x, y)`` takes ``(N, 3, H, W)``
    in ``[-1, 1]`` and returns ``(N,)``. Returns ``{"mean", "std", "inputs", "pairs", "skipped"}``.
    """
    per_input, pairs, skipped = [], 0, 0
    for stem, samples in groups.items():
        if len(samples) < 2:
            skipped += 1
            continue
        if len({tuple(s.shape) for s in samples}) != 1:
            raise ValueError(f"samples of {stem} differ in size")
        x = torch.stack(samples).float() / 127.5 - 1.0
        idx = list(combinations(range(len(samples)), 2))
        a = x[[i for i, _ in idx]]
        b = x[[j for _, j in idx]]
        per_input.append(float(lpips_model(a, b).mean()))
        pairs += len(idx)
    if not per_input:
        raise ValueError("LPIPS diversity needs at least one input with >= 2 samples named <stem>_s<k>")
    v = np.asarray(per_input)
    return {"mean": float(v.mean()), "std": float(v.std()), "inputs": len(per_input), "pairs": pairs,
            "skipped": skipped}
