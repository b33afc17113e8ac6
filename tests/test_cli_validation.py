"""Every numeric flag of every command is range-checked at parse time (generated from the parser and
the config dataclasses): a bad value gives one clean line, exit status 2, and creates nothing."""

import argparse
import dataclasses
import typing

import pytest

from sesim.cli import build_parser, main
from sesim.config import TrainConfig, option_fields

#: the allowed range of each numeric config field (the ``range`` metadata of its field)
FIELD_RANGES = {f.name: f.metadata["range"] for _, f in option_fields() if "range" in f.metadata}


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) for every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))
            return
    yield prefix, parser


def _numeric_field(name: str) -> bool:
    """An int/float config field whose values are not a fixed set of choices."""
    if _field(name).metadata.get("choices"):
        return False
    for section, f in option_fields():
        if f.name == name:
            hint = typing.get_type_hints(TrainConfig if section == "recipe" else type(getattr(TrainConfig(), section)))[name]
            return any(t in (int, float) for t in (hint, *typing.get_args(hint)))
    return False


def _field(name: str) -> dataclasses.Field:
    return next(f for _, f in option_fields() if f.name == name)


def _bad_values(action: argparse.Action) -> list[str]:
    t = action.type
    field = getattr(t, "field", None)
    if field is not None:  # a config flag
        if field.metadata.get("choices"):
            return ["not-a-choice"]
        return FIELD_RANGES[field.name].bad_values() if field.name in FIELD_RANGES else []
    return t.bad_values() if hasattr(t, "bad_values") else []


def _cases():
    for words, parser in _commands(build_parser()):
        required = [a for a in parser._actions if a.required and a.option_strings]
        for action in parser._actions:
            if not action.option_strings or action.type is None:
                continue
            for bad in _bad_values(action):
                yield pytest.param(words, required, action.option_strings[0], bad,
                                   id=f"{' '.join(words)} {action.option_strings[0]} {bad}")


CASES = list(_cases())


def test_every_numeric_flag_has_a_range():
    """No numeric flag escapes the check: bare int/float types and numeric fields without a range fail."""
    missing = []
    for words, parser in _commands(build_parser()):
        for action in parser._actions:
            if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            name = f"{' '.join(words)} {action.option_strings[0]}"
            if action.type in (int, float):
                missing.append(name + " (bare int/float type)")
            elif action.type is None and isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
                missing.append(name + " (numeric default, no type)")
            field = getattr(action.type, "field", None)
            if field is not None and _numeric_field(field.name) and field.name not in FIELD_RANGES:
                missing.append(name + " (numeric config field without a FIELD_RANGES entry)")
    assert not missing, missing
    numeric_fields = [f.name for _, f in option_fields() if _numeric_field(f.name)]
    assert set(numeric_fields) <= set(FIELD_RANGES), set(numeric_fields) - set(FIELD_RANGES)
    assert len(CASES) > 200  # guards the generation itself: every flag above contributes several bad values


def test_defaults_and_presets_are_inside_the_ranges():
    cfg = TrainConfig()
    for name, allowed in FIELD_RANGES.items():
        value = cfg.get_flat(name)
        assert value is None or allowed.problem(value) is None, name
    from sesim.config import available_presets

    for preset in available_presets():
        TrainConfig().apply_preset(preset)  # raises if a preset holds a value out of range


@pytest.mark.parametrize("words,required,flag,bad", CASES)
def test_bad_numeric_value_is_one_clean_line(words, required, flag, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a run folder would appear here (--runs defaults to ./runs)
    argv = [*words]
    for action in required:
        argv += [action.option_strings[0], "x"]
    argv += [f"{flag}={bad}"]  # "=" keeps values such as -5 from looking like flags
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sesim {' '.join(words)}: error: argument {flag}"), err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_bad_value_in_a_preset_file_names_the_file(tmp_path, capsys):
    preset = tmp_path / "mine.toml"
    preset.write_text("[run]\ncheckpoint_every = 0\n")
    assert main(["train", "--preset", str(preset), "--data", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mine.toml" in err and "checkpoint_every must be an integer >= 1" in err
    assert not (tmp_path / "runs").exists()


def test_config_values_are_checked_when_set_from_python():
    cfg = TrainConfig()
    with pytest.raises(ValueError, match="log_every must be an integer >= 1, got 0"):
        cfg.set_flat("log_every", 0)
    with pytest.raises(ValueError, match="expects int, got 2.5"):
        cfg.set_flat("steps", 2.5)  # not silently truncated to 2
    with pytest.raises(ValueError, match="beta1 must be a number >= 0 and < 1"):
        cfg.update("optim", {"beta1": 1.0})
