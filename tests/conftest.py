import os
import sys
from pathlib import Path

import pytest
import torch

# bench/lab (the benchmarks' tasks, scorers and harness) is importable as ``lab``, as it is for the bench scripts
sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))

# Tests use tiny tensors, where thread start-up costs more than it saves (and two threads contend
# badly when the machine is busy). Never download anything during tests.
torch.set_num_threads(1)
os.environ["SESIM_OFFLINE"] = "1"


@pytest.fixture
def tiny_dataset(tmp_path):
    """A 32-40 px unpaired dataset: trainA/trainB/testA with a few random-looking images."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for domain, n in (("trainA", 5), ("trainB", 4), ("testA", 3)):
        (root / domain).mkdir(parents=True)
        for i in range(n):
            h, w = rng.integers(32, 48, 2)
            base = rng.integers(0, 255, 3)
            img = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / domain / f"img{i}.png")
    return root


from view_fixtures import view_runs  # noqa: E402,F401 - tiny trained runs shared by the sesim view tests
