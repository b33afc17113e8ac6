"""Tests for the GAN losses and the generated-image history pool (the GAN training utilities)."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from sesim.losses.gan import GAN_MODES, GANLoss
from sesim.methods.image_pool import ImagePool

REAL = torch.tensor([[2.0, -1.0], [0.0, 0.5]])
FAKE = torch.tensor([1.0, -2.0, 0.0, 3.0])


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _flat(t: torch.Tensor) -> list[float]:
    return t.flatten().tolist()


# ----------------------------------------------------------- hand-computed values
def test_lsgan_values() -> None:
    loss = GANLoss("lsgan")
    # real: (2-1)^2, (-1-1)^2, (0-1)^2, (0.5-1)^2 -> mean 6.25/4; fake: 1, 4, 0, 9 -> mean 3.5
    assert loss.discriminator_loss(REAL, FAKE).item() == pytest.approx(0.5 * (1.5625 + 3.5))
    # G: (1-1)^2, (-2-1)^2, (0-1)^2, (3-1)^2 -> 14/4
    assert loss.generator_loss(FAKE).item() == pytest.approx(3.5)


def test_hinge_values() -> None:
    loss = GANLoss("hinge")
    # real: relu(1-z) = 0, 2, 1, 0.5 -> 0.875; fake: relu(1+z) = 2, 0, 1, 4 -> 1.75
    assert loss.discriminator_loss(REAL, FAKE).item() == pytest.approx(0.5 * (0.875 + 1.75))
    assert loss.generator_loss(FAKE).item() == pytest.approx(-0.5)


@pytest.mark.parametrize("mode", ["vanilla", "nonsaturating"])
def test_bce_discriminator_values(mode: str) -> None:
    real_term = _mean([-math.log(_sigmoid(z)) for z in _flat(REAL)])
    fake_term = _mean([-math.log(1.0 - _sigmoid(z)) for z in _flat(FAKE)])
    d = GANLoss(mode).discriminator_loss(REAL, FAKE)
    assert d.item() == pytest.approx(0.5 * (real_term + fake_term), rel=1e-6)
    # equals BCE-with-logits against 1 / 0 targets
    bce = 0.5 * (
        F.binary_cross_entropy_with_logits(REAL, torch.ones_like(REAL))
        + F.binary_cross_entropy_with_logits(FAKE, torch.zeros_like(FAKE))
    )
    torch.testing.assert_close(d, bce)


def test_vanilla_generator_is_minimax() -> None:
    expected = _mean([math.log(1.0 - _sigmoid(z)) for z in _flat(FAKE)])
    g = GANLoss("vanilla").generator_loss(FAKE)
    assert g.item() == pytest.approx(expected, rel=1e-6)
    assert g.item() < 0  # log of a probability


def test_nonsaturating_generator_matches_cyclegan_vanilla() -> None:
    expected = _mean([-math.log(_sigmoid(z)) for z in _flat(FAKE)])
    g = GANLoss("nonsaturating").generator_loss(FAKE)
    assert g.item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(g, F.binary_cross_entropy_with_logits(FAKE, torch.ones_like(FAKE)))


def test_extreme_logits_are_finite() -> None:
    z = torch.tensor([-100.0, 100.0])
    for mode in GAN_MODES:
        loss = GANLoss(mode)
        assert torch.isfinite(loss.generator_loss(z)) and torch.isfinite(loss.discriminator_loss(z, z))


# ----------------------------------------------------------------- multi-scale
@pytest.mark.parametrize("mode", GAN_MODES)
def test_multiscale_sums_over_scales(mode: str) -> None:
    torch.manual_seed(0)
    loss = GANLoss(mode)
    reals = [torch.randn(2, 1, 6, 6), torch.randn(2, 1, 2, 2)]
    fakes = [torch.randn(2, 1, 6, 6), torch.randn(2, 1, 2, 2)]
    d_sum = loss.discriminator_loss(reals[0], fakes[0]) + loss.discriminator_loss(reals[1], fakes[1])
    torch.testing.assert_close(loss.discriminator_loss(reals, fakes), d_sum)
    g_sum = loss.generator_loss(fakes[0]) + loss.generator_loss(fakes[1])
    torch.testing.assert_close(loss.generator_loss(fakes), g_sum)
    torch.testing.assert_close(loss.generator_loss(tuple(fakes)), g_sum)
    # forward dispatches to the same two methods
    torch.testing.assert_close(loss(fakes), g_sum)
    torch.testing.assert_close(loss(fakes, reals), d_sum)
    with pytest.raises(ValueError, match="real"):
        loss.discriminator_loss(reals, fakes[:1])


def test_mean_over_elements_not_sum() -> None:
    loss = GANLoss("hinge")
    z = torch.full((4, 1, 5, 5), 2.0)
    assert loss.generator_loss(z).item() == pytest.approx(-2.0)


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="lsgan"):
        GANLoss("wgan")


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("mode", GAN_MODES)
def test_generator_loss_decreases_when_fake_logits_increase(mode: str) -> None:
    loss = GANLoss(mode)
    z = torch.linspace(-2.0, 0.5, 12).reshape(3, 1, 2, 2).requires_grad_()  # below the lsgan target 1
    g = loss.generator_loss(z)
    g.backward()
    assert (z.grad < 0).all()
    with torch.no_grad():
        assert loss.generator_loss(z + 0.1) < g


@pytest.mark.parametrize("mode", GAN_MODES)
def test_discriminator_loss_gradient_signs(mode: str) -> None:
    loss = GANLoss(mode)
    real = torch.linspace(-0.5, 0.5, 8).requires_grad_()
    fake = torch.linspace(0.1, 0.5, 8).requires_grad_()
    loss.discriminator_loss(real, fake).backward()
    assert (real.grad < 0).all()  # D wants higher logits on reals
    assert (fake.grad > 0).all()  # ... and lower logits on fakes


def test_vanilla_saturates_nonsaturating_does_not() -> None:
    grads = {}
    for mode in ("vanilla", "nonsaturating"):
        z = torch.tensor([-8.0], requires_grad=True)  # D confidently rejects the fake
        GANLoss(mode).generator_loss(z).backward()
        grads[mode] = z.grad.abs().item()
    assert grads["vanilla"] < 1e-3
    assert grads["nonsaturating"] > 0.99


# ================================================================= ImagePool
def _batch(ids: list[int]) -> torch.Tensor:
    """(N, 1, 2, 2) images whose pixels all equal their integer id."""
    return torch.tensor(ids, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def _ids(images: torch.Tensor) -> list[int]:
    return [int(v) for v in images[:, 0, 0, 0].tolist()]


def test_pool_size_zero_passes_through() -> None:
    pool = ImagePool(0)
    x = torch.randn(3, 3, 4, 4, requires_grad=True)
    assert pool.query(x) is x
    assert len(pool) == 0


def test_pool_fills_then_mixes() -> None:
    torch.manual_seed(0)
    pool = ImagePool(5)
    assert _ids(pool.query(_batch([0, 1, 2]))) == [0, 1, 2]
    assert len(pool) == 3
    assert _ids(pool.query(_batch([3, 4]))) == [3, 4]
    assert len(pool) == 5  # now full
    assert _ids(torch.stack(pool.images)) == [0, 1, 2, 3, 4]

    n_old = 0
    for new_id in range(100, 300):
        before = set(_ids(torch.stack(pool.images)))
        (got,) = _ids(pool.query(_batch([new_id])))
        after = set(_ids(torch.stack(pool.images)))
        if got == new_id:
            assert after == before  # new image returned, pool untouched
        else:
            n_old += 1
            assert got in before  # a stored image came back ...
            assert after == (before - {got}) | {new_id}  # ... and was replaced by the new one
        assert len(pool) == 5
    assert 60 <= n_old <= 140  # ~50% of 200


def test_pool_detaches_and_keeps_device_dtype() -> None:
    pool = ImagePool(2)
    x = torch.randn(4, 3, 4, 4, requires_grad=True)
    out = pool.query(x * 2)
    assert not out.requires_grad
    assert all(not img.requires_grad for img in pool.images)
    assert out.dtype == x.dtype and out.shape == x.shape
    # stored images are copies: changing the source later does not change the pool
    y = torch.zeros(1, 1, 2, 2)
    pool2 = ImagePool(3)
    pool2.query(y)
    y.fill_(7.0)
    assert pool2.images[0].abs().sum() == 0


def _run(pool: ImagePool, start: int, steps: int) -> list[list[int]]:
    return [_ids(pool.query(_batch([start + 3 * i, start + 3 * i + 1, start + 3 * i + 2]))) for i in range(steps)]


def test_pool_reproducible_with_torch_seed() -> None:
    torch.manual_seed(123)
    random.seed(1)
    a = _run(ImagePool(4), 0, 20)
    torch.manual_seed(123)
    random.seed(2)  # Python's RNG must not matter
    b = _run(ImagePool(4), 0, 20)
    torch.manual_seed(124)
    c = _run(ImagePool(4), 0, 20)
    assert a == b
    assert a != c


def test_pool_explicit_generator() -> None:
    a = _run(ImagePool(4, generator=torch.Generator().manual_seed(5)), 0, 10)
    torch.manual_seed(999)
    b = _run(ImagePool(4, generator=torch.Generator().manual_seed(5)), 0, 10)
    assert a == b


def test_pool_state_round_trip_resumes_exactly() -> None:
    torch.manual_seed(0)
    pool = ImagePool(6)
    _run(pool, 0, 5)  # full pool with a mixed history
    saved = pool.state_dict()
    rng = torch.get_rng_state()
    expected = _run(pool, 1000, 10)  # the original run continues

    resumed = ImagePool(6)
    resumed.load_state_dict(saved)
    torch.set_rng_state(rng)
    assert _run(resumed, 1000, 10) == expected
    assert _ids(torch.stack(resumed.images)) == _ids(torch.stack(pool.images))

    # the stacked-tensor form is accepted too
    stacked = ImagePool(6)
    stacked.load_state_dict({"pool_size": 6, "images": torch.stack(saved["images"])})
    torch.set_rng_state(rng)
    assert _run(stacked, 1000, 10) == expected

    # without restoring the RNG state the continuation differs (so the check above is meaningful)
    other = ImagePool(6)
    other.load_state_dict(saved)
    torch.manual_seed(42)
    assert _run(other, 1000, 10) != expected


def test_pool_state_dict_is_a_copy() -> None:
    pool = ImagePool(2)
    pool.query(_batch([1, 2]))
    state = pool.state_dict()
    state["images"][0].fill_(9.0)
    assert _ids(torch.stack(pool.images)) == [1, 2]
    assert state["pool_size"] == 2 and len(state["images"]) == 2


def test_pool_load_rejects_mismatch() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(3).load_state_dict({"pool_size": 4, "images": []})
    with pytest.raises(ValueError, match="more than"):
        ImagePool(1).load_state_dict({"pool_size": 1, "images": [torch.zeros(1, 2, 2)] * 2})
