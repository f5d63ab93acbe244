"""A new run claims its folder (alrp_cli/run_dir.py): an existing run directory is never
overwritten, and two runs never share one (creation is atomic and exclusive)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from alrp_cli import run_dir
from alrp_cli.errors import UserError
from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, digest, invoke


def crashed_run(folder: Path) -> Path:
    """What a crash or a double Ctrl-C in epoch 1 leaves: config and metrics, no last.pt."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"loss": "alrp"}\n')
    (folder / "metrics.jsonl").write_text('{"type": "step", "iter": 1}\n')
    return folder


@pytest.mark.parametrize(
    "make",
    [
        crashed_run,
        lambda f: (f.mkdir(), (f / "notes.txt").write_text("mine"))[0],
        lambda f: (f.mkdir(), (f / "sub").mkdir())[0],
    ],
    ids=["crashed-run", "someone-elses-file", "a-subfolder"],
)
def test_a_non_empty_folder_that_is_no_resumable_run_is_refused(
    world: World, tmp_path: Path, make
) -> None:
    out = tmp_path / "run"
    make(out)
    before = digest(out)
    result = invoke(["train", "--data", world.data, *TINY_CLI_OPTIONS, "--out", out])
    assert_refused(result, out, "no resumable run")
    assert digest(out) == before


def test_a_finished_run_is_refused_with_the_resume_command(tmp_path: Path) -> None:
    out = crashed_run(tmp_path / "run")
    (out / "last.pt").write_bytes(b"PK")
    with pytest.raises(UserError, match=f"use --resume {out}"):
        run_dir.check_new_run_dir(out)


def test_resume_of_a_run_without_checkpoint_says_why(tmp_path: Path) -> None:
    out = crashed_run(tmp_path / "run")
    result = invoke(["train", "--resume", out])
    assert_refused(result, out, "stopped before its first checkpoint")


def test_an_empty_existing_folder_is_used_and_claimed(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert run_dir.create_run_dir(out, "alrp") == out
    assert (out / "config.json").exists()
    with pytest.raises(UserError, match="no resumable run"):  # claimed: a second run is refused
        run_dir.create_run_dir(out, "alrp")


def test_runs_started_in_the_same_second_get_distinct_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_dir, "default_run_dir", lambda loss: Path("runs") / f"same-{loss}")
    made: list[Path] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        made.append(run_dir.create_run_dir(None, "alrp"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8
    assert sorted(p.name for p in made) == sorted(
        ["same-alrp", *(f"same-alrp-{k}" for k in range(2, 9))]
    )


def test_the_same_explicit_out_is_claimed_once(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    results: list[object] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        try:
            results.append(run_dir.create_run_dir(out, "alrp"))
        except UserError as err:
            results.append(err)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Path) for r in results) == 1


def test_bad_data_leaves_no_run_folder_behind(world: World, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke(["train", "--data", tmp_path / "missing", *TINY_CLI_OPTIONS, "--out", out])
    assert_refused(result, tmp_path / "missing")
    assert not out.exists(), "the folder is claimed only once the inputs are known good"
