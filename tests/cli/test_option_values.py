"""Option values are checked (NaN, ranges, one seed range everywhere), and a closed pipe
is a quiet success."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.main import get_command

from alrp_cli.cli.app import app
from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, invoke


def _commands_with(option: str) -> list[list[str]]:
    found = []

    def walk(cmd, words: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*words, name])
        if any(option in p.opts for p in getattr(cmd, "params", [])):
            found.append(words)

    walk(get_command(app), [])
    return found


def test_every_seed_option_takes_the_same_range() -> None:
    commands = _commands_with("--seed")
    assert {" ".join(c) for c in commands} >= {"train", "check-balance", "bench", "data synth"}
    for words in commands:
        for bad in ("-1", str(2**32)):
            assert_refused(invoke([*words, "--seed", bad]), "--seed")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    "args",
    [["train", "--lr"], ["train", "--sb-init"], ["check-balance", "--tolerance"],
     ["analyze", "x.json", "--gt", "y.json", "--iou-threshold"]],
)  # fmt: skip
def test_non_finite_numbers_are_refused(args: list[str], value: str) -> None:
    assert_refused(invoke([*args, value]), args[-1], "not a finite number")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--score-threshold", "1.5"], "--score-threshold"),
        (["--score-threshold", "-0.1"], "--score-threshold"),
        (["--sb-init", "0"], "--sb-init: must be > 0"),
        (["--sb-init", "-3"], "--sb-init: must be > 0"),
        (["--nms-iou", "0"], "--nms-iou"),
    ],
)
def test_train_values(world: World, tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "run"
    assert_refused(invoke(["train", "--data", world.data, *TINY_CLI_OPTIONS, *extra, "--out", out]),
                   message)  # fmt: skip
    assert not out.exists()


def test_predict_score_threshold(world: World, tmp_path: Path) -> None:
    args = ["predict", world.checkpoint, "--images", world.val_images, "-o", tmp_path / "p.json"]
    assert_refused(invoke([*args, "--score-threshold", "2"]), "--score-threshold")


def test_a_negative_delta_in_a_recorded_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "li.pt"
    batch = {"logits": torch.randn(10), "targets": torch.tensor([1] + [0] * 9, dtype=torch.int8),
             "loc_errors": torch.rand(1)}  # fmt: skip
    torch.save({"version": 1, "batches": [batch], "meta": {"delta": -0.5}}, path)
    assert_refused(invoke(["check-balance", "--from", path]), path, "delta")
    # an explicit --delta still works for such a file
    assert invoke(["check-balance", "--from", path, "--delta", "1"]).exit_code == 0


def test_a_closed_pipe_is_a_quiet_success(world: World) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "alrp_cli", "analyze", str(world.predictions),
         "--gt", str(world.val_ann), "--top", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` that has read enough
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
