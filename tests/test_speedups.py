"""Optional execution settings (sesim/speedups.py): bf16 autocast, channels-last, torch.compile.

Each must train and compute what the default float32 run computes, up to rounding; speed itself is
measured in bench/speed.py, not here.
"""

import json
import re

import pytest
import torch

from sesim import speedups
from sesim.checkpoint import STATE_FILE, load_state
from sesim.config import TrainConfig
from sesim.methods import build_method
from sesim.runtime import seed_everything
from sesim.train import train
from test_train import tiny_config


def logs(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_bf16_autocast_runs_the_networks_in_bfloat16_and_trains(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "runs", structure="lsesim")
    method = build_method(cfg)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with speedups.autocast(torch.device("cpu"), "bf16"):
        assert method.G(x).dtype == torch.bfloat16
    with speedups.autocast(torch.device("cpu"), "fp32"):
        assert method.G(x).dtype == torch.float32

    fp32 = train(cfg, progress=False)
    cfg16 = tiny_config(tiny_dataset, tmp_path / "runs16", structure="lsesim")
    cfg16.update("run", {"precision": "bf16"})
    bf16 = train(cfg16, progress=False)
    a, b = logs(fp32), logs(bf16)
    assert len(b) == 4 and all(torch.isfinite(torch.tensor(v)) for e in b for v in e.values() if isinstance(v, float))
    # Same data, seeds and initialisation: the first step's losses agree to bfloat16 precision ...
    for key in ("D", "G_gan", "G_structure", "head_nce"):
        assert b[0][key] == pytest.approx(a[0][key], rel=0.05), key
    # ... and the weights (kept in float32) moved as in float32, not identically.
    sa, sb = load_state(fp32 / STATE_FILE)["method"], load_state(bf16 / STATE_FILE)["method"]
    w = "G.to_rgb.conv.weight"
    assert sb[w].dtype == torch.float32 and not torch.equal(sa[w], sb[w])
    torch.testing.assert_close(sb[w], sa[w], atol=5e-3, rtol=0)


def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig().set_flat("precision", "fp16")
    with pytest.raises(ValueError, match="precision"):
        speedups.autocast(torch.device("cpu"), "fp8")


def test_channels_last_trains_to_the_same_weights(tiny_dataset, tmp_path):
    plain = train(tiny_config(tiny_dataset, tmp_path / "a"), progress=False)
    cfg = tiny_config(tiny_dataset, tmp_path / "b")
    cfg.update("run", {"channels_last": True})
    nhwc = train(cfg, progress=False)
    seed_everything(cfg.run.seed)  # as the Trainer does before building the method
    method = build_method(cfg)
    init = method.trainable_state_dict()
    sa, sb = load_state(plain / STATE_FILE)["method"], load_state(nhwc / STATE_FILE)["method"]
    assert sa.keys() == sb.keys() == init.keys()
    # A conv bias followed by instance norm has an analytically zero gradient, so its rounding noise
    # is all Adam sees and turns into full-size steps in either layout: compare everything else.
    modules = dict(method.named_modules())
    followed = {k: re.fullmatch(r"(.*\.)conv(\d*)\.bias", k) for k in sa}  # "<block>.conv<i>" -> "<block>.norm<i>"
    cancelled = {k for k, m in followed.items()
                 if m and isinstance(modules.get(f"{m[1]}norm{m[2]}"), torch.nn.InstanceNorm2d)}
    assert cancelled and len(cancelled) < len(sa) // 2
    kept = [k for k in sa if sa[k].is_floating_point() and k not in cancelled]
    moved = torch.cat([(sa[k] - init[k]).flatten() for k in kept])
    differ = torch.cat([(sb[k] - sa[k]).flatten() for k in kept])
    assert moved.norm() > 0 and differ.norm() < 1e-3 * moved.norm()
    assert [e["G"] for e in logs(nhwc)] == pytest.approx([e["G"] for e in logs(plain)], rel=1e-3)


def test_compile_in_place_keeps_checkpoint_keys(tiny_dataset, tmp_path):
    plain = train(tiny_config(tiny_dataset, tmp_path / "a"), progress=False)
    cfg = tiny_config(tiny_dataset, tmp_path / "b")
    cfg.update("run", {"compile": True, "compile_backend": "eager", "steps": 2})
    compiled = train(cfg, progress=False)
    sa, sb = load_state(plain / STATE_FILE)["method"], load_state(compiled / STATE_FILE)["method"]
    assert sa.keys() == sb.keys()  # no "_orig_mod." prefixes: translate and resume read them as usual
    assert len(logs(compiled)) == 2
    method = build_method(cfg)
    assert set(speedups.compile_networks(method, "eager")) >= {"G", "D"}
