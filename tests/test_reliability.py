"""The reliability suite in its fast form (bench/reliability.py holds the cases and the kill -9
loop): every bad-input case is handled, and two kills (one mid-write) lose nothing."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_reliability", ROOT / "bench" / "reliability.py")
reliability = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = reliability  # its dataclasses look their module up
_spec.loader.exec_module(reliability)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability") / "template"
    reliability.Workspace(root)
    return root


@pytest.mark.parametrize("name", list(reliability.CASES))
def test_bad_input_is_handled(name, template, tmp_path):
    result = reliability.run_case(name, template, tmp_path / "ws")
    assert result["handled"], result["detail"]
    assert result["outcomes"] and not result["left_behind"]


def test_the_suite_covers_the_issue_table():
    names = " ".join(reliability.CASES)
    for row in ("checkpoint.pt truncated", "checkpoint.pt halved", "checkpoint.pt empty", "random bytes",
                "generator.safetensors truncated", "--checkpoint-every 0", "--sample-every 0", "--log-every 0",
                "--checkpoint-every -5", "translate --batch-size 0", "no testA", "truncated JPEG", "symlink loop",
                "larger than --max-memory", "torchrun", "stale temp files", "says where it continues",
                "config.json broken", "permission mode", "would run code", "missing VGG16 weights"):
        assert row in names, row


def test_kill_9_at_random_moments_and_mid_write_loses_nothing(tmp_path):
    report = reliability.kill_loop(2, tmp_path, steps=6)
    assert report.kills == 2 and report.resumes == 2
    assert report.tensors > 10 and report.losses > 10
    assert report.lost == 0, report
