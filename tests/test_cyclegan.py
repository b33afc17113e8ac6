"""CycleGAN baseline: losses, update order, run folder with both directions, exact resume."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import sesim.methods
from sesim.checkpoint import STATE_FILE, generator_file, load_generator_weights, load_state
from sesim.methods import NonFiniteLossError
from sesim.methods.cyclegan import CycleGANMethod
from sesim.train import Trainer, resume, train
from sesim.translate import translate_paths
from test_train import assert_identical_checkpoints, tiny_config


def cyclegan_config(data, runs, **loss):
    cfg = tiny_config(data, runs)
    cfg.method = "cyclegan"
    # the cyclegan preset's values, with a tiny pool so that exchanges happen within 4 steps
    cfg.update("loss", {**dict(lambda_cycle=10.0, lambda_identity=0.5, gan_mode="lsgan", pool_size=2), **loss})
    cfg.update("optim", dict(lr=2e-4))
    return cfg


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(sesim.methods.RECIPES, ("cyclegan", "single-modal"), CycleGANMethod)


def tiny_method(tmp_path, seed=0, **loss):
    torch.manual_seed(seed)
    return CycleGANMethod.from_config(cyclegan_config(tmp_path / "data", tmp_path / "runs", **loss))


def tiny_batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1}


class Shift(nn.Module):
    def __init__(self, by):
        super().__init__()
        self.by = by

    def forward(self, x):
        return x + self.by


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(module, before):
    return sum((module.state_dict()[k] - v).abs().sum().item() for k, v in before.items())


def test_preset_values():
    from sesim.config import TrainConfig

    cfg = TrainConfig()
    cfg.apply_preset("cyclegan")
    assert cfg.method == "cyclegan"
    assert (cfg.cycle.lambda_cycle, cfg.generator.lambda_identity, cfg.discriminator.pool_size) == (10.0, 0.5, 50)


def test_training_run_moves_both_generators_and_saves_both_directions(registered, tiny_dataset, tmp_path):
    cfg = cyclegan_config(tiny_dataset, tmp_path / "runs")
    run = train(cfg, progress=False, stop_at=0)  # creates the folder and the untrained state
    trainer = Trainer(cfg, run, progress=False)
    method = trainer.method
    assert isinstance(method, CycleGANMethod) and method.frozen_prefixes == ()
    before = {name: snapshot(getattr(method, name)) for name in ("G_A", "G_B", "D_A", "D_B")}
    trainer.run()
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logs] == [1, 2, 3, 4]
    keys = {"G_gan_A", "G_gan_B", "G_cycle_A", "G_cycle_B", "G_idt_A", "G_idt_B", "G", "D_A", "D_B"}
    for entry in logs:
        assert keys <= entry.keys()
        assert all(np.isfinite(entry[k]) for k in keys)
        assert entry["G_cycle_A"] > 0 and entry["G_idt_B"] > 0
        parts = sum(entry[k] for k in keys - {"G", "D_A", "D_B"})
        assert entry["G"] == pytest.approx(parts, rel=1e-5)
    for name, state in before.items():
        assert changed(getattr(method, name), state) > 0, name
    # both directions saved, each the right network
    assert (run / "generator.safetensors").is_file() and (run / "generator_BtoA.safetensors").is_file()
    assert generator_file("BtoA") == "generator_BtoA.safetensors"
    for direction, g in (("AtoB", method.G_A), ("BtoA", method.G_B)):
        weights = load_generator_weights(run / generator_file(direction))
        assert all(torch.equal(weights[k], v) for k, v in g.state_dict().items()), direction
    # translate BtoA with the saved generator: same size out, and it is G_B's translation
    src = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (29, 37, 3), dtype=np.uint8)).save(src)
    written = translate_paths(run, src, tmp_path / "out", direction="BtoA", device="cpu", progress=False)
    assert written == [tmp_path / "out" / "x.png"] and Image.open(written[0]).size == (37, 29)
    ab = translate_paths(run, src, tmp_path / "out_ab", direction="AtoB", device="cpu", progress=False)
    assert not np.array_equal(np.asarray(Image.open(ab[0])), np.asarray(Image.open(written[0])))


def test_identity_generators_have_zero_cycle_and_identity_loss(tmp_path):
    method = tiny_method(tmp_path)
    method.G_A, method.G_B = nn.Identity(), nn.Identity()
    batch = tiny_batch()
    out = method(batch["A"], batch["B"])
    assert torch.equal(out["rec_a"], batch["A"]) and torch.equal(out["fake_b"], batch["A"])
    losses = method.generator_losses(batch["A"], batch["B"], out)
    for k in ("G_cycle_A", "G_cycle_B", "G_idt_A", "G_idt_B"):
        assert losses[k].item() == 0.0, k
    assert losses["G_gan_A"].item() > 0  # the adversarial terms are not trivially zero
    # and the terms are weighted as in CycleGAN: cycle x10, identity x(10 * 0.5)
    method = tiny_method(tmp_path)
    method.G_A, method.G_B = nn.Identity(), Shift(0.1)
    losses = method.generator_losses(batch["A"], batch["B"], method(batch["A"], batch["B"]))
    assert losses["G_cycle_A"].item() == pytest.approx(10 * 0.1, rel=1e-4)
    assert losses["G_idt_B"].item() == pytest.approx(5 * 0.1, rel=1e-4)
    assert losses["G_idt_A"].item() == 0.0


@pytest.mark.parametrize("lambda_identity,calls", [(0.0, 4), (0.5, 6)])
def test_identity_passes_are_skipped_when_the_weight_is_zero(tmp_path, lambda_identity, calls):
    method = tiny_method(tmp_path, lambda_identity=lambda_identity)
    count = []
    for g in (method.G_A, method.G_B):
        g.register_forward_hook(lambda *_: count.append(1))
    logs = method.train_step(tiny_batch())
    assert len(count) == calls
    assert ("G_idt_A" in logs) == ("G_idt_B" in logs) == (lambda_identity > 0)


def test_discriminators_get_no_gradient_from_the_generator_step(tmp_path):
    method = tiny_method(tmp_path)
    d_params = list(method.D_A.parameters()) + list(method.D_B.parameters())
    seen = []
    real_g_step = method.optimizers["G"].step

    def g_step(*args, **kwargs):  # runs right after the G backward, before any D update
        seen.append(([p.grad for p in d_params], [p.detach().clone() for p in d_params],
                     [p.grad is not None for p in method.G_A.parameters()]))
        return real_g_step(*args, **kwargs)

    method.optimizers["G"].step = g_step
    d_before = [p.detach().clone() for p in d_params]
    method.train_step(tiny_batch(1))
    grads, weights, g_has_grad = seen[0]
    assert all(g is None for g in grads)  # G backward left D untouched
    assert all(torch.equal(a, b) for a, b in zip(weights, d_before))
    assert all(g_has_grad)
    assert all(p.requires_grad and p.grad is not None for p in d_params)  # unfrozen and trained after
    # second step: the G backward does not add to the gradients left by the previous D step
    left = [p.grad.clone() for p in d_params]
    method.train_step(tiny_batch(2))
    assert all(torch.equal(g, l) for g, l in zip(seen[1][0], left))


def test_pools_fill_and_round_trip_through_extra_state(tmp_path):
    method = tiny_method(tmp_path)
    method.train_step(tiny_batch())
    assert len(method.pool_A) == len(method.pool_B) == 2
    state = method.extra_state()
    other = tiny_method(tmp_path, seed=5)
    other.load_extra_state(state)
    for name in ("pool_A", "pool_B"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(other, name).images, getattr(method, name).images))


def test_nan_stops_before_any_update(tmp_path, monkeypatch):
    method = tiny_method(tmp_path)
    before = snapshot(method)
    monkeypatch.setattr(method.gan, "generator_loss", lambda z: torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLossError, match="'G'"):
        method.train_step(tiny_batch())
    assert changed(method, before) == 0


def test_resume_restores_identical_state(registered, tiny_dataset, tmp_path):
    straight = train(cyclegan_config(tiny_dataset, tmp_path / "a"), progress=False)
    interrupted = train(cyclegan_config(tiny_dataset, tmp_path / "b"), progress=False, stop_at=2)
    assert load_state(interrupted / STATE_FILE)["step"] == 2
    resume(interrupted, progress=False)
    a, b = assert_identical_checkpoints(straight, interrupted, ("G", "D"))
    assert a["method"].keys() == b["method"].keys()
    assert {k.split(".")[0] for k in a["method"]} == {"G_A", "G_B", "D_A", "D_B"}
    for pool in ("pool_A", "pool_B"):
        pa, pb = a["extra"][pool]["images"], b["extra"][pool]["images"]
        assert len(pa) == len(pb) == 2 and all(torch.equal(x, y) for x, y in zip(pa, pb))
    la = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (interrupted / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lb] == [1, 2, 3, 4]
    assert [(x["G"], x["D_A"], x["D_B"]) for x in la] == [(x["G"], x["D_A"], x["D_B"]) for x in lb]
