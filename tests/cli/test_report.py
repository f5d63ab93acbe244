"""`alrp report` through the CLI: a full run on the fixtures, and bad inputs exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from tests.helpers.paths import REPO

FIX = REPO / "tests" / "fixtures" / "report"
runner = CliRunner()


def test_report_over_every_kind_of_input(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["report", str(FIX / "analysis.json"), str(FIX / "balance.json"), str(FIX / "run_alrp")]
    args += [
        "--out",
        str(out),
        "--format",
        "png",
        "--dpi",
        "30",
        "--json",
        str(tmp_path / "r.json"),
    ]
    args += ["--label", "toy", "--label", "bal", "--label", "my run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Report figures" in result.stdout and "Training runs" in result.stdout
    manifest = json.loads((tmp_path / "r.json").read_text())
    figures = {f["key"]: f for f in manifest["figures"]}
    assert len(figures) == 8 and all(f["skipped"] is None for f in figures.values())
    for fig in figures.values():
        png = Path(fig["files"]["png"])
        assert png.parent == out / "figures" and imread(png).size > 0
        assert set(fig["files"]) == {"png"}
    assert [row[0] for row in manifest["tables"][0]["rows"]] == ["toy/alrp", "toy/focal"]
    assert manifest["tables"][2]["rows"][0][0] == "my run"
    assert (out / "index.html").is_file() and (out / "index.md").is_file()


def _bad(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "out"
    result = runner.invoke(app, ["report", *args, "--out", str(out), "--dpi", "30"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.rglob("*")), "bad input wrote files"
    return result.stderr


def test_missing_input(tmp_path: Path) -> None:
    err = _bad(tmp_path, str(tmp_path / "nope.json"))
    assert err == f"Error: {tmp_path / 'nope.json'}: no such file or directory\n"


def test_unknown_json(tmp_path: Path) -> None:
    path = tmp_path / "coco.json"
    path.write_text('{"images": [], "annotations": []}')
    err = _bad(tmp_path, str(path))
    assert err.startswith(f"Error: {path}: not an analysis JSON") and err.count("\n") == 1


def test_folder_that_is_not_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert "not a run directory (no metrics.jsonl)" in _bad(tmp_path, str(folder))


def test_bad_format_and_label_count(tmp_path: Path) -> None:
    analysis = str(FIX / "analysis.json")
    assert "--format: gif" in _bad(tmp_path, analysis, "--format", "png,gif")
    assert "labels: 2 given for 1 inputs" in _bad(
        tmp_path, analysis, "--label", "a", "--label", "b"
    )


def test_corrupt_csv_writes_nothing(tmp_path: Path) -> None:
    for name in ("analysis.json", "alrp.detections.csv", "focal.detections.csv"):
        shutil.copy(FIX / name, tmp_path / name)
    (tmp_path / "focal.detections.csv").write_text("image_id,score\n1,0.5\n")
    err = _bad(tmp_path, str(tmp_path / "analysis.json"))
    assert "focal.detections.csv: missing column(s) category, iou, status" in err


def test_bad_metrics_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIX / "run_focal", run)
    (run / "metrics.jsonl").write_text('{"type": "step", "iter": 1}\nnot json\n')
    assert "metrics.jsonl: line 2: not valid JSON" in _bad(tmp_path, str(run))


@pytest.mark.parametrize("value", ["0", "5000"])
def test_dpi_out_of_range(tmp_path: Path, value: str) -> None:
    result = runner.invoke(
        app, ["report", str(FIX / "balance.json"), "--out", str(tmp_path), "--dpi", value]
    )
    assert result.exit_code == 2


def test_out_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = runner.invoke(app, ["report", str(FIX / "balance.json"), "--out", str(target)])
    assert result.exit_code == 2 and "--out must be a folder, but a file is there" in result.stderr
    assert target.read_text() == "x"


def test_o_is_not_a_spelling_of_out(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(FIX / "balance.json"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "No such option: -o" in result.stderr
    assert not (tmp_path / "r").exists()
