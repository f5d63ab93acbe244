"""`alrp train` through the CLI: a tiny run, its JSON, resume, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from tests.detection.tiny import TINY_CLI_OPTIONS, make_tiny_coco

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
    assert (
        config["loss"] == "focal"
        and config["threads"] == 1
        and config["lr_steps"]
        == [
            0.75,
            0.95,
        ]
    )
    for name in ("metrics.jsonl", "last.pt", "best.pt", "eval/epoch_001/predictions.json"):
        assert (out / name).is_file(), name
    # The same directory again without --resume is refused; with --resume it is complete.
    again = runner.invoke(app, [*args, *TINY_CLI_OPTIONS])
    assert again.exit_code == 2 and "--resume" in again.stderr
    resumed = runner.invoke(app, ["train", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "/nonexistent/coco"], "/nonexistent/coco: no such directory"),
        (["--loss", "hinge"], "--loss: 'hinge' is not one of"),
        (["--lr-steps", "0.5,x"], "--lr-steps"),
        (["--resume", "/nonexistent/run"], "/nonexistent/run: no such run directory to resume"),
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
