"""--mode exemplar end to end: training and exact resume (scenes, edges), translate with exemplars
(style follows the exemplar, layout follows the input), bad inputs, export, viz."""

import numpy as np
import pytest
import torch
from PIL import Image

from sesim.checkpoint import STATE_FILE
from sesim.cli import main
from sesim.config import TrainConfig
from sesim.data.demo_scenes import load_layouts, load_rgb_folder
from lab.exemplar_scenes import apply_style, make_edge_photo_dataset, make_exemplar_scenes
from sesim.methods import build_method
from sesim.train import resume, train
from sesim.translate import TranslateError, load_run_generator, translate_paths

from test_train import assert_identical_checkpoints


def exemplar_config(data, runs, name="r", steps=4, **exemplar):
    cfg = TrainConfig()
    cfg.apply_preset("exemplar")
    cfg.update("data", dict(data=str(data), size=32, load_size=32, preprocess="resize", workers=0))
    cfg.update("model", dict(ngf=8, ndf=8, n_scales_d=1))
    cfg.update("exemplar", dict(corr_channels=16, scm_dim=16, spade_hidden=8, n_up=2, **exemplar))
    cfg.update("run", dict(steps=steps, batch_size=2, runs=str(runs), name=name, checkpoint_every=2, sample_every=2,
                           log_every=1, num_samples=2, device="cpu"))
    return cfg


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("exemplar") / "scenes"
    make_exemplar_scenes(root, size=32, n_train=24, n_test=4, seed=0)
    return root


def test_second_appearance_has_the_exemplar_colours_on_the_input_layout(scenes):
    ex, second = load_rgb_folder(scenes / "exemplars"), load_rgb_folder(scenes / "second")
    lay_e, lay_s = load_layouts(scenes / "layouts" / "exemplars"), load_layouts(scenes / "layouts" / "testA")
    testb = load_rgb_folder(scenes / "testB")
    near, far = [], []
    for i in range(len(ex)):
        for c in np.unique(lay_s[i]):
            if (lay_e[i] == c).any():
                mean_e = ex[i][lay_e[i] == c].mean(0)
                near.append(np.abs(mean_e - second[i][lay_s[i] == c].mean(0)).mean())
                far.append(np.abs(mean_e - testb[i][lay_s[i] == c].mean(0)).mean())
    assert np.mean(near) < 0.3 * np.mean(far)  # the exemplar's appearance, not the true photo's
    assert not np.array_equal(load_layouts(scenes / "layouts" / "testA"), lay_e)


@pytest.mark.parametrize("preset", ["exemplar", "exemplar,exemplar-spade"])
def test_trains_and_resumes_exactly(scenes, tmp_path, preset):
    def cfg(name):
        c = exemplar_config(scenes, tmp_path / "runs", name=name)
        for p in preset.split(",")[1:]:
            c.apply_preset(p)
        return c

    full = train(cfg("full"), progress=False)
    part = train(cfg("part"), progress=False, stop_at=2)
    resume(part, progress=False)
    a, _ = assert_identical_checkpoints(full, part, ["G", "D"])
    logs = [line for line in (full / "log.jsonl").read_text().splitlines()]
    assert len(logs) == 4 and '"G_cxt"' in logs[-1]
    assert ('"G_mcl"' in logs[-1]) == (preset == "exemplar")
    assert not any(k.startswith("backbone.") for k in a["method"])  # the frozen backbone is not saved
    saved = TrainConfig.load(full / "config.json")
    assert saved.mode == "exemplar" and saved.exemplar.cxt_layers == ("stage2", "stage3", "stage4")
    # the resolved layers reach config.json through the training loop, the method's section is left as given
    method = build_method(cfg("unbuilt"))
    assert method.conf.exemplar.cxt_layers is None
    assert method.resolved_options()["exemplar"]["cxt_layers"] == ("stage2", "stage3", "stage4")
    assert saved.resolved["backbone"]["backbone"] == "efficientnet-lite0"
    assert (full / "samples" / "step_0000004.png").is_file()


def test_edges_to_photos_train(tmp_path):
    data = tmp_path / "edges"
    make_edge_photo_dataset(data, size=32, n_train=8, n_test=2)
    edges = np.asarray(Image.open(data / "trainA" / "000000.png"))
    assert set(np.unique(edges)) <= {0, 255} and edges.mean() > 0
    run = train(exemplar_config(data, tmp_path / "runs", steps=2), progress=False)
    assert (run / STATE_FILE).is_file()


@pytest.fixture(scope="module")
def trained(scenes, tmp_path_factory):
    """A small MCL-Net trained long enough for the exemplar's colours to reach the output (~20 s)."""
    cfg = exemplar_config(scenes, tmp_path_factory.mktemp("trained"), steps=300)
    cfg.update("exemplar", dict(corr_channels=32, scm_dim=64, spade_hidden=16))
    cfg.update("model", dict(ngf=16, ndf=16))
    cfg.update("optim", dict(lr=4e-4))
    cfg.update("run", dict(batch_size=4, checkpoint_every=300, sample_every=300, num_samples=0))
    return train(cfg, progress=False)


def _f(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _u(t):
    return ((t + 1) * 127.5).permute(0, 2, 3, 1).numpy()


def test_style_follows_the_exemplar_and_layout_follows_the_input(scenes, trained):
    g, _ = load_run_generator(trained)
    cond, lay = load_rgb_folder(scenes / "testA"), load_layouts(scenes / "layouts" / "testA")
    ex = load_rgb_folder(scenes / "exemplars")[0]
    warm, cool = apply_style(ex, np.array([0.6, 1.2, 1.0])), apply_style(ex, np.array([-0.6, 1.2, 1.0]))
    with torch.no_grad():
        out_w, out_c = _u(g(_f(cond), _f(warm[None]))), _u(g(_f(cond), _f(cool[None])))
    # style: per region of the input, the output's mean colour moves with the exemplar's colours
    moved, wanted = [], []
    for o_w, o_c, l in zip(out_w, out_c, lay):
        for c in np.unique(l):
            moved.append(o_w[l == c].mean(0) - o_c[l == c].mean(0))
            wanted.append(warm.reshape(-1, 3).mean(0) - cool.reshape(-1, 3).mean(0))
    moved, wanted = np.array(moved), np.array(wanted)
    cosine = (moved * wanted).sum(1) / (np.linalg.norm(moved, axis=1) * np.linalg.norm(wanted, axis=1))
    assert np.median(cosine) > 0.5 and np.linalg.norm(moved, axis=1).mean() > 10
    # layout: output pixels group by the input's regions (nearest region mean), far better than by another layout
    def grouping(out, layouts):
        acc = []
        for o, l in zip(out, layouts):
            classes = np.unique(l)
            means = np.stack([o[l == c].mean(0) for c in classes])
            pred = classes[np.linalg.norm(o[:, :, None] - means, axis=-1).argmin(-1)]
            acc.append((pred == l).mean())
        return float(np.mean(acc))

    assert grouping(out_w, lay) > grouping(out_w, np.roll(lay, 1, axis=0)) + 0.1


def test_translate_with_exemplars_and_bad_inputs(scenes, trained, tmp_path, capsys):
    out = tmp_path / "out"
    written = translate_paths(trained, scenes / "testA", out, exemplar=scenes / "exemplars", progress=False)
    assert len(written) == 4 and Image.open(written[0]).size == (32, 32)
    # one greyscale exemplar of another size for all inputs, and a condition of an odd size
    Image.fromarray(load_rgb_folder(scenes / "exemplars")[1]).convert("L").resize((45, 27)).save(tmp_path / "g.png")
    Image.open(scenes / "testA" / "000001.png").resize((37, 23), Image.NEAREST).save(tmp_path / "odd.png")
    (path,) = translate_paths(trained, tmp_path / "odd.png", tmp_path / "o2", exemplar=tmp_path / "g.png",
                              progress=False)
    assert Image.open(path).size == (37, 23)
    with pytest.raises(TranslateError, match="--exemplar"):  # missing exemplar
        translate_paths(trained, scenes / "testA", tmp_path / "o3", progress=False)
    (tmp_path / "few").mkdir()
    Image.open(scenes / "exemplars" / "000000.png").save(tmp_path / "few" / "000000.png")
    with pytest.raises(TranslateError, match=r"3 input\(s\) have no exemplar of the same name"):
        translate_paths(trained, scenes / "testA", tmp_path / "o4", exemplar=tmp_path / "few", progress=False)
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()  # nothing written
    with pytest.raises(TranslateError, match="already exist"):
        translate_paths(trained, scenes / "testA", out, exemplar=scenes / "exemplars", progress=False)
    code = main(["translate", "--run", str(trained), "--input", str(scenes / "testA"), "--output", str(tmp_path / "o5"),
                 "--exemplar", str(tmp_path / "missing.png"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "missing.png does not exist" in err[0]
    from sesim.view.runs import ViewError, ViewRun

    with pytest.raises(ViewError, match="exemplar run"):
        ViewRun(trained)


def test_export_and_viz(scenes, trained, tmp_path):
    from sesim.export import export_run
    from sesim.translate_exemplar import exemplar_translate_tensor

    path = export_run(trained, tmp_path / "g.ts", fmt="torchscript")
    module = torch.jit.load(str(path))
    g, _ = load_run_generator(trained)
    x, z = torch.rand(1, 3, 30, 41) * 2 - 1, torch.rand(1, 3, 50, 20) * 2 - 1
    assert torch.allclose(module(x, z), exemplar_translate_tensor(g, x, z), atol=1e-5)
    fig = tmp_path / "corr.png"
    assert main(["viz", "correspondence", "--run", str(trained), "--input", str(scenes / "testA" / "000000.png"),
                 "--exemplar", str(scenes / "exemplars" / "000000.png"), "--output", str(fig)]) == 0
    assert Image.open(fig).size[0] > 5 * 32
