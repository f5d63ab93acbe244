"""No command overwrites one of its inputs.

Every output option of every command is fed every input path of that command (as given,
through a symbolic link, a hard link and a ``./`` spelling): exit 2, one line naming the
path, every input byte-for-byte unchanged. The same walk feeds every output option every
file a run directory owns, a 300-byte name, a file path with a trailing ``/`` and ``-``
(standard output for ``--json``, refused elsewhere). The table of commands
(tests/helpers/commands.py) must cover every output option the CLI has, so a new command or
option cannot skip these tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.commands import FOLDER_OPTIONS, commands, output_options
from tests.helpers.world import World, assert_refused, digest, invoke


def test_the_table_covers_every_command_and_output_option(world: World, tmp_path: Path) -> None:
    assert set(output_options()) == set(commands(world, tmp_path))


def cases() -> list[tuple[str, str, int]]:
    table = commands(World(*[Path("/x")] * 11), Path("/x"))  # shapes only
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


def _cases_over(targets: int) -> list[tuple[str, str, int]]:
    return [(n, o, k) for n, opts in output_options().items() for o in opts for k in range(targets)]


RUN_FILES = 8  # the run directory of the world fixture: 7 files and its eval folder


def test_the_run_directory_holds_every_file_a_run_owns(world: World) -> None:
    from alrp_cli.run_dir import OWNED

    files = world.run_files()
    assert len(files) == RUN_FILES
    assert {p.relative_to(world.run).parts[0] for p in files} == set(OWNED)


@pytest.mark.parametrize(("name", "option", "k"), _cases_over(RUN_FILES))
def test_a_file_a_run_directory_owns_is_never_an_output(
    world: World, tmp_path: Path, name: str, option: str, k: int
) -> None:
    args, inputs, required = commands(world, tmp_path)[name]
    target = world.run_files()[k]
    extra = [a for opt, value in required.items() if opt != option for a in (opt, value)]
    before = digest(*inputs, world.run)
    result = invoke([*args, *extra, option, target])
    assert_refused(result, target)
    assert digest(*inputs, world.run) == before
    assert not list(tmp_path.iterdir()), "nothing written"


def _is_folder(name: str, option: str) -> bool:
    return (name, option) in FOLDER_OPTIONS


@pytest.mark.parametrize(
    ("name", "option", "k"),
    [c for c in _cases_over(2) if c[2] == 0 or not _is_folder(*c[:2])],  # a folder may end in /
)
def test_a_name_the_system_refuses_and_a_file_with_a_trailing_slash(
    world: World, tmp_path: Path, name: str, option: str, k: int
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    args, inputs, required = commands(world, fresh)[name]
    long_name = "x" * 300 + ("" if _is_folder(name, option) else ".json")
    target, said = [
        (fresh / long_name, "bytes long, more than the 255"),
        (f"{fresh / 'out.json'}/", "ends in '/'"),
    ][k]
    extra = [a for opt, value in required.items() if opt != option for a in (opt, value)]
    before = digest(*inputs)
    result = invoke([*args, *extra, option, target])
    line = assert_refused(result, option, said)
    assert str(target)[:40] in line
    assert digest(*inputs) == before
    assert not list(fresh.iterdir()), "nothing written"


def test_a_folder_may_end_in_a_slash(world: World, tmp_path: Path) -> None:
    args = ["analyze", world.predictions, "--gt", world.val_ann, "--csv-dir", f"{tmp_path}/t/"]
    assert invoke(args).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "pred.classes.csv",
        "pred.detections.csv",
    ]


@pytest.mark.parametrize(
    ("name", "option"), [(n, o) for n, os_ in output_options().items() for o in os_]
)
def test_dash_is_standard_output_for_json_and_refused_elsewhere(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, option: str
) -> None:
    fresh = tmp_path / "fresh"
    args, inputs, required = commands(world, fresh)[name]
    extra = [a for opt, value in required.items() if opt != option for a in (opt, value)]
    monkeypatch.chdir(tmp_path)
    if name == "report":
        extra += ["--format", "png", "--dpi", "30"]
    if name == "train":
        extra += ["--epochs", "1"]
    if name == "import":  # the world's checkpoint is alrp's own: import an official one
        from tests.helpers.weights import mmdet_checkpoint, save_legacy

        save_legacy(mmdet_checkpoint(), tmp_path / "released.pth")
        args, inputs = ["import", tmp_path / "released.pth"], [tmp_path / "released.pth"]
    before = digest(*inputs)
    result = invoke([*args, *extra, option, "-"])
    if option == "--json":
        assert result.exit_code in (0, 1), result.output  # check-balance may find a failure
        json.loads(result.stdout)  # standard output holds the JSON alone
    else:
        assert_refused(result, option, "standard output")
        assert not fresh.exists()
    assert not (tmp_path / "-").exists()
    assert digest(*inputs) == before
