"""`alrp train` at the edges of what it can do: a last evaluation batch of one image works;
BatchNorm with one value per channel, and a default run directory where nothing can be
written, are each one ``Error:`` line and exit 2 with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alrp_cli import run_dir
from alrp_cli.errors import UserError
from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, digest, invoke


def test_evaluation_with_a_last_batch_of_one_image(world: World, tmp_path: Path) -> None:
    # 64 px: the coarsest level is 1 × 1, and GroupNorm's 32 groups of 32 channels hold one
    # value each; 4 validation images in batches of 3 leave a last batch of one image
    out = tmp_path / "run"
    args = ["train", "--data", world.data, *TINY_CLI_OPTIONS, "--group-norm", "--epochs", "1"]
    result = invoke([*args, "--batch-size", "3", "--out", out])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [1]


def test_a_batch_norm_of_one_value_per_channel_is_refused(world: World, tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = digest(world.data)
    args = ["train", "--data", world.data, *TINY_CLI_OPTIONS, "--image-size", "32"]
    result = invoke([*args, "--batch-size", "1", "--out", out])
    assert_refused(result, "--batch-size 1", "--image-size 64 or more")
    assert digest(world.data) == before
    assert not out.exists()


def test_the_default_run_directory_where_nothing_can_be_written(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/proc")  # like a read-only working directory: runs/ cannot be made
    before = digest(world.data)
    result = invoke(["train", "--data", world.data, *TINY_CLI_OPTIONS])
    assert_refused(result, "runs", "default runs/")
    assert digest(world.data) == before
    with pytest.raises(UserError, match="cannot create the default run directory there"):
        run_dir.create_run_dir(None, "alrp")  # the library says so too (under torchrun)
