"""The ``public-code`` loss settings.

Two kinds of test, kept apart on purpose:

* on sesim alone: what the settings are and what the masked comparison computes on hand-made maps
  (no claim about the authors' code is checked by these);
* side by side with the authors' F-LSeSim code, only when its snapshot is on this machine
  (``../shared/reference/F-LSeSim`` beside the repository; skipped otherwise): value and gradient of
  their ``Spatial_Loss`` against sesim's on identical images, VGG16 weights, queries and heads, by
  running ``bench/reference_parity.py`` in a subprocess (their code patches ``torchvision`` and adds
  top-level ``models``/``options`` packages, which must not leak into this test process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sesim.config import TrainConfig
from sesim.losses.spatial import PUBLIC_CODE_SETTINGS, SpatialCorrelativeLoss
from sesim.factory import build_structure_loss
from sesim.ops.selfsim import map_distance

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "F-LSeSim"


def test_preset_gives_the_public_code_settings():
    cfg = TrainConfig()
    cfg.apply_preset("public-code")
    cfg.set_flat("backbone_weights", "random")
    loss = build_structure_loss(cfg.structure)
    assert isinstance(loss, SpatialCorrelativeLoss)
    for key, value in PUBLIC_CODE_SETTINGS.items():
        got = getattr(loss, key, None) if key != "backbone" else loss.extractor.name
        assert tuple(got) == tuple(value) if isinstance(value, tuple) else got == value, key
    assert loss.mask_from == "target" and loss.smooth_l1


def test_paper_default_is_unchanged():
    """The paper's comparison stays the default: no mask, plain 1 - cos."""
    cfg = TrainConfig()
    assert cfg.structure.mask_keep is None and cfg.structure.mask_from == "source" and not cfg.structure.smooth_l1


def test_masked_cosine_by_hand():
    # N_p = 8, mask_keep 0.25: k = 2, the threshold is the target's value of descending rank 2 (0-based),
    # so its top 3 entries are kept in both maps
    sy = torch.tensor([[[0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.0, 0.4]]])
    sx = torch.tensor([[[0.5, 0.6, 0.1, 0.9, 0.3, 0.2, 0.8, 0.0]]])
    keep = torch.tensor([1.0, 0, 1, 0, 1, 0, 0, 0])
    a, b = sx * keep, sy * keep
    cos = float((a * b).sum() / (a.norm() * b.norm()))
    d = map_distance(sx, sy, "cos", mask_keep=0.25, mask_from="target", smooth_l1=True)
    assert d.item() == pytest.approx(0.5 * (1 - cos) ** 2, rel=1e-6)
    # gradients reach the kept entries of the source map only
    sx = sx.clone().requires_grad_(True)
    map_distance(sx, sy, "cos", mask_keep=0.25, mask_from="target").sum().backward()
    assert torch.all(sx.grad[0, 0][keep == 0] == 0) and torch.all(sx.grad[0, 0][keep == 1] != 0)


def test_given_queries_are_used(random_vgg_extractor):
    loss = SpatialCorrelativeLoss(extractor=random_vgg_extractor, **{
        k: v for k, v in PUBLIC_CODE_SETTINGS.items() if k not in ("backbone", "layers")})
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(1, 3, 64, 64, generator=g) * 2 - 1 for _ in range(2))
    q = {name: torch.randperm(256 if name == "relu3_1" else 64, generator=g)[:32] for name in loss.layers}
    a, b = loss(x, y, queries=q), loss(x, y, queries=q)
    assert a.item() == b.item()
    out = loss(x, y, queries=q, return_details=True)
    for name in loss.layers:
        assert torch.equal(out.maps_x[name].queries, q[name])


@pytest.fixture
def random_vgg_extractor():
    from sesim.nets.backbones import build_backbone

    return build_backbone("vgg16", ("relu3_1", "relu4_1"), "random")


@pytest.mark.skipif(not (REFERENCE / "models" / "sc_model.py").is_file(),
                    reason="the authors' F-LSeSim code is not on this machine (../shared/reference/F-LSeSim)")
@pytest.mark.timeout(1500)  # about a minute idle; a 528 MB VGG16 file is written and loaded
def test_same_value_and_gradient_as_the_authors_code(tmp_path):
    # 64 px: relu3_1 is 16 x 16, so their --patch_size 8 gives local windows there and 64 global maps
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "reference_parity.py"), "--sizes", "64",
                           "--patches", "64,8", "--out", str(tmp_path), "--reference", str(REFERENCE)],
                          capture_output=True, text=True, timeout=1400)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    res = json.loads((tmp_path / "reference_parity.json").read_text())
    assert len(res["rows"]) == 10
    assert any("local" in r["windows"] for r in res["rows"])
    for r in res["rows"]:
        for key in ("loss_rel", "grad_rel", "feature_loss_rel", "feature_grad_rel"):
            if key in r:
                assert r[key] <= 1e-5, (r["case"], key, r[key])


def test_public_code_lsesim_step_translates_once():
    """With --head-on-translation (set by the public-code preset) the head step reuses the step's
    translation, detached, instead of running the generator a second time, and the backbone runs
    once per distinct image."""
    from sesim.methods import build_method

    cfg = TrainConfig()
    for preset in ("lsesim", "public-code"):
        cfg.apply_preset(preset)
    for key, value in (("backbone_weights", "random"), ("size", 32), ("load_size", 32), ("ngf", 8),
                       ("n_blocks", 1), ("ndf", 8), ("num_queries", 16)):
        cfg.set_flat(key, value)
    assert cfg.structure.head_on_translation and cfg.structure.positive_vs_other
    torch.manual_seed(0)
    method = build_method(cfg)
    assert method.structure.positive_vs_other
    calls, backbone = [], []
    method.G.register_forward_hook(lambda *_: calls.append(1))
    method.structure.extractor.register_forward_hook(lambda _m, inp, _o: backbone.append(inp[0].shape[0]))
    g = torch.Generator().manual_seed(0)
    batch = {"A": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1}
    logs = method.train_step(batch)
    assert len(calls) == 1 and "head_nce" in logs and torch.isfinite(torch.tensor(logs["G"]))
    # the backbone sees each distinct image once: the translation (its graph reused by G's loss),
    # then source, augmented source, flipped target and flipped augmented target in one batch
    assert backbone == [1, 4]
