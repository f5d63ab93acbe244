"""`alrp train`'s options and the configuration's declaration are one: every option is a
setting (name, type, default, help, per-preset defaults), every given value lands in its
group of config.json, and every bound and check of the declaration refuses with a line
that names the option."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from alrp_cli import registry
from alrp_cli.cli.app import app
from alrp_cli.config.presets import PRESETS
from alrp_cli.config.settings import option_flag, option_help
from alrp_cli.config.training import CHOICES, FIELDS, GROUPS, Field, TrainConfig

runner = CliRunner()
OPTIONS = {name: f for name, f in FIELDS.items() if f.setting.option}
COMMAND_ONLY = {"json_path", "print_config", "help"}  # options of the command, not settings


def _params() -> dict:
    command = get_command(app).commands["train"]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params if p.name not in COMMAND_ONLY}


def test_every_option_is_a_setting_and_every_setting_of_an_option_is_one() -> None:
    assert set(_params()) == set(OPTIONS)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_an_option_is_what_its_setting_declares(name: str) -> None:
    param, f = _params()[name], OPTIONS[name]
    s = f.setting
    assert param.opts == [option_flag(name)]
    if s.flag is not None:
        assert param.secondary_opts == [s.flag.split("/")[1]]
    assert param.default == f.default
    assert param.help == option_help(name, s, PRESETS)
    for choice in CHOICES.get(name, ()):
        assert choice in param.help
    for preset, values in PRESETS.items():  # the per-preset default is in the help
        if name in values and not (s.per_loss and preset == "coco"):
            value = values[name]
            if isinstance(value, bool):
                shown = "on" if value else "off"
            elif isinstance(value, list):
                shown = ",".join(map(str, value))
            else:
                shown = str(value)
            assert shown in param.help, (preset, shown)
        if preset == "coco" and s.per_loss:
            assert "COCO: per loss" in param.help


def test_the_loss_choices_are_the_registry_s_and_the_preset_keys_are_settings() -> None:
    assert CHOICES["loss"] == registry.names("train")
    assert FIELDS["loss"].default == registry.DEFAULT_LOSS
    for preset in PRESETS.values():
        assert set(preset) <= set(FIELDS)
    assert set(GROUPS) == {f.group for f in FIELDS.values()}


def test_per_loss_marks_exactly_what_the_recipes_set() -> None:
    recipe_keys: set[str] = set()
    for entry in registry.entries("train"):
        assert entry.recipe is not None
        recipe_keys |= set(entry.recipe.coco)
        for values in entry.recipe.by_assigner.values():
            recipe_keys |= set(values)
    marked = {n for n, f in FIELDS.items() if f.setting.per_loss}
    # warmup_ratio has no option (so no help to mark) when a recipe sets it
    assert marked == {n for n in recipe_keys if FIELDS[n].setting.option}


def _kind(f: Field) -> type:
    return next(a for a in typing.get_args(f.annotation) or (f.annotation,) if a is not type(None))


def _sample(f: Field) -> tuple[list[str], object]:
    """Command-line words giving ``f`` a value other than its default and its synthetic
    preset's, and the value the configuration must then hold."""
    s, name = f.setting, f.name
    preset = PRESETS["synthetic"].get(name, f.default)
    if s.flag is not None and preset is True:
        return [s.flag.split("/")[1]], False
    if s.flag is not None or f.annotation in (bool, bool | None):
        return [option_flag(name)], True
    if name in CHOICES:
        choice = next(c for c in reversed(CHOICES[name]) if c != preset)
        return [option_flag(name), choice], choice
    if name == "lr_steps":
        return [option_flag(name), "0.25,0.5"], [0.25, 0.5]
    if name == "test_scale":
        return [option_flag(name), "96,64"], [96, 64]
    if s.path:
        return [option_flag(name), "some/where"], "some/where"
    if name == "device":
        return [option_flag(name), "cpu"], "cpu"
    kind = _kind(f)
    value = 0.25 if kind is float else 96
    return [option_flag(name), str(value)], value


@pytest.mark.parametrize("name", sorted(set(OPTIONS) - {"resume"}))  # resume: test_train.py
def test_each_option_lands_in_its_group_of_the_printed_config(name: str) -> None:
    f = OPTIONS[name]
    words, expected = _sample(f)
    result = runner.invoke(app, ["train", *words, "--print-config"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc[f.group][name] == expected
    assert doc == TrainConfig.from_dict(doc).to_dict()


BOUNDED = sorted(n for n, f in OPTIONS.items() if f.setting.low is not None)


@pytest.mark.parametrize("name", BOUNDED)
def test_a_value_out_of_its_bounds_names_the_option(name: str) -> None:
    f = OPTIONS[name]
    s = f.setting
    assert s.low is not None
    below = _kind(f)(s.low if s.open_low else s.low - 1)
    result = runner.invoke(app, ["train", option_flag(name), str(below), "--print-config"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line == f"Error: {option_flag(name)}: must be {s.bounds_text()}, got {below}"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--image-size", "100"], "--image-size: must be a multiple of 32, got 100"),
        (["--test-scale", "0,5"], "--test-scale: must be two positive integers, got [0, 5]"),
        (["--test-scale", "a,b"], "--test-scale: 'a,b' is not LONG,SHORT (two positive integers)"),
        (["--lr-steps", "0.5,1.5"], "--lr-steps: fractions of the epochs must be in (0, 1]"),
        (["--device", "gpu7"], "--device: 'gpu7' is not a device (auto, cpu, cuda, cuda:N)"),
        (["--score-threshold", "1.5"], "--score-threshold: must be in [0, 1], got 1.5"),
        (["--seed", str(2**32)], "--seed: must be in [0, 4294967295], got 4294967296"),
    ],
)
def test_the_declared_checks_name_the_option(words: list[str], message: str) -> None:
    result = runner.invoke(app, ["train", *words, "--print-config"])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_stored_value_of_the_wrong_type_names_the_setting(tmp_path: Path) -> None:
    from alrp_cli.errors import UserError

    doc = TrainConfig().resolved().to_dict()
    doc["optim"]["warmup_ratio"] = "a third"
    with pytest.raises(UserError, match=r"optim\.warmup_ratio: expected float \| None, got"):
        TrainConfig.from_dict(doc).validate()
    doc["optim"]["warmup_ratio"] = True  # a bool is no number
    with pytest.raises(UserError, match=r"optim\.warmup_ratio"):
        TrainConfig.from_dict(doc).validate()


def test_a_configuration_of_another_form_is_refused() -> None:
    from alrp_cli.errors import UserError

    grouped = TrainConfig().resolved().to_dict()
    flat = {k: v for group in grouped.values() for k, v in group.items()}
    with pytest.raises(UserError, match="not an alrp training configuration: expected the"):
        TrainConfig.from_dict(flat, "run/config.json")
    grouped["model"]["depth"] = 50
    with pytest.raises(UserError, match=r"run/config.json: model: unknown settings \['depth'\]"):
        TrainConfig.from_dict(grouped, "run/config.json")


def test_the_declared_choices_are_what_the_library_builds() -> None:
    from alrp_cli.detection.data.transforms import AUGMENTATIONS
    from alrp_cli.detection.mmdet_import import ASSIGNERS
    from alrp_cli.detection.model import BACKBONES, P6_SOURCES

    assert set(CHOICES["backbone"]) == set(BACKBONES)
    assert CHOICES["augmentation"] == AUGMENTATIONS and CHOICES["p6_from"] == P6_SOURCES
    assert set(CHOICES["assigner"]) == set(ASSIGNERS.values())
