"""Class 1 of the reliability issue: no command overwrites one of its inputs.

Every output option of every command is fed every input path of that command (as given,
through a symbolic link, a hard link and a ``./`` spelling): exit 2, one line naming the
path, every input byte-for-byte unchanged. The table of commands must cover every output
option the CLI has, so a new command or option cannot skip this test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.main import get_command

from alrp_cli.cli.app import app
from tests.detection.tiny import TINY_CLI_OPTIONS
from tests.reliability.conftest import World, assert_refused, digest, invoke

OUTPUT_OPTIONS = {"--json", "--csv-dir", "-o", "--output", "--out", "--plot"}


def commands(w: World, fresh: Path) -> dict[str, tuple[list[object], list[Path], dict]]:
    """command -> (valid arguments, its input paths, required outputs with fresh values)."""
    return {
        "analyze": (["analyze", w.predictions, "--gt", w.val_ann], [w.predictions, w.val_ann], {}),
        "predict": (
            ["predict", w.checkpoint, "--images", w.val_images, "--ann", w.val_ann],
            [w.checkpoint, w.val_images, w.val_ann, w.image],
            {"-o": fresh / "p.json"},
        ),
        "check-balance": (["check-balance", "--from", w.loss_inputs], [w.loss_inputs], {}),
        "data info": (["data", "info", "--ann", w.val_ann], [w.val_ann], {}),
        "data preview": (
            ["data", "preview", "--ann", w.val_ann, "--images", w.val_images],
            [w.val_ann, w.val_images, w.image],
            {"-o": fresh / "p.png"},
        ),
        "data synth": (
            ["data", "synth", "--num-train", "2", "--num-val", "1"],
            [],
            {"--out": fresh / "synth"},
        ),
        "report": (["report", w.analysis], [w.analysis], {"--out": fresh / "r"}),
        "train": (
            ["train", "--data", w.data, *TINY_CLI_OPTIONS],
            [w.data, w.train_ann, w.val_ann, w.image],
            {},
        ),
        "bench": (["bench", "--size", "10x100", "--reference-repeats", "0"], [], {}),
        # outputs are checked before the file is read: any checkpoint serves here
        "import": (["import", w.checkpoint], [w.checkpoint], {"--out": fresh / "imported"}),
    }


def output_options() -> dict[str, list[str]]:
    """Every leaf command of the CLI -> its output options (each as its first spelling)."""
    found: dict[str, list[str]] = {}

    def walk(cmd, prefix: str) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{prefix} {name}".strip())
        if not hasattr(cmd, "commands"):
            found[prefix] = [
                p.opts[0]
                for p in cmd.params
                if set(p.opts) & OUTPUT_OPTIONS and not getattr(p, "hidden", False)
            ]

    walk(get_command(app), "")
    return found


def test_the_table_covers_every_command_and_output_option(world: World, tmp_path: Path) -> None:
    assert set(output_options()) == set(commands(world, tmp_path))


def cases() -> list[tuple[str, str, int]]:
    table = commands(World(*[Path("/x")] * 10), Path("/x"))  # shapes only
    return [
        (name, option, k)
        for name, options in output_options().items()
        for option in options
        for k in range(len(table[name][1]))
    ]


@pytest.mark.parametrize(("name", "option", "k"), cases())
def test_an_input_as_output_is_refused(
    world: World, tmp_path: Path, name: str, option: str, k: int
) -> None:
    args, inputs, required = commands(world, tmp_path)[name]
    target = inputs[k]
    extra = [a for opt, value in required.items() if opt != option for a in (opt, value)]
    before = digest(*inputs)
    result = invoke([*args, *extra, option, target])
    assert_refused(result, target)
    assert digest(*inputs) == before
    assert not list(tmp_path.iterdir()), "nothing written"


@pytest.mark.parametrize("spelling", ["symlink", "hardlink", "dot"])
@pytest.mark.parametrize("name", ["analyze", "predict", "check-balance"])
def test_links_and_other_spellings_of_an_input_are_caught(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, spelling: str
) -> None:
    args, inputs, required = commands(world, tmp_path)[name]
    original = inputs[0]
    if spelling == "symlink":
        target = tmp_path / "link.json"
        target.symlink_to(original)
    elif spelling == "hardlink":
        target = tmp_path / "hard.json"
        os.link(original, target)
    else:
        monkeypatch.chdir(original.parent)
        target = Path(".") / ".." / original.parent.name / original.name
    option = "-o" if name == "predict" else "--json"
    extra = [a for opt, value in required.items() if opt != option for a in (opt, value)]
    before = digest(*inputs)
    result = invoke([*args, *extra, option, target])
    assert_refused(result, target)
    assert digest(*inputs) == before


def test_two_outputs_naming_one_file_are_refused(world: World, tmp_path: Path) -> None:
    out = tmp_path / "same.json"
    args = ["predict", world.checkpoint, "--images", world.val_images, "-o", out, "--json", out]
    assert_refused(invoke(args), out, "name the same place")
    assert not out.exists()
