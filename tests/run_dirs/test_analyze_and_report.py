"""`alrp analyze RUN_DIR` and `alrp report RUN_DIR [--epoch N]` through the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from tests.helpers.run_dirs import make_run

runner = CliRunner()


def _runs(tmp_path: Path, coco: Path) -> tuple[Path, Path]:
    gt = str(coco / "instances_val2014_100.json")
    dets = coco / "detections_fakebbox100.json"
    half = tmp_path / "half.json"
    half.write_text(json.dumps(json.loads(dets.read_text())[1::2]))
    a = make_run(tmp_path / "alrp", {1: 0.3}, gt, half)
    (a / "eval" / "epoch_002").mkdir()
    (a / "eval" / "epoch_002" / "predictions.json").write_text(dets.read_text())
    (a / "eval" / "epoch_002" / "summary.json").write_text(json.dumps({"gt": gt, "AP": 0.5}))
    b = make_run(tmp_path / "focal", {1: 0.3}, gt, half)
    return a, b


def test_analyze_run_directories_without_gt(tmp_path: Path, shared_coco: Path) -> None:
    a, b = _runs(tmp_path, shared_coco)
    out = tmp_path / "a.json"
    result = runner.invoke(app, ["analyze", str(a), str(b), "--json", str(out), "--top", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["gt"] == str(shared_coco / "instances_val2014_100.json")
    assert [f["label"] for f in doc["files"]] == ["alrp", "focal"]
    assert doc["files"][0]["path"] == str(a / "eval" / "epoch_002" / "predictions.json")
    assert doc["files"][0]["n_detections"] == 734 and doc["files"][1]["n_detections"] == 367
    args = ["analyze", str(a), "--epoch", "1", "--json", str(out), "--top", "1"]
    assert runner.invoke(app, args).exit_code == 0
    assert json.loads(out.read_text())["files"][0]["n_detections"] == 367
    bad = runner.invoke(app, ["analyze", str(a), "--epoch", "7"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.stderr == f"Error: {a}: no evaluation of epoch 7 (evaluated epochs: 1, 2)\n"


@pytest.mark.slow  # draws every figure; tests/analysis/test_report.py covers it by default
def test_report_of_run_directories_draws_the_analysis_figures(
    tmp_path: Path, shared_coco: Path
) -> None:
    a, b = _runs(tmp_path, shared_coco)
    out, manifest = tmp_path / "report", tmp_path / "r.json"
    args = ["report", str(a), str(b), "--out", str(out), "--format", "png", "--dpi", "30"]
    result = runner.invoke(app, [*args, "--epoch", "1", "--json", str(manifest)])
    assert result.exit_code == 0, result.output
    doc = json.loads(manifest.read_text())
    drawn = [f["key"] for f in doc["figures"] if f["skipped"] is None]
    assert drawn == [
        "score_vs_iou",
        "iou_by_score_decile",
        "per_class_spearman",
        "olrp_components",
        "pr_curve",
        "training_curves",
        "comparison",
    ]
    runs = [s for s in doc["inputs"] if s["kind"] == "run"]
    assert [s["analysed"] for s in runs] == ["eval/epoch_001 (epoch 1; AP 0.300)"] * 2


def test_a_turned_table_has_a_blank_corner_not_run_over_run() -> None:
    from alrp_cli.cli.report import _rich

    columns = ["run", *(f"c{k}" for k in range(8))]
    table = _rich("Training runs", columns, [["run", *"12345678"]])
    assert [c.header for c in table.columns] == ["", "run"]  # was "run | run"
    assert [c._cells[0] for c in table.columns] == ["c0", "1"]
