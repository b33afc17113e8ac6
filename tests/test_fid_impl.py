"""The two FID implementations: the clean-fid code path offline, and the legacy/clean resize relation."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.metrics import fid_impl
from sesim.metrics.fid_impl import clean_resize, fid_extractor, legacy_resize


def _tensor(hwc):
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None].contiguous()


def _flat_and_checkerboard(side):
    """A flat grey image and the same image plus a 1-pixel checkerboard (+-64): they differ only at the
    highest frequency, above the Nyquist frequency of a 299 px grid when ``side`` > 299."""
    flat = np.full((side, side, 3), 128, np.uint8)
    yy, xx = np.mgrid[:side, :side]
    board = (128 + 64 * (((yy + xx) % 2) * 2 - 1)).astype(np.uint8)[..., None].repeat(3, axis=2)
    return _tensor(flat), _tensor(board)


def test_downsampling_legacy_resize_aliases_what_the_clean_resize_filters_out():
    """Parmar et al. (clean-fid, CVPR 2022): resizing without antialiasing (PyTorch/TF bilinear, pytorch-fid)
    aliases high frequencies into the 299 px image; PIL's antialiased bicubic filter (clean-fid) removes them.
    On the pair (flat grey, flat grey + 1-px checkerboard) at 512 px the clean resizes are practically the same
    image and the legacy resizes differ by ~16 grey levels on average (a moire pattern)."""
    flat, board = _flat_and_checkerboard(512)
    legacy_gap = (legacy_resize(flat) - legacy_resize(board)).abs().mean().item()
    clean_gap = (clean_resize(flat) - clean_resize(board)).abs().mean().item()
    assert clean_gap < 0.1
    assert 10 < legacy_gap < 25
    assert legacy_resize(board).std().item() > 15 > 0.1 > clean_resize(board).std().item()


def test_upsampling_a_smooth_image_the_two_resizes_agree():
    """256 -> 299 (the usual case for 256 px translations): both interpolate; on smooth content they agree to a
    fraction of a grey level, so the implementations differ mostly through the network and its input scaling."""
    small = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    img = (torch.nn.functional.interpolate(small, size=(256, 256), mode="bicubic", align_corners=False)
           .clamp(0, 1) * 255).round().to(torch.uint8)
    gap = (legacy_resize(img) - clean_resize(img)).abs()
    assert gap.mean().item() < 0.2 and gap.max().item() < 3


def test_clean_resize_is_clean_fids_documented_float_bicubic_without_quantisation():
    """clean-fid's 'clean' mode: each channel resized as a 32-bit float PIL image with bicubic filtering,
    clipped to [0, 255], not rounded to uint8 (computed here independently of clean-fid)."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    expected = np.stack([np.asarray(Image.fromarray(img[..., c].astype(np.float32), mode="F")
                                    .resize((299, 299), Image.BICUBIC)).clip(0, 255) for c in range(3)])
    out = clean_resize(_tensor(img))[0].numpy()
    assert out.dtype == np.float32 and out.shape == (3, 299, 299)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert np.abs(out - np.round(out)).max() > 0.01  # not quantised


class _TinyLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.fc = torch.nn.Linear(48, 2048)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


class _TinyInceptionFile(torch.nn.Module):
    """Stands in for clean-fid's TorchScript Inception: the attribute clean-fid calls (``layers``)."""

    def __init__(self):
        super().__init__()
        self.layers = _TinyLayers()

    def forward(self, x):
        return self.layers(x)


def test_clean_implementation_runs_clean_fids_own_code_offline_with_a_local_file(tmp_path):
    path = tmp_path / fid_impl.CLEAN_INCEPTION_FILE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(_TinyInceptionFile())
    scripted.save(str(path))
    ext = fid_extractor("clean", clean_inception_weights=path)
    assert ext.tag == "inception" and ext.implementation == "clean" and ext.weights_file == str(path)
    assert "clean-fid 0.1" in ext.description and "PIL bicubic" in ext.description
    images = torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    feats = ext.features(list(images))
    with torch.no_grad():
        expected = scripted.layers((clean_resize(images) - 128) / 128)
    np.testing.assert_allclose(feats, expected.double().numpy(), rtol=1e-5, atol=1e-5)

    other = tmp_path / "renamed.pt"
    path.rename(other)
    with pytest.raises(ValueError, match="rename or link it to .*inception-2015-12-05.pt"):
        fid_extractor("clean", clean_inception_weights=other)


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="choose from legacy, clean"):
        fid_extractor("tf")
