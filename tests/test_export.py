"""sesim export: the generator runs without sesim, at sizes other than the training size."""

import numpy as np
import pytest
import torch

from sesim.cli import main
from sesim.export import export_run
from sesim.translate import TranslateError, load_run_generator, translate_tensor
from sesim.train import train
from test_train import tiny_config


@pytest.fixture
def run(tiny_dataset, tmp_path):
    return train(tiny_config(tiny_dataset, tmp_path / "runs"), progress=False)


def reference(run, x):
    generator, _ = load_run_generator(run)
    return translate_tensor(generator, x).numpy()


def test_onnx_export_matches_pytorch_at_other_sizes(run):
    import onnxruntime as ort
    path = export_run(run, fmt="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for shape in [(1, 3, 48, 64), (2, 3, 37, 29)]:  # training size was 32 x 32
        x = torch.rand(*shape) * 2 - 1
        out = session.run(None, {name: x.numpy()})[0]
        assert out.shape == shape
        np.testing.assert_allclose(out, reference(run, x), atol=1e-4)


def test_torchscript_export_matches(run):
    model = torch.jit.load(str(export_run(run, fmt="torchscript")))
    for shape in [(1, 3, 40, 52), (1, 3, 33, 27)]:
        x = torch.rand(*shape) * 2 - 1
        with torch.no_grad():
            out = model(x).numpy()
        assert out.shape == shape
        np.testing.assert_allclose(out, reference(run, x), atol=1e-5)


def test_export_refuses_to_overwrite(run, tmp_path, capsys):
    target = tmp_path / "g.ts"
    target.write_text("mine")
    with pytest.raises(TranslateError, match="already exists"):
        export_run(run, target, fmt="torchscript")
    assert target.read_text() == "mine"
    assert main(["export", "--run", str(run), "--format", "torchscript", "--output", str(target), "--overwrite"]) == 0
    assert "wrote" in capsys.readouterr().out and target.stat().st_size > 1000
