"""Checkpoints as inputs of `alrp predict`, `alrp check-balance --from` and `alrp train
--resume`: one way to read them (a config that does not describe the weights, a garbage,
empty or damaged file: one line, never advice to set weights_only=False); predict takes a
checkpoint, a run directory or a single image; resuming a finished run says what it ignores
and rewrites nothing."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, digest, invoke


def _predict(world: World, checkpoint: Path, out: Path, *extra: object):
    return invoke(["predict", checkpoint, "--images", world.val_images, "-o", out, *extra])


def test_config_that_does_not_describe_the_weights(world: World, tmp_path: Path) -> None:
    state = torch.load(world.checkpoint, weights_only=True)
    state["config"]["model"]["backbone"] = "resnet34"
    bad = tmp_path / "resnet34.pt"
    torch.save(state, bad)
    before = digest(bad)
    line = assert_refused(_predict(world, bad, tmp_path / "p.json"), bad, "do not match")
    assert "missing" in line
    assert digest(bad) == before and not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("form", ["flat", "unknown setting"])
def test_a_config_of_another_form_is_one_line(world: World, tmp_path: Path, form: str) -> None:
    state = torch.load(world.checkpoint, weights_only=True)
    if form == "flat":  # every setting at the top level, not in its group
        state["config"] = {k: v for group in state["config"].values() for k, v in group.items()}
        message = "not an alrp training configuration: expected the groups data, model"
    else:
        state["config"]["model"]["depth"] = 50
        message = "model: unknown settings ['depth']"
    bad = tmp_path / "other.pt"
    torch.save(state, bad)
    assert_refused(_predict(world, bad, tmp_path / "p.json"), bad, message)
    assert not (tmp_path / "p.json").exists()


GARBAGE = {
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "text": (lambda p: p.write_text("nope"), "not a PyTorch file"),
    "pickle": (lambda p: p.write_bytes(pickle.dumps({"model": 1})), "not a PyTorch file"),
    "objects": (lambda p: torch.save({"model": Path("x"), "config": {}}, p), "holds objects"),
    "truncated": (None, "damaged or truncated"),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_a_garbage_checkpoint_is_one_line_without_unsafe_advice(
    world: World, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "bad.pt"
    make, message = GARBAGE[kind]
    if make is None:
        data = world.checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        make(path)
    line = assert_refused(_predict(world, path, tmp_path / "p.json"), path, message)
    assert "weights_only" not in line
    result = invoke(["check-balance", "--from", path])
    assert "weights_only" not in assert_refused(result, path)


def test_predict_takes_one_image_file(world: World, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    args = ["predict", world.checkpoint, "--images", world.image, "-o", out, "--json"]
    result = invoke([*args, tmp_path / "s.json"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["images"] == 1


def test_predict_takes_a_run_directory(world: World, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert_refused(_predict(world, run, tmp_path / "p.json"), run, "no best.pt or last.pt")
    shutil.copyfile(world.checkpoint, run / "best.pt")
    result = _predict(world, run, tmp_path / "p.json")
    assert result.exit_code == 0, result.output


def test_resume_takes_the_checkpoint_file_and_says_what_it_ignores(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", world.data, *TINY_CLI_OPTIONS, "--epochs", "1"]
    first = invoke([*args, "--eval-every", "5", "--out", out])
    assert first.exit_code == 0, first.output
    before = digest(out)
    again = invoke(["train", "--resume", out / "last.pt", "--epochs", "3", "--lr", "1"])
    assert again.exit_code == 0, again.output
    said = " ".join(again.stderr.split())  # Rich wraps long lines
    assert "ignoring --epochs, --lr" in said
    assert "the run is complete (1 of 1 epochs)" in said
    assert digest(out) == before, "a finished run is left alone: no file rewritten"
    assert "━" not in again.stderr, "and no progress bar drawn"
