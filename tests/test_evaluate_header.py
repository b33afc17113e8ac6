"""Every `sesim evaluate` output states the FID implementation, the KID scale, the counts and the extractor
with its weights file hash; structure metrics next to each other."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from sesim.cli import main
from sesim.evaluate import evaluate_folders, header_lines, markdown_summary
from sesim.metrics.features import Extractor
from sesim.metrics.frechet import kernel_inception_distance
from test_evaluate import TinyRandomFeatures


def _folder(path, n, seed, size=32):
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.clip(rng.integers(0, 200, 3) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f"img{i}.png")
    return path


def test_header_kid_scale_and_order_with_few_samples(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"not really weights")
    net = TinyRandomFeatures()
    ext = Extractor("inception", "stand-in Inception", net, weights_file=str(weights), implementation="legacy")
    real, fake = _folder(tmp_path / "real", 6, 1), _folder(tmp_path / "fake", 5, 2)
    rep = evaluate_folders(real, fake, metrics="fid,kid", extractor=ext, kid_subsets=4, kid_subset_size=5)
    assert list(rep["metrics"]) == ["kid", "fid"]  # < 2048 samples: KID first
    assert "fewer" not in rep["metrics"]["kid"] and "warning" in rep["metrics"]["fid"]
    fr, ff = ext.features(list(_load(real))), ext.features(list(_load(fake)))
    raw, _ = kernel_inception_distance(fr, ff, subsets=4, subset_size=5, seed=0)
    kid = rep["metrics"]["kid"]
    assert kid["value"] == pytest.approx(100 * raw) and kid["details"]["raw"] == pytest.approx(raw)
    h = rep["header"]
    assert h["kid_scale"] == 100 and h["counts"] == {"fake": 5, "real": 6}
    assert h["extractor"]["sha256"] == hashlib.sha256(b"not really weights").hexdigest()
    lines = header_lines(rep)
    assert lines[0].startswith("- FID implementation: legacy (pytorch-fid-compatible)")
    assert "- KID scale: x100" in lines[1] and lines[2] == "- samples: 5 translations, 6 real images"
    assert f"file {weights} (SHA-256 {h['extractor']['sha256']})" in lines[3]
    assert any("FID from 6 real / 5 fake images (< 2048)" in line for line in lines)
    md = markdown_summary(rep)
    assert md.index("| kid (x100) |") < md.index("| fid |") and "- KID scale: x100" in md


def _load(folder):
    from sesim.metrics.features import load_folder

    return load_folder(folder).values()


def test_structure_metrics_side_by_side_and_the_cli_header(tmp_path, capsys):
    from sesim.losses.spatial import SpatialCorrelativeLoss
    from sesim.metrics.dino_struct import dino_struct_metric
    from sesim.nets.dino_vit import DinoViT

    src = _folder(tmp_path / "src", 3, 3)
    dino = dino_struct_metric(DinoViT(None, dim=32, depth=2, heads=2, grid=4))
    loss = SpatialCorrelativeLoss(("relu2_1",), weights=None, sampling="grid", num_queries=16, patch_size=4)
    same = evaluate_folders(None, src, metrics="selfsim,dino_struct", source=src, selfsim_loss=loss, dino_metric=dino)
    assert same["metrics"]["dino_struct"]["value"] == 0.0 and same["metrics"]["selfsim"]["value"] == pytest.approx(0, abs=1e-6)
    assert set(same["header"]["structure"]) == {"selfsim", "dino_struct"}
    assert same["header"]["extractor"] is None
    assert "- FID implementation: not computed (no FID/KID metric)" in header_lines(same)
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    for p in src.iterdir():
        Image.open(p).transpose(Image.FLIP_LEFT_RIGHT).save(flipped / p.name)
    other = evaluate_folders(None, flipped, metrics="dino_struct", source=src, dino_metric=dino)
    assert other["metrics"]["dino_struct"]["value"] > 0

    real = _folder(tmp_path / "real", 4, 4)
    assert main(["evaluate", "--real", str(real), "--fake", str(src), "--extractor", "efficientnet-lite0",
                 "--metrics", "fid,kid", "--kid-subsets", "3", "--out", str(tmp_path / "out"),
                 "--protocol", "horse2zebra"]) == 0
    text = capsys.readouterr().out
    assert "protocol: **horse2zebra**" in text and "KID scale: x100" in text and "samples: 3 translations, 4 real" in text
    assert "SHA-256 579344248a93e230" in text  # the EfficientNet-Lite0 weights file
    assert "protocol horse2zebra translates 120 images; this evaluation has 3" in text
    assert "scores 256x256 images; the translations are 32x32" in text
    printed = [line.split()[0] for line in text.splitlines() if line.startswith(("kd_effnet", "fd_effnet"))]
    assert printed == ["kd_effnet", "fd_effnet"]
