"""sesim's FID Inception and LPIPS against the reference packages themselves (pytorch-fid, lpips).

The TF-Inception weights cannot be downloaded here, so both tools load one randomly initialised
state dict in pytorch-fid's layout, from the place each looks for the real file (sesim:
``--inception-weights``; pytorch-fid: the torch hub cache). With the same weights, the same PNG files
must give the same 2048-d features (architecture, FID-specific pooling, resizing, scaling and image
reading all agree), and the same features the same Frechet distance. With the real weights file the
two tools therefore compute the same FID.
"""

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytorch_fid")
from pytorch_fid import fid_score  # noqa: E402
from pytorch_fid import inception as ref  # noqa: E402

from sesim.metrics.features import get_extractor, load_folder  # noqa: E402
from sesim.metrics.frechet import frechet_distance  # noqa: E402
from sesim.nets.inception import FID_INCEPTION_FILE  # noqa: E402


def random_reference_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """pytorch-fid's FID Inception (built as its ``fid_inception_v3`` does, minus the download),
    with random convolutions and random batch-norm statistics."""
    torch.manual_seed(seed)
    net = ref._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = ref.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = ref.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = ref.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = ref.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = ref.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = ref.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = ref.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = ref.FIDInceptionE_1(1280)
    net.Mixed_7c = ref.FIDInceptionE_2(2048)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return net.state_dict()


def write_images(folder, n, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    h, w = 61, 87  # pytorch-fid batches need one size; both tools resize it to 299 x 299
    for i in range(n):
        base = rng.integers(0, 256, 3)
        img = np.clip(base + rng.normal(0, 50, (h, w, 3)).cumsum(1) / 4, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return sorted(folder.glob("*.png"))


def test_same_weights_give_the_same_features_and_frechet_distance(tmp_path, monkeypatch):
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    weights = hub / FID_INCEPTION_FILE  # the name pytorch-fid downloads to, and sesim looks for
    torch.save(random_reference_weights(), weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    files_a, files_b = write_images(tmp_path / "a", 6, 1), write_images(tmp_path / "b", 6, 2)
    model = ref.InceptionV3([ref.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])  # loads the file from the hub cache
    theirs_a = fid_score.get_activations([str(f) for f in files_a], model, batch_size=3, device="cpu", num_workers=0)
    theirs_b = fid_score.get_activations([str(f) for f in files_b], model, batch_size=3, device="cpu", num_workers=0)

    extractor = get_extractor("inception", inception_weights=weights)
    ours_a = extractor.features(list(load_folder(tmp_path / "a").values()))
    ours_b = extractor.features(list(load_folder(tmp_path / "b").values()))
    assert ours_a.shape == theirs_a.shape == (6, 2048)
    scale = np.abs(theirs_a).max()
    np.testing.assert_allclose(ours_a, theirs_a, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(ours_b, theirs_b, rtol=0, atol=1e-4 * scale)
    assert np.abs(ours_a - ours_b).max() > 100 * 1e-4 * scale  # different images really differ

    # the Frechet distance of the same features (a well-conditioned 4-d slice: 6 samples cannot
    # give a full-rank 2048-d covariance, where both tools' matrix square roots are unreliable)
    cols = np.argsort(-np.concatenate([ours_a, ours_b]).var(0))[:4]  # live (non-zero) feature channels
    fa, fb = ours_a[:, cols].astype(np.float64), ours_b[:, cols].astype(np.float64)
    expected = fid_score.calculate_frechet_distance(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0),
                                                    np.cov(fb, rowvar=False))
    assert frechet_distance(fa, fb) == pytest.approx(expected, rel=1e-6)


def test_lpips_agrees_with_the_lpips_package_given_the_same_backbone(tmp_path):
    """LPIPS v0.1 (AlexNet): sesim's network and the ``lpips`` package, with the package's own linear
    layers and one random torchvision-format AlexNet file, give the same distances."""
    lpips = pytest.importorskip("lpips")
    import torchvision

    from sesim.nets.lpips import build_lpips

    torch.manual_seed(3)
    alex = torchvision.models.alexnet(weights=None)
    backbone = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alex.state_dict(), backbone)
    theirs = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    for part in (theirs.net.slice1, theirs.net.slice2, theirs.net.slice3, theirs.net.slice4, theirs.net.slice5):
        for index, module in part.named_children():
            module.load_state_dict(alex.features[int(index)].state_dict())
    ours = build_lpips("alex", backbone_weights=backbone, linear_weights="auto")  # finds lpips' own file

    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 64, 72, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(3, 3, 64, 72, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        expected = theirs(x, y).flatten()
        got = ours(x, y)
    assert (expected > 1e-3).all()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
