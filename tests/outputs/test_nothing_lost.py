"""A command never loses a file it was not asked to replace, nor work it has done:

- an output naming a file that a run directory owns is refused
  (``predict RUN/last.pt -o RUN/best.pt``), even when the run is not one of the inputs;
- ``data synth --out DIR`` over an older synthetic set replaces only what it wrote;
- a crash in the evaluation keeps the epoch it followed, and ``--resume`` evaluates it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, digest, invoke


def _run_with_checkpoint(world: World, to: Path) -> Path:
    """A copy of the world's run directory whose last.pt is a real checkpoint (a hard link
    to the world's: no 45 MB copy)."""
    run = Path(shutil.copytree(world.run, to))
    (run / "last.pt").unlink()
    os.link(world.checkpoint, run / "last.pt")
    return run


def test_a_checkpoint_file_protects_its_whole_run_directory(world: World, tmp_path: Path) -> None:
    run = _run_with_checkpoint(world, tmp_path / "run")
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


def test_a_crash_in_the_evaluation_keeps_the_epoch_and_resume_evaluates_it(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alrp_cli.detection.train as library

    evaluate = library.evaluate_epoch

    def crash(run, emit):
        raise RuntimeError("expected more than 1 value per channel")

    monkeypatch.setattr(library, "evaluate_epoch", crash)
    out = tmp_path / "run"
    args = ["train", "--data", world.data, *TINY_CLI_OPTIONS, "--epochs", "1", "--out", out]
    failed = invoke(args)
    assert failed.exit_code == 1, failed.output
    said = " ".join(failed.stderr.split())
    assert f"Error: {out}: the evaluation of epoch 1 failed (RuntimeError" in said
    assert f"the epoch is saved in last.pt, and `alrp train --resume {out}`" in said
    assert "Traceback" not in failed.output
    assert not (out / "best.pt").exists() and not (out / "eval").exists()
    config = (out / "config.json").read_bytes()

    monkeypatch.setattr(library, "evaluate_epoch", evaluate)
    resumed = invoke(["train", "--resume", out])
    assert resumed.exit_code == 0, resumed.output
    assert (out / "config.json").read_bytes() == config  # kept byte for byte on resume
    assert "evaluating epoch 1 (it did not finish)" in " ".join(resumed.stderr.split())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["type"], r["iter"]) for r in records if r["type"] != "step"] == [
        ("epoch", 2),
        ("eval", 2),
    ]
    assert (out / "eval" / "epoch_001" / "summary.json").is_file()
    state = torch.load(out / "last.pt", weights_only=True)["train_state"]
    assert state["epoch"] == 1 and state["global_iter"] == 2 and not state["eval_pending"]
    assert (out / "best.pt").read_bytes() == (out / "last.pt").read_bytes()
