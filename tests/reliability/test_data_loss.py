"""Never lose a user's file, second pass: the three ways a command still lost data.

- an output naming a file that a run directory owns (``predict RUN/last.pt -o RUN/best.pt``);
- ``data synth --out DIR`` over an older synthetic set holding the user's own files;
- a crash in the evaluation, which threw away the epoch it followed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.reliability.conftest import World, assert_refused, digest, invoke


def _linked_copy(run: Path, to: Path) -> Path:
    """A run directory of hard links to ``run``'s files (no 45 MB copies)."""
    return Path(shutil.copytree(run, to, copy_function=os.link))


def test_a_checkpoint_file_protects_its_whole_run_directory(world: World, tmp_path: Path) -> None:
    run = _linked_copy(world.run, tmp_path / "run")
    (run / "notes.json").write_text("mine")
    before = digest(run)
    args = ["predict", run / "last.pt", "--images", world.image]
    line = assert_refused(invoke([*args, "-o", run / "best.pt"]), run / "best.pt", "best.pt")
    assert "run directory" in line
    # a file of the user's in the run folder is protected too, as `analyze RUN` does
    assert_refused(invoke([*args, "-o", run / "notes.json"]), run / "notes.json", "input folder")
    assert digest(run) == before
    # a new file beside the run's own is fine
    assert invoke([*args, "-o", run / "p.json"]).exit_code == 0
    assert (run / "p.json").read_text().startswith("[")


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "eval/epoch_001/summary.json"])
def test_a_run_file_is_protected_when_the_run_is_no_input(
    world: World, tmp_path: Path, name: str
) -> None:
    target = world.run / name
    before = digest(world.run)
    result = invoke(["analyze", world.predictions, "--gt", world.val_ann, "--json", target])
    assert_refused(result, target, "refusing to overwrite a run's files")
    assert digest(world.run) == before


SYNTH = ["data", "synth", "--num-train", "2", "--num-val", "1", "--image-size", "32"]


@pytest.mark.parametrize(
    "add",
    [
        lambda d: (d / "notes.txt").write_text("mine"),
        lambda d: ((d / "mine").mkdir(), (d / "mine" / "a.txt").write_text("mine")),
        lambda d: (d / "train2017" / "000009.png").write_bytes(b"mine"),  # beyond num_train
        lambda d: (d / "annotations" / "instances_test2017.json").write_text("{}"),
        lambda d: (d / "alrp-synth.json").write_text("not json"),  # cannot say what it wrote
    ],
    ids=["a-file", "a-folder", "an-extra-image", "an-extra-annotation", "unreadable-marker"],
)
def test_synth_never_deletes_what_it_did_not_write(tmp_path: Path, add) -> None:
    out = tmp_path / "synth"
    assert invoke([*SYNTH, "--out", out]).exit_code == 0
    add(out)
    before = digest(out)
    line = assert_refused(invoke([*SYNTH, "--seed", "1", "--out", out]), out)
    assert "did not write" in line
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]  # no temporary folder left


def test_synth_replaces_an_older_set_of_its_own(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    assert invoke([*SYNTH, "--num-train", "3", "--out", out]).exit_code == 0
    assert invoke([*SYNTH, "--seed", "1", "--out", out]).exit_code == 0
    assert sorted(p.name for p in (out / "train2017").iterdir()) == ["000001.png", "000002.png"]
