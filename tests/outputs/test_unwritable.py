"""An output path that cannot be written is refused before any work (exit 2, one line naming
it), and a write that fails late removes what the command had already written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.helpers.commands import (
    FOLDER_OPTIONS,
    commands,
    output_options,
)
from tests.helpers.world import World, assert_refused, digest, invoke


def bad_places(tmp_path: Path, folder: bool) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    places = {
        "under /proc": Path("/proc/alrp-test/out.json"),
        "under a file": a_file / "out.json",
        "wrong kind": a_file if folder else a_folder,
    }
    if os.geteuid() != 0:  # root writes into read-only folders: nothing to refuse there
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
        places["read-only folder"] = read_only / "out.json"
    return places


def cases() -> list[tuple[str, str, str]]:
    kinds = ["under /proc", "under a file", "wrong kind"]
    if os.geteuid() != 0:  # CI runs as root, where this case does not exist
        kinds.append("read-only folder")
    return [(n, o, k) for n, opts in output_options().items() for o in opts for k in kinds]


@pytest.mark.parametrize(("name", "option", "kind"), cases())
def test_an_unusable_output_is_refused_before_work(
    world: World, tmp_path: Path, name: str, option: str, kind: str
) -> None:
    fresh = tmp_path / "fresh"
    args, inputs, required = commands(world, fresh)[name]
    target = bad_places(tmp_path, (name, option) in FOLDER_OPTIONS)[kind]
    extra = [a for opt, value in required.items() if opt != option for a in (opt, value)]
    before = digest(*inputs, tmp_path)
    result = invoke([*args, *extra, option, target])
    assert_refused(result, target)
    assert digest(*inputs, tmp_path) == before
    assert not fresh.exists()


def test_csvs_are_not_written_when_the_json_path_is_a_folder(world: World, tmp_path: Path) -> None:
    csv_dir, folder = tmp_path / "t", tmp_path / "DIR"
    folder.mkdir()
    args = ["analyze", world.predictions, "--gt", world.val_ann]
    assert_refused(invoke([*args, "--csv-dir", csv_dir, "--json", folder]), folder)
    assert not csv_dir.exists()


def test_a_late_write_failure_removes_what_was_written(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alrp_cli.outputs as outputs

    def disk_full(path, obj, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "write_json", disk_full)
    existing = tmp_path / "t"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    out = tmp_path / "an.json"
    args = ["analyze", world.predictions, "--gt", world.val_ann, "--csv-dir", existing]
    line = assert_refused(invoke([*args, "--json", out]), out, "No space left")
    assert "removed what this command had written" in line
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert not out.exists()
