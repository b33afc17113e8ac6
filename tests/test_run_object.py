"""One way to open a run folder (``sesim.run.Run``), networks that describe themselves, and run
folders written before the configuration was split into sections."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sesim.checkpoint import save_generator
from sesim.config import TrainConfig
from sesim.nets.described import NetworkSpecError, network_spec
from sesim.nets.munit import MultimodalGenerator
from sesim.nets.patchgan import PatchDiscriminator
from sesim.nets.registry import build_network
from sesim.nets.resnet_generator import ResnetGenerator
from sesim.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from sesim.run import Run, RunError, load_generator

#: a run folder written by sesim 0.1.0 before the configuration was split into sections (config.json
#: with "model" / "loss", generator weights without the network's arguments): LSeSim, 2 steps, 32 px,
#: on EfficientNet-Lite0, trained by the code of commit 7448ed7
OLD_RUN = Path(__file__).parent / "data" / "run-0.1.0-lsesim"


@pytest.mark.parametrize("net", [
    ResnetGenerator(3, 3, ngf=4, n_blocks=1, antialias=True, upsample="nearest"),
    MultimodalGenerator(3, 3, ngf=4, n_res=1, mlp_dim=8, style_encoder=False),
    StyleGAN2Generator(1, 1, ngf=4, n_blocks=1),
    PatchDiscriminator(3, 4, 2, "none"),
    StyleGAN2Discriminator(3, size=16, ndf=4),
], ids=lambda n: type(n).__name__)
def test_a_network_rebuilds_from_its_own_spec(net):
    spec = json.loads(json.dumps(network_spec(net)))  # stored as JSON
    again = build_network(spec)
    assert type(again) is type(net) and network_spec(again) == spec
    again.load_state_dict(net.state_dict())  # same parameters, same shapes


def test_bad_specs_are_refused():
    with pytest.raises(NetworkSpecError, match="unknown network class"):
        build_network({"class": "Nope", "kwargs": {}})
    with pytest.raises(NetworkSpecError, match="cannot be built"):
        build_network({"class": "ResnetGenerator", "kwargs": {"wings": 2}})
    with pytest.raises(NetworkSpecError, match="not a network spec"):
        build_network(["ResnetGenerator"])
    assert network_spec(torch.nn.Conv2d(1, 1, 1)) is None


def test_a_generator_file_alone_rebuilds_its_network(tmp_path):
    net = ResnetGenerator(3, 3, ngf=4, n_blocks=2, upsample="nearest").eval()
    save_generator(tmp_path / "g.safetensors", net, {"step": 3})
    loaded = load_generator(tmp_path / "g.safetensors")  # no configuration given
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    torch.save({}, tmp_path / "other.safetensors")
    with pytest.raises(RunError, match="damaged"):
        load_generator(tmp_path / "other.safetensors")
    with pytest.raises(RunError, match="not found"):
        load_generator(tmp_path / "missing.safetensors")


def test_one_check_for_every_kind_of_bad_run_folder(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        Run(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        Run(tmp_path / "file")
    with pytest.raises(RunError, match="not a sesim run folder"):
        Run(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(RunError, match="damaged"):
        Run(tmp_path)
    TrainConfig().save(tmp_path / "config.json")
    run = Run(tmp_path)
    with pytest.raises(RunError, match="has not saved a generator"):
        run.generator()
    with pytest.raises(RunError, match="has not saved a checkpoint"):
        run.state()


def old_run(tmp_path: Path, data: Path) -> Path:
    """A copy of :data:`OLD_RUN` whose config.json points at ``data``, still in the old layout."""
    run = tmp_path / "old-run"
    shutil.copytree(OLD_RUN, run)
    cfg = json.loads((run / "config.json").read_text())
    assert "loss" in cfg and "model" in cfg and "structure" not in cfg  # the layout of then
    cfg["data"]["data"] = str(data)
    (run / "config.json").write_text(json.dumps(cfg, indent=2))
    return run


def test_an_old_run_folder_still_translates_resumes_and_explains(tiny_dataset, tmp_path):
    from sesim.explain import load_run_method
    from sesim.train import resume
    from sesim.translate import translate_paths

    run = old_run(tmp_path, tiny_dataset)
    cfg = Run(run).config
    assert (cfg.mode, cfg.structure.structure, cfg.generator.ngf, cfg.structure.backbone) == \
        ("single-modal", "lsesim", 4, "efficientnet-lite0")
    written = translate_paths(run, tiny_dataset / "testA", tmp_path / "out", progress=False)
    assert len(written) == 3
    method, _ = load_run_method(run)  # the trained LSeSim heads come back from checkpoint.pt
    assert method.structure.learned
    resume(run, steps=3, progress=False)
    assert json.loads((run / "log.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert "structure" in json.loads((run / "config.json").read_text())  # rewritten in the new layout
    assert Run(run).generator().spec == network_spec(method.G)  # now carries its arguments
