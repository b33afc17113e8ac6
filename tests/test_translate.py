"""sesim translate: any size in, same size out, names kept, nothing overwritten unasked."""

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.cli import main
from sesim.run import RunError
from sesim.translate import TranslateError, load_run_generator, pad_to_multiple, translate_paths, translate_tensor
from test_train import tiny_config
from sesim.train import train


@pytest.fixture
def run(tiny_dataset, tmp_path):
    return train(tiny_config(tiny_dataset, tmp_path / "runs"), progress=False)


def write(path, size, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)


def test_folder_translation_keeps_sizes_names_and_subfolders(run, tmp_path):
    src = tmp_path / "in"
    write(src / "a.png", (37, 29))
    write(src / "b.jpg", (64, 48))
    write(src / "c.jpg", (64, 48), mode="L")  # greyscale input into an RGB model
    write(src / "sub" / "d.png", (13, 50), mode="RGBA")
    (src / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    written = translate_paths(run, src, out, progress=False, device="cpu")
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["a.png", "b.png", "c.png", "sub/d.png"]
    assert Image.open(out / "a.png").size == (37, 29)
    assert Image.open(out / "sub" / "d.png").size == (13, 50)
    assert Image.open(out / "b.png").mode == "RGB"


def test_never_overwrites_without_asking(run, tmp_path):
    write(tmp_path / "x.png", (32, 32))
    out = tmp_path / "out"
    translate_paths(run, tmp_path / "x.png", out, progress=False)
    before = (out / "x.png").read_bytes()
    (out / "x.png").write_bytes(b"user data")
    with pytest.raises(TranslateError, match="already exist.*--overwrite"):
        translate_paths(run, tmp_path / "x.png", out, progress=False)
    assert (out / "x.png").read_bytes() == b"user data"
    translate_paths(run, tmp_path / "x.png", out, progress=False, overwrite=True)
    assert (out / "x.png").read_bytes() == before


def test_batched_equals_one_by_one(run):
    generator, _ = load_run_generator(run)
    x = torch.rand(3, 3, 40, 52) * 2 - 1
    batched = translate_tensor(generator, x)
    single = torch.cat([translate_tensor(generator, x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    assert batched.shape == x.shape and batched.abs().max() <= 1
    assert translate_tensor(generator, torch.rand(1, 3, 5, 6)).shape == (1, 3, 5, 6)  # smaller than the stride


def test_padding_is_cropped_back():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    padded, (h, w) = pad_to_multiple(x, 4)
    assert padded.shape[-2:] == (8, 8) and (h, w) == (5, 7)
    assert torch.equal(padded[..., :5, :7], x)
    identity = torch.nn.Identity()
    assert torch.equal(translate_tensor(identity, x), x)
    tiny = torch.rand(1, 3, 3, 2)
    assert torch.equal(translate_tensor(identity, tiny), tiny)


def test_translate_errors(run, tmp_path, capsys):
    with pytest.raises(TranslateError, match="does not exist"):
        translate_paths(run, tmp_path / "missing.png", tmp_path / "o", progress=False)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(TranslateError, match="image extension"):
        translate_paths(run, tmp_path / "notes.txt", tmp_path / "o", progress=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(TranslateError, match="broken.png"):
        translate_paths(run, tmp_path / "bad", tmp_path / "o", progress=False)
    with pytest.raises(RunError, match="not a sesim run"):  # one check and one error class for every command
        translate_paths(tmp_path, tmp_path / "bad", tmp_path / "o", progress=False)
    (tmp_path / "empty").mkdir()
    assert main(["translate", "--run", str(run), "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o")]) == 1
    assert "empty" in capsys.readouterr().err
    write(tmp_path / "dup" / "same.png", (32, 32))
    write(tmp_path / "dup" / "same.jpg", (32, 32))
    with pytest.raises(TranslateError, match="same output"):
        translate_paths(run, tmp_path / "dup", tmp_path / "o", progress=False)


def test_cli_translate(run, tmp_path, capsys):
    write(tmp_path / "in" / "p.png", (30, 30))
    assert main(["translate", "--run", str(run), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
                 "--device", "cpu", "--no-progress"]) == 0
    assert "wrote 1 image" in capsys.readouterr().out
    assert Image.open(tmp_path / "o" / "p.png").size == (30, 30)


def test_bf16_precision_is_close_to_fp32_and_really_reduced(run, tmp_path):
    generator, _ = load_run_generator(run)
    x = torch.rand(2, 3, 40, 52, generator=torch.Generator().manual_seed(3)) * 2 - 1
    full = translate_tensor(generator, x)
    half = translate_tensor(generator, x, precision="bf16")
    assert half.dtype == torch.float32 and half.shape == x.shape
    diff = (half - full).abs()
    assert 0 < diff.max() < 0.1 and diff.mean() < 0.01  # bfloat16 arithmetic was used, and stayed close
    write(tmp_path / "in" / "p.png", (30, 30))
    for precision in ("fp32", "bf16"):
        assert main(["translate", "--run", str(run), "--input", str(tmp_path / "in"), "--output",
                     str(tmp_path / precision), "--device", "cpu", "--no-progress", "--precision", precision]) == 0
    a, b = (np.asarray(Image.open(tmp_path / p / "p.png"), dtype=float) for p in ("fp32", "bf16"))
    assert np.abs(a - b).mean() < 2  # 8-bit levels
    with pytest.raises(SystemExit):
        main(["translate", "--run", str(run), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "x"),
              "--precision", "fp16"])


def test_one_sided_run_has_no_reverse_direction(run, tmp_path):
    write(tmp_path / "x.png", (32, 32))
    with pytest.raises(RunError, match="one-sided"):
        translate_paths(run, tmp_path / "x.png", tmp_path / "o", direction="BtoA", progress=False)
