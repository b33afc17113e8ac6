"""The benchmark harness's own logic (bench/lab): statistics over seeds, the output-folder rule, method
specs built from presets, reports rendered from their JSON. Nothing is trained or timed here."""

import json
import math

import pytest

from lab import paths, report, stats
from lab.methods import METHODS, build_config, option, parse_sets, unavailable


def test_mean_and_sample_std_skip_missing_values():
    mean, std = stats.mean_std([1.0, None, 3.0, float("nan")])
    assert mean == 2.0 and std == pytest.approx(math.sqrt(2))  # ddof 1 over the two real values
    mean, std = stats.mean_std([5.0])
    assert mean == 5.0 and math.isnan(std)
    assert all(math.isnan(v) for v in stats.mean_std([None]))
    assert stats.cell(2.0, math.sqrt(2), 2) == "2.00 ± 1.41"
    assert stats.cell(5.0, float("nan"), 1) == stats.cell(5.0, None, 1) == "5.0"
    assert stats.cell(None, None, 3) == stats.cell(float("nan"), 0.1, 3) == "–"


def test_summary_groups_seeds_and_counts_failures():
    rows = [{"task": "t", "method": "a", "label": "A", "seed": 0, "fd": 1.0, "peak": 10, "steps": 5},
            {"task": "t", "method": "a", "label": "A", "seed": 1, "fd": 3.0, "peak": 30, "steps": 5},
            {"task": "t", "method": "a", "label": "A", "seed": 2, "error": "boom"},
            {"task": "t", "method": "b", "label": "B", "seed": 0, "error": "boom"}]
    a, b = stats.summarize(rows, ["fd", "kid"], maximum=("peak",), first=("steps",))
    assert a == {"task": "t", "method": "a", "label": "A", "n_seeds": 2, "failed_seeds": 1, "fd": 2.0,
                 "fd_std": pytest.approx(math.sqrt(2)), "peak": 30, "steps": 5}
    assert b == {"task": "t", "method": "b", "label": "B", "n_seeds": 0, "failed_seeds": 1}


def test_a_difference_counts_only_beyond_the_seed_spread():
    a, b = {"x": 0.9, "x_std": 0.05}, {"x": 0.8, "x_std": 0.02}
    assert stats.compare(a, b, "x", higher=True) == "better"
    assert stats.compare(a, b, "x", higher=False) == "worse"
    assert stats.compare({"x": 0.82, "x_std": 0.05}, b, "x", higher=True) == "within the seed spread"
    assert stats.compare({"x": 0.9}, {"x": 0.8}, "x", higher=True) == "better"  # one seed: no spread to judge by
    assert stats.compare(b, b, "x", higher=True) == "equal"
    assert stats.compare(a, {"y": 1.0}, "x", higher=True) is None


def test_quick_runs_go_to_scratch_and_never_into_committed_results(tmp_path):
    assert paths.results_dir() == paths.RESULTS
    assert paths.results_dir(quick=True) == paths.QUICK_RESULTS
    assert not paths.is_committed(paths.QUICK_RESULTS) and paths.QUICK_RESULTS.parent == paths.WORK
    assert paths.results_dir(tmp_path, quick=True) == tmp_path
    assert paths.results_dir(paths.RESULTS) == paths.RESULTS  # a full run may (re)write the committed results
    for committed in (paths.RESULTS, paths.RESULTS / "speed-backbones", paths.RESULTS / ".." / "results"):
        with pytest.raises(paths.CommittedResultsError, match="never writes into"):
            paths.results_dir(committed, quick=True)


def test_methods_are_presets_plus_flat_options():
    for key in ("cyclegan", "cut", "fastcut", "lsesim", "painting2photo", "sincut"):
        direct = build_config()
        for name in METHODS[key].presets:
            direct.apply_preset(name)
        assert build_config(key).to_dict() == direct.to_dict() and METHODS[key].presets == (key,)
        assert unavailable(key) is None
    assert option(build_config("gan-only"), "structure") == "none"
    assert option(build_config("lsesim"), "structure") == "lsesim"
    assert option(build_config("cut"), "method") == "cut"
    # layers: the benchmark's presets and options, the method, then the run's options (later ones win)
    cfg = build_config("fsesim", presets=("demo",), base={"size": 32, "structure": "none"},
                       run={"steps": 7, "upsample": "transposed"})
    assert (option(cfg, "structure"), option(cfg, "size"), option(cfg, "steps")) == ("fsesim", 32, 7)
    assert option(cfg, "upsample") == "transposed" and option(cfg, "ngf") == 32  # demo's width
    with pytest.raises(KeyError):
        option(cfg, "no_such_option")


def test_set_overrides_parse():
    assert parse_sets(["antialias=true", " lambda-structure = 5 "]) == {"antialias": "true", "lambda_structure": "5"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_sets(["antialias"])


def test_the_report_is_rendered_from_the_json_as_written(tmp_path):
    def render(result):
        return f"# {result['name']}: {tuple(result['shape'])} {result['x']:.2f}\n"

    written = report.write(tmp_path, "demo", {"name": "run", "shape": (1, 2), "x": 0.5}, render, indent=1)
    assert json.loads(written["json"].read_text()) == {"name": "run", "shape": [1, 2], "x": 0.5}
    assert written["md"].read_text() == "# run: (1, 2) 0.50\n"
    written["md"].unlink()
    assert report.rerender(tmp_path, "demo", render).read_text() == "# run: (1, 2) 0.50\n"
