"""What only the benchmarks use, in one importable package: nothing in ``sesim`` imports it.

* :mod:`lab.paths` -- where results go: committed results in ``bench/results/``, every ``--quick``
  run in ``bench/work/`` (git-ignored); a quick run refuses to write into ``bench/results/``.
* :mod:`lab.methods` -- the methods the benchmarks compare, as sesim presets plus flat options
  (``TrainConfig.apply_preset`` / ``set_flat``), and the one helper that reads a config's values.
* :mod:`lab.runner` -- one training run in a fresh subprocess (time, steps/s, peak memory), and
  any other measurement a script runs in a process of its own (``child_result``).
* :mod:`lab.stats` -- mean and sample standard deviation over seeds, table cells, comparisons.
* :mod:`lab.report` -- result JSON and the Markdown report rendered from it (``--render``), its
  tables, and the flags the scripts share (``--set``, comma-separated lists).
* :mod:`lab.timing` -- interleaved timing, machine facts, load from other processes, FLOPs per
  network, a measurement as text and table cells.
* :mod:`lab.tasks` -- the benchmark tasks with a known answer and their scorers;
  :mod:`lab.photo_task` -- the real-photo task; :mod:`lab.snapshots` -- best and last snapshot of
  a run; :mod:`lab.reference_code` -- the authors' public code, driven next to sesim.

The scripts in ``bench/`` import it as ``lab`` (Python puts a script's own folder on ``sys.path``);
the tests put ``bench/`` on ``sys.path`` in ``tests/conftest.py``. Importing ``lab`` puts the
checkout's root first on ``sys.path``, so a checkout's benchmarks measure that checkout's sesim
even without ``pip install -e .``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
