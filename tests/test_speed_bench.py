"""bench/speed.py's statistics (lab.timing) and target verdicts, on a fake clock (no timing is asserted here)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("bench_speed", ROOT / "bench" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeClock:
    """perf_counter/process_time that only move when a fake workload says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_interleaved_rounds_give_per_round_ratios(monkeypatch):
    from lab import timing

    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.time, "process_time", clock)
    calls = [0]

    def work(cost):
        def fn():  # the machine's speed changes 3x between rounds (each round = two consecutive calls)
            clock.now += cost * (1.0, 3.0, 1.5)[calls[0] // 2 % 3]
            calls[0] += 1
        return fn

    out = timing.measure_interleaved({"fast": work(0.01), "slow": work(0.12)}, warmup=1, repeats=5)
    assert set(out) == {"fast", "slow"} and out["fast"]["repeats"] == out["slow"]["repeats"] == 5
    assert "paired_ratio" not in out["fast"]
    # whatever the drift, both calls of a round ran at one speed: every per-round ratio is 12
    assert out["slow"]["paired_ratio"] == pytest.approx(12.0)
    assert max(out["fast"]["walls"]) == pytest.approx(3 * min(out["fast"]["walls"]))  # while the medians drift
    assert len(out["fast"]["walls"]) == 5 and out["fast"]["flops"] == 0


def _row(size, structure, window, impl, wall, paired=None, windows="relu3_1 64x64: 32x32 window"):
    row = {"size": size, "structure": structure, "window": window, "impl": impl, "wall_s": wall, "cpu_s": wall,
           "windows": windows}
    if paired is not None:
        row["paired_ratio"] = paired
    return row


def test_targets_use_paired_ratios_and_keep_the_whole_loss_as_context(speed):
    kernel = [_row(256, "lsesim", "local", "fast", 0.010),
              _row(256, "lsesim", "global", "fast", 0.011, paired=1.1),
              _row(256, "lsesim", "local", "per-query", 0.120, paired=9.5)]  # medians say 12x, pairs say 9.5x
    loss = [_row(256, "fsesim", "local", "fast", 0.50),
            _row(256, "fsesim", "global", "fast", 0.50, paired=1.0),
            _row(256, "fsesim", "local", "per-query", 1.10, paired=2.2),
            _row(256, "fsesim", "-", "features only", 0.45, paired=0.9, windows="no maps")]
    checks = speed.evaluate_targets({"loss": loss, "kernel": kernel, "train": []})
    by_target = {c["target"]: c for c in checks}
    speedup = next(c for t, c in by_target.items() if t.startswith("map kernel") and "10x" in t)
    assert speedup["pass"] is False and speedup["measured"].startswith("9.5x paired")
    local_global = next(c for t, c in by_target.items() if t.startswith("map kernel") and "1.2x" in t)
    assert local_global["pass"] is True and local_global["measured"].startswith("0.91x")
    context = next(c for t, c in by_target.items() if t.startswith("whole structure loss") and "context" in t)
    assert context["pass"] is None and "at most 2.4x possible" in context["measured"]
    assert speed._verdict(None) == "info"


def test_side_by_side_flops_are_attributed_by_the_weights_each_op_reads():
    """bench/reference_speed.py splits a step's FLOPs into networks by which parameters (or views of
    them, as a frozen head's detached weights) a convolution or matmul reads; the rest is 'maps'."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    spec = importlib.util.spec_from_file_location("bench_reference_speed", ROOT / "bench" / "reference_speed.py")
    ref_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref_speed)
    g, d = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)
    head = nn.Conv2d(4, 4, 1)

    def step():
        x = torch.rand(1, 3, 16, 16)
        y = g(x)
        z = d(y)
        h = nn.functional.conv2d(z, head.weight.detach())  # a frozen head: detached view, same storage
        f = h.flatten(2)
        (f @ f.transpose(1, 2)).sum().backward()  # a self-similarity product: no weights

    out = ref_speed.attributed_flops(step, {"G": g, "D": d, "backbone": [], "heads": [head]})
    with FlopCounterMode(display=False) as counter:
        step()
    assert out["total"] == counter.get_total_flops()
    conv = lambda cin, cout, k: 2 * cin * cout * k * k * 16 * 16  # noqa: E731  (forward FLOPs)
    assert out["heads"] == conv(4, 4, 1) * 2  # forward + input gradient (the weight is detached)
    assert out["maps & rest"] == 2 * 4 * 256 * 4 * 3  # the product forward and its two input gradients
    assert out["G"] == conv(3, 8, 3) * 2  # forward + weight gradient (the input needs none)
    assert out["D"] == conv(8, 4, 3) * 3  # forward + weight and input gradients
    assert out["backbone"] == 0
