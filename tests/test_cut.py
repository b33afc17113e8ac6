"""CUT / FastCUT: the PatchNCE loss, the patch sampler with MLP heads, and training through the loop."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from test_train import assert_identical_checkpoints, tiny_config

import sesim.methods
from sesim.checkpoint import STATE_FILE, load_state
from sesim.config import TrainConfig
from sesim.losses.patchnce import PatchSampleMLP, patch_nce_loss
from sesim.methods.cut import CUTMethod
from sesim.train import Trainer, resume, train

LAYERS = ("input", "down1", "down2", "block1")  # all exist with n_blocks=1


def cut_config(data, runs, preset, **loss):
    cfg = tiny_config(data, runs)
    cfg.apply_preset(preset)
    cfg.update("loss", {"nce_num_patches": 16, "nce_layers": LAYERS, "nce_mlp_channels": 32, **loss})
    return cfg


def small_config(**loss):
    cfg = TrainConfig(method="cut")
    cfg.update("data", dict(size=32))
    cfg.update("model", dict(ngf=8, ndf=8, n_blocks=1))
    cfg.update("loss", {"nce_num_patches": 16, "nce_layers": LAYERS, "nce_mlp_channels": 32, **loss})
    return cfg


# ------------------------------------------------------------------------------- the loss
def direct_patch_nce(q, k, batch_size, temperature, all_negatives):
    """Per-patch loop with math.exp/log: -log(e^{q_i.k_i/T} / sum_{j in negatives + i} e^{q_i.k_j/T})."""
    rows = q.shape[0]
    per_image = rows // batch_size
    out = []
    for i in range(rows):
        pos = float(q[i] @ k[i]) / temperature
        first = i // per_image * per_image
        candidates = range(rows) if all_negatives else range(first, first + per_image)
        negs = [float(q[i] @ k[j]) / temperature for j in candidates if j != i]
        out.append(-pos + math.log(sum(math.exp(x) for x in [pos, *negs])))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("all_negatives", [False, True])
def test_patch_nce_loss_matches_a_direct_per_patch_computation(all_negatives):
    torch.manual_seed(0)
    n, p, d = 3, 5, 6
    q = F.normalize(torch.randn(n * p, d, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(n * p, d, dtype=torch.float64), dim=1)
    for temperature in (0.07, 0.5):
        got = patch_nce_loss(q, k, temperature=temperature, batch_size=n, negatives_from_minibatch=all_negatives)
        assert got.shape == (n * p,)
        want = direct_patch_nce(q, k, n, temperature, all_negatives)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # unnormalised features are used as given (the diagonal is removed exactly, not set to -10)
    q2, k2 = 3 * torch.randn(n * p, d, dtype=torch.float64), torch.randn(n * p, d, dtype=torch.float64)
    torch.testing.assert_close(patch_nce_loss(q2, k2, batch_size=n, negatives_from_minibatch=all_negatives),
                               direct_patch_nce(q2, k2, n, 0.07, all_negatives), rtol=1e-10, atol=1e-10)
    # the two modes differ once there is more than one image
    other = patch_nce_loss(q, k, batch_size=n, negatives_from_minibatch=not all_negatives)
    assert not torch.allclose(other, patch_nce_loss(q, k, batch_size=n, negatives_from_minibatch=all_negatives))


def test_patch_nce_loss_is_low_for_aligned_and_high_for_shuffled_keys():
    torch.manual_seed(1)
    p = 64
    q = F.normalize(torch.randn(2 * p, 64), dim=1)
    aligned = patch_nce_loss(q, q.clone(), batch_size=2)
    shuffled_keys = torch.cat([q[:p][torch.randperm(p)], q[p:][torch.randperm(p)]])
    shuffled = patch_nce_loss(q, shuffled_keys, batch_size=2)
    assert aligned.mean() < 0.01
    assert shuffled.mean() > math.log(p) - 1  # at least chance level, roughly
    with pytest.raises(ValueError, match="batch_size"):
        patch_nce_loss(q[:5], q[:5], batch_size=2)


def test_patch_nce_loss_never_sends_gradient_to_the_keys():
    torch.manual_seed(2)
    q = F.normalize(torch.randn(8, 4), dim=1).requires_grad_()
    k = F.normalize(torch.randn(8, 4), dim=1).requires_grad_()
    patch_nce_loss(q, k, batch_size=2).sum().backward()
    assert k.grad is None
    assert q.grad is not None and q.grad.abs().sum() > 0


# ----------------------------------------------------------------------- the sampler + MLP
def test_patch_sample_mlp_shapes_normalisation_and_shared_ids():
    torch.manual_seed(3)
    mlp = PatchSampleMLP({"a": 3, "b": 5}, nc=16)
    assert isinstance(mlp.mlps, torch.nn.ModuleDict) and list(mlp.mlps) == ["a", "b"]
    lin = mlp.mlps["a"][0]
    assert lin.in_features == 3 and lin.out_features == 16 and mlp.mlps["a"][2].in_features == 16
    assert torch.all(lin.bias == 0) and 0.005 < lin.weight.std() < 0.05  # N(0, 0.02)
    feats = {"a": torch.randn(2, 3, 8, 8), "b": torch.randn(2, 5, 4, 4)}
    emb, ids = mlp(feats, 6)
    for name in feats:
        assert emb[name].shape == (2 * 6, 16)
        torch.testing.assert_close(emb[name].norm(dim=1), torch.ones(12))
        assert ids[name].dtype == torch.long and ids[name].shape == (6,) and len(set(ids[name].tolist())) == 6
    # rows are image-major, and both images use the same positions
    for n in range(2):
        picked = feats["b"][n].flatten(1)[:, ids["b"]].T  # (6, 5)
        torch.testing.assert_close(emb["b"][n * 6:(n + 1) * 6], F.normalize(mlp.mlps["b"](picked), dim=1))
    # the key side is embedded at the ids given; num_patches is then irrelevant
    other = {name: torch.randn_like(f) for name, f in feats.items()}
    emb2, ids2 = mlp(other, 999, ids)
    assert all(torch.equal(ids2[name], ids[name]) for name in ids)
    picked = other["a"][1].flatten(1)[:, ids["a"]].T
    torch.testing.assert_close(emb2["a"][6:], F.normalize(mlp.mlps["a"](picked), dim=1))
    # positions come from torch's global RNG
    torch.manual_seed(7)
    first = mlp(feats, 6)[1]["a"]
    torch.manual_seed(7)
    assert torch.equal(mlp(feats, 6)[1]["a"], first)
    # all positions
    for num in (0, -1, 64, 1000):
        emb_all, ids_all = mlp({"a": feats["a"]}, num)
        assert torch.equal(ids_all["a"], torch.arange(64)) and emb_all["a"].shape == (128, 16)
    with pytest.raises(KeyError, match="no head for layer 'c'"):
        mlp({"c": torch.randn(1, 3, 4, 4)}, 4)


def test_nce_gives_no_gradient_to_the_source_and_flip_is_undone():
    torch.manual_seed(4)
    method = CUTMethod.from_config(small_config())
    src = torch.randn(2, 3, 32, 32, requires_grad=True)
    tgt = torch.randn(2, 3, 32, 32, requires_grad=True)
    method.nce_loss(src, tgt).backward()
    assert src.grad is None  # keys are detached
    assert tgt.grad.abs().sum() > 0
    assert all(p.grad is not None for p in method.F.parameters())
    # with the raw input as the only layer, un-flipping the query features of a flipped target is exact
    method = CUTMethod.from_config(small_config(nce_layers=("input",)))
    src, tgt = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    torch.manual_seed(5)
    plain = method.nce_loss(src, tgt)
    torch.manual_seed(5)
    unflipped = method.nce_loss(src, tgt.flip(3), flipped=True)
    torch.testing.assert_close(plain, unflipped)


def test_invalid_nce_layers_give_a_clear_error():
    message = r"unknown generator layer\(s\) \['block5'\].*valid names are input, stem.*block1"
    with pytest.raises(ValueError, match=message):
        CUTMethod.from_config(small_config(nce_layers=("input", "block5")))
    with pytest.raises(ValueError, match="nce_layers is empty"):
        CUTMethod.from_config(small_config(nce_layers=()))


def test_flip_equivariance_flips_the_generator_input_half_of_the_time():
    torch.manual_seed(6)
    method = CUTMethod.from_config(small_config(flip_equivariance=True, nce_idt=False, lambda_nce=10.0))
    inputs = []
    method.G.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach().clone()))
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    flips = []
    for _ in range(8):
        inputs.clear()
        logs = method.train_step({"A": a, "B": b})
        assert "G_nce_idt" not in logs and math.isfinite(logs["G"])
        (x,) = inputs  # one forward through G per step (encode() does not call forward)
        assert torch.equal(x, a) or torch.equal(x, a.flip(3))
        flips.append(torch.equal(x, a.flip(3)))
    assert any(flips) and not all(flips)
    assert all(p.requires_grad for p in method.D.parameters())  # D is unfrozen again after the G step


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("preset", ["cut", "fastcut"])
def test_cut_and_fastcut_train_with_finite_losses(tiny_dataset, tmp_path, monkeypatch, preset):
    monkeypatch.setitem(sesim.methods.RECIPES, ("cut", "single-modal"), CUTMethod)
    cfg = cut_config(tiny_dataset, tmp_path / "runs", preset)
    assert cfg.method == "cut" and cfg.discriminator.pool_size == 0
    assert cfg.nce.nce_idt == (preset == "cut") and cfg.nce.flip_equivariance == (preset == "fastcut")
    run = train(cfg, progress=False, stop_at=0)
    trainer = Trainer(cfg, run, progress=False)
    method = trainer.method
    assert set(method.optimizers) == {"G", "D", "F"}
    before = {k: v.clone() for k, v in method.state_dict().items()}
    trainer.run()
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logs] == [1, 2, 3, 4]
    for entry in logs:
        assert all(math.isfinite(v) for v in entry.values() if isinstance(v, float))
        assert {"D", "G_gan", "G_nce", "G"} <= set(entry)
        assert ("G_nce_idt" in entry) == (preset == "cut")
        assert entry["G_nce"] > 0
        nce = 0.5 * (entry["G_nce"] + entry["G_nce_idt"]) if preset == "cut" else entry["G_nce"]
        assert entry["G"] == pytest.approx(entry["G_gan"] + cfg.nce.lambda_nce * nce, rel=1e-5)
    after = method.state_dict()
    for prefix in ("G.", "F.", "D."):
        moved = sum((after[k] - v).abs().sum().item() for k, v in before.items() if k.startswith(prefix))
        assert moved > 0, prefix
    state = load_state(run / STATE_FILE)
    assert "F.mlps.block1.2.weight" in state["method"] and state["optimizers"]["F"]["state"]


def test_resume_restores_identical_state(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sesim.methods.RECIPES, ("cut", "single-modal"), CUTMethod)
    # identity NCE, random flips and an image pool: every source of randomness and state at once
    extra = dict(flip_equivariance=True, pool_size=2)
    straight = train(cut_config(tiny_dataset, tmp_path / "a", "cut", **extra), progress=False)
    interrupted = train(cut_config(tiny_dataset, tmp_path / "b", "cut", **extra), progress=False, stop_at=2)
    assert load_state(interrupted / STATE_FILE)["step"] == 2
    resume(interrupted, progress=False)
    a, b = assert_identical_checkpoints(straight, interrupted, ("G", "D", "F"))
    assert len(a["extra"]["pool"]["images"]) == 2
    assert all(torch.equal(x, y) for x, y in zip(a["extra"]["pool"]["images"], b["extra"]["pool"]["images"]))
    la = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (interrupted / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lb] == [1, 2, 3, 4]
    assert [(x["G"], x["G_nce_idt"], x["D"]) for x in la] == [(x["G"], x["G_nce_idt"], x["D"]) for x in lb]
