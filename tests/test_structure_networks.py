"""DINO-Struct (DINO ViT built here), its offline-backbone counterpart, DRN-D-22, and the errors naming
every missing weights file."""

import numpy as np
import pytest
import torch

from sesim.metrics.dino_struct import backbone_struct_metric, cosine_self_similarity, dino_struct_metric
from sesim.nets.dino_vit import DINO_VITB8_FILE, DinoViT
from sesim.nets.drn import DRN_D22_FILE, DRNSegmenter
from sesim.nets.weightfiles import WeightsNotFoundError


def _small_vit(weights=None):
    return DinoViT(weights, dim=32, depth=2, heads=2, grid=4)


def test_dino_vit_has_dino_parameter_names_and_its_keys_are_the_middle_third_of_qkv(tmp_path):
    net = _small_vit()
    names = set(net.state_dict())
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.1.norm1.weight",
                "blocks.1.attn.qkv.weight", "blocks.1.attn.qkv.bias", "blocks.1.attn.proj.weight",
                "blocks.1.norm2.bias", "blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc2.bias", "norm.weight"):
        assert key in names
    assert not any(k.startswith("head") for k in names)
    x = torch.randn(1, 3, 40, 56)  # 5 x 7 patches: the 4 x 4 position grid is interpolated
    keys = net.last_keys(x)
    assert keys.shape == (1, 1 + 5 * 7, 32)
    # the reference's way: reshape qkv to (T, 3, heads, d), take index 1, concatenate the heads
    t = net.tokens(x)
    t = net.blocks[0](t)
    qkv = net.blocks[1].attn.qkv(net.blocks[1].norm1(t))[0]
    ref = qkv.reshape(36, 3, 2, 16).permute(1, 2, 0, 3)[1].transpose(0, 1).reshape(36, 32)
    torch.testing.assert_close(keys[0], ref)
    # a saved backbone state dict loads strictly and gives the same keys
    path = tmp_path / "dino_small.pth"
    torch.save(net.state_dict(), path)
    torch.testing.assert_close(_small_vit(path).last_keys(x), keys)
    with pytest.raises(ValueError, match="not a DINO ViT backbone state dict"):
        DinoViT(path, dim=64, depth=2, heads=2, grid=4)


def test_full_size_vit_b8_matches_dino_vitb8():
    net = DinoViT(None)
    assert sum(p.numel() for p in net.parameters()) == 85_807_872  # DINO ViT-B/8 backbone (no head)
    assert net.pos_embed.shape == (1, 785, 768) and net.patch_embed.proj.weight.shape == (768, 3, 8, 8)


def test_self_similarity_mse_is_zero_for_the_same_image_and_symmetric_cosines():
    feats = torch.randn(10, 6, dtype=torch.float64)
    s = cosine_self_similarity(feats)
    torch.testing.assert_close(torch.diagonal(s), torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(s, s.T)
    metric = dino_struct_metric(_small_vit())
    img = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert metric.name == "dino_struct" and metric.distance(img, img) == 0.0
    assert metric.distance(img, img.flip(-1)) > 0
    with pytest.raises(ValueError, match="sizes differ"):
        metric.distance(img, img[:, :40])


def test_offline_backbone_struct_prefers_a_restyled_copy_to_another_photo():
    skimage_data = pytest.importorskip("skimage.data")
    from lab.photo_task import appearance_transform

    def crop(photo):
        return torch.from_numpy(np.ascontiguousarray(photo[:128, :128, :3])).permute(2, 0, 1).contiguous()

    photo, other = crop(skimage_data.astronaut()), crop(skimage_data.chelsea())
    restyled = crop(appearance_transform(np.asarray(photo.permute(1, 2, 0))[None])[0])
    metric = backbone_struct_metric("efficientnet-lite0")
    assert metric.name == "struct_effnet" and "NOT comparable to dino_struct" in metric.description
    assert metric.weights_file and metric.weights_file.endswith("efficientnet-lite0-57934424.pth")
    assert metric.distance(photo, photo) == 0.0
    assert metric.distance(photo, restyled) < metric.distance(photo, other)


def test_drn_d22_layout_output_and_checkpoint_loading(tmp_path):
    seg = DRNSegmenter(None)
    names = set(seg.net.state_dict())
    assert {"base.0.0.weight", "base.0.1.running_var", "base.1.0.weight", "base.2.0.weight", "base.3.0.conv1.weight",
            "base.3.0.downsample.0.weight", "base.5.1.conv2.weight", "base.6.0.downsample.1.bias", "base.7.0.weight",
            "base.8.1.running_mean", "seg.weight", "seg.bias", "up.weight"} <= names
    base = sum(p.numel() for p in seg.net.base.parameters())
    assert base + 512 * 1000 + 1000 == pytest.approx(16.4e6, rel=0.01)  # DRN-D-22 with its ImageNet fc: 16.4 M
    assert seg.net.base[5][0].conv1.dilation == (2, 2) and seg.net.base[6][1].conv2.dilation == (4, 4)
    x = torch.rand(2, 3, 128, 256)
    out = seg(x)
    assert out.shape == (2, 19, 128, 256)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2, 128, 256))
    # a DataParallel checkpoint wrapped in {"state_dict": ...}, without the fixed upsampling kernel
    state = {f"module.{k}": v for k, v in seg.net.state_dict().items() if k != "up.weight"}
    path = tmp_path / "drn.pth"
    torch.save({"state_dict": state}, path)
    torch.testing.assert_close(DRNSegmenter(path)(x), out)
    torch.save({k: v for k, v in seg.net.state_dict().items() if not k.startswith("seg.")}, path)
    with pytest.raises(ValueError, match="not a DRN-D-22 segmentation checkpoint"):
        DRNSegmenter(path)


@pytest.fixture
def no_weight_files(tmp_path, monkeypatch):
    """No weights anywhere: an empty torch hub cache, no SESIM_* variables, no clean-fid download place."""
    from sesim.metrics import fid_impl

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in ("SESIM_INCEPTION_WEIGHTS", "SESIM_CLEAN_INCEPTION_WEIGHTS", "SESIM_DINO_WEIGHTS", "SESIM_DRN_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(fid_impl, "clean_fid_download_places", lambda: [tmp_path / "tmp" / fid_impl.CLEAN_INCEPTION_FILE])
    return tmp_path


@pytest.mark.parametrize("build, file_name, flag", [
    (lambda: __import__("sesim.metrics.fid_impl", fromlist=["x"]).fid_extractor("legacy"),
     "pt_inception-2015-12-05-6726825d.pth", "--inception-weights"),
    (lambda: __import__("sesim.metrics.fid_impl", fromlist=["x"]).fid_extractor("clean"),
     "inception-2015-12-05.pt", "--clean-inception-weights"),
    (lambda: dino_struct_metric("auto"), DINO_VITB8_FILE, "--dino-weights"),
    (lambda: DRNSegmenter("auto"), DRN_D22_FILE, "--drn-weights"),
])
def test_every_missing_weights_file_is_named_with_where_to_put_it(no_weight_files, build, file_name, flag):
    with pytest.raises(WeightsNotFoundError) as err:
        build()
    text = str(err.value)
    assert f"the file {file_name} is needed" in text and flag in text and "checkpoints" in text
    assert "never downloads" in text


def test_a_given_path_that_does_not_exist_is_named(no_weight_files):
    missing = no_weight_files / "nope" / "dino.pth"
    with pytest.raises(WeightsNotFoundError, match=f"weights file {missing} does not exist .expected {DINO_VITB8_FILE}"):
        dino_struct_metric(str(missing))
    with pytest.raises(WeightsNotFoundError, match="does not exist .expected drn_d_22_cityscapes.pth"):
        DRNSegmenter(no_weight_files / "drn.pth")
