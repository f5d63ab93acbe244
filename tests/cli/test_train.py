"""`alrp train` through the CLI: a tiny run, its JSON, resume, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from tests.helpers.tiny_training import TINY_CLI_OPTIONS, make_tiny_coco

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_coco(tmp_path_factory.mktemp("cli-train") / "coco")


def test_tiny_run_writes_the_run_directory_and_json(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny), "--epochs", "1", "--loss", "focal", "--out", str(out)]
    result = runner.invoke(app, [*args, *TINY_CLI_OPTIONS, "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "AP" in result.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["run_dir"] == str(out) and doc["epochs_done"] == 1 and doc["global_iter"] == 2
    assert not doc["interrupted"]
    assert set(doc["last_eval"]) >= {"AP", "AP50", "AP75", "moLRP"}
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["loss"] == "focal" and config["runtime"]["threads"] == 1
    assert config["optim"]["lr_steps"] == [0.75, 0.95]
    for name in ("metrics.jsonl", "last.pt", "best.pt", "eval/epoch_001/predictions.json"):
        assert (out / name).is_file(), name
    # The same directory again without --resume is refused; with --resume it is complete.
    again = runner.invoke(app, [*args, *TINY_CLI_OPTIONS])
    assert again.exit_code == 2 and "--resume" in again.stderr
    resumed = runner.invoke(app, ["train", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output


def test_rank_and_sort_trains_with_its_box_weight_set_each_step(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "rs"
    args = ["train", "--data", str(tiny), "--epochs", "2", "--loss", "rs", "--out", str(out)]
    result = runner.invoke(app, [*args, *TINY_CLI_OPTIONS, "--record-loss-inputs", "2"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    # synthetic preset, anchors of RS-ATSS (3 scales per octave), its NMS only on COCO
    model = config["model"]
    assert (model["anchor_scales_per_octave"], model["anchor_ratios"]) == (3, [1.0])
    assert model["group_norm"] is True and config["eval"]["nms_iou"] == 0.5
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "step"]
    assert len(steps) == 4
    for r in steps:  # cls = ranking + sorting, loc = the score-weighted GIoU loss
        assert 0 < r["cls"] < 2 and 0 < r["loc"] < 2
        assert r["sb_weight"] == pytest.approx(r["cls"] / r["loc"], rel=1e-6)
        assert r["loss"] == pytest.approx(2 * r["cls"], rel=1e-6)  # both parts weigh the same
    assert len({r["sb_weight"] for r in steps}) == len(steps)  # recomputed every step
    # The recorded inputs carry each positive's IoU, and both parts of the update hold.
    report = tmp_path / "balance.json"
    res = runner.invoke(
        app,
        [
            "check-balance",
            "--from",
            str(out / "loss_inputs.pt"),
            "--loss",
            "rs",
            "--json",
            str(report),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(report.read_text())
    assert doc["config"]["deltas"] == [0.5] and doc["notes"] == []
    assert [(e["part"], e["passed"], e["trials"]) for e in doc["losses"]] == [
        ("ranking", True, 2),
        ("sorting", True, 2),
    ]
    assert all(t["sum_pos"] > 0 for t in doc["trials"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "/nonexistent/coco"], "/nonexistent/coco: no such directory"),
        (["--loss", "hinge"], "--loss: 'hinge' is not one of"),
        (["--lr-steps", "0.5,x"], "--lr-steps"),
        (["--resume", "/nonexistent/run"], "/nonexistent/run: no such run directory to resume"),
        (["--ranking", "ring"], "--ranking: 'ring' is not one of"),
        (["--amp-dtype", "fp8"], "--amp-dtype: 'fp8' is not one of"),
        (["--nproc", "0"], "--nproc: must be >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(extra: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), *extra])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "last.pt").exists()


def test_an_interrupted_run_exits_128_plus_the_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    import alrp_cli.detection.train as library

    def interrupted(config, *, on_event=None):
        return library.TrainResult(
            run_dir=tmp_path / "run",
            epochs_done=0,
            global_iter=3,
            interrupted=True,
            signal=int(signal.SIGTERM),
            best_ap=None,
            last_eval=None,
            seconds=1.0,
        )

    monkeypatch.setattr(library, "train", interrupted)
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 128 + signal.SIGTERM
    assert f"alrp train --resume {tmp_path / 'run'}" in result.stderr.replace("\n", "")


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused() -> None:
    from alrp_cli.config.training import TrainConfig
    from alrp_cli.errors import UserError

    TrainConfig.from_options(batch_size=6).check_world_size(3)
    with pytest.raises(UserError, match=r"--batch-size 6 \(the global batch\) does not split"):
        TrainConfig.from_options(batch_size=6).check_world_size(4)


def test_a_diverging_alrp_run_exits_1_naming_where_and_keeps_last_pt(
    tiny: Path, tmp_path: Path
) -> None:
    """--lr 1e4 blows the weights up in epoch 2: exit 1 naming the epoch and iteration."""
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny), "--epochs", "2", "--eval-every", "100"]
    result = runner.invoke(app, [*args, *TINY_CLI_OPTIONS, "--lr", "1e4", "--out", str(out)])
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: non-finite loss at epoch 2, iteration 3: loss=")
    assert "ValueError" not in result.output and "Traceback" not in result.output
    assert (out / "last.pt").is_file()


@pytest.mark.slow
def test_nproc_2_trains_with_two_processes(tiny: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "alrp_cli", "train", "--data", str(tiny), "--epochs", "1"]
    cmd += [*TINY_CLI_OPTIONS, "--nproc", "2", "--ranking", "local", "--out", str(out)]
    done = subprocess.run(
        cmd, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.count("run directory:") == 1  # rank 0 alone prints
    config = json.loads((out / "config.json").read_text())
    rt = config["runtime"]
    assert rt["world_size"] == 2 and config["optim"]["ranking"] == "local" and rt["nproc"] == 2
