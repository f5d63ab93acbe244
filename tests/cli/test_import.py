"""`alrp import`: an official mmdetection checkpoint becomes a run directory that `alrp
predict` and `alrp analyze` accept; a wrong file, a missing or an extra tensor, and a
checkpoint without its config each exit 2 with one line and create nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from alrp_cli.detection.data import coco_layout
from tests.helpers.tiny_training import make_tiny_coco
from tests.helpers.weights import MMDET_CONFIG, mmdet_checkpoint, save_legacy

runner = CliRunner()


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An official-style checkpoint whose classifier bias makes every score 0.5."""
    checkpoint = mmdet_checkpoint()
    checkpoint["state_dict"]["bbox_head.retina_cls.bias"].zero_()
    path = tmp_path_factory.mktemp("released") / "alrp_r18_maxiou.pth"
    save_legacy(checkpoint, path)
    return path


def _one_line_error(result: object) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    (line,) = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert line.startswith("Error: ")
    return line


def test_import_then_predict_then_analyze(released: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["import", str(released), "--out", str(run), "--json", str(tmp_path / "s.json")]
    )
    assert result.exit_code == 0, result.output
    assert "alrp import" in result.stdout and f"alrp predict {run}" in result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["loss"] == "alrp" and summary["classes"] == 3 and summary["tensors"] == 156
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json"]
    paths = coco_layout(make_tiny_coco(tmp_path / "coco"))
    predictions = tmp_path / "pred.json"
    torch.set_num_threads(1)
    result = runner.invoke(
        app,
        [
            "predict",
            str(run),
            "--images",
            str(paths.val_images),
            "-o",
            str(predictions),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    records = json.loads(predictions.read_text())
    assert records and {r["category_id"] for r in records} <= {
        1,
        2,
        3,
    }  # COCO's person, bicycle, car
    result = runner.invoke(app, ["analyze", str(predictions), "--gt", str(paths.val_ann)])
    assert result.exit_code == 0, result.output


def test_wrong_file_missing_and_extra_tensors_exit_2(released: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    missing = mmdet_checkpoint()
    del missing["state_dict"]["bbox_head.retina_reg.bias"]
    save_legacy(missing, tmp_path / "missing.pth")
    extra = mmdet_checkpoint()
    extra["state_dict"]["bbox_head.retina_iou.weight"] = torch.zeros(6, 32, 3, 3)
    torch.save(extra, tmp_path / "extra.pth")  # today's zip format reads too
    torch.save({"model": {}}, tmp_path / "other.pth")
    cases = {
        "notes.pth": "not a PyTorch file",
        "other.pth": "not an mmdetection checkpoint (no state_dict of tensors)",
        "missing.pth": "do not fit the model of its config; 1 missing: bbox_head.retina_reg.bias",
        "extra.pth": "1 unused: bbox_head.retina_iou.weight",
    }
    for name, message in cases.items():
        out = tmp_path / f"run-{name}"
        line = _one_line_error(
            runner.invoke(app, ["import", str(tmp_path / name), "--out", str(out)])
        )
        assert message in line, line
        assert not out.exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    line = _one_line_error(runner.invoke(app, ["import", str(released), "--out", str(taken)]))
    assert "--out is not empty" in line and (taken / "mine.txt").read_text() == "keep"


def test_a_checkpoint_without_its_config_takes_the_official_file(tmp_path: Path) -> None:
    save_legacy(mmdet_checkpoint(config=None), tmp_path / "bare.pth")
    line = _one_line_error(
        runner.invoke(app, ["import", str(tmp_path / "bare.pth"), "--out", str(tmp_path / "a")])
    )
    assert "holds no config (meta['config']); give it with --config FILE" in line
    # The official layout: configs/alrp_loss/x.py with _base_ files in configs/_base_/.
    model, rest = MMDET_CONFIG.split("train_cfg = ", 1)
    (tmp_path / "configs" / "_base_").mkdir(parents=True)
    (tmp_path / "configs" / "alrp_loss").mkdir()
    (tmp_path / "configs" / "_base_" / "rest.py").write_text("train_cfg = " + rest)
    config = tmp_path / "configs" / "alrp_loss" / "x.py"
    config.write_text("_base_ = ['../_base_/rest.py']\n" + model)
    result = runner.invoke(
        app,
        [
            "import",
            str(tmp_path / "bare.pth"),
            "--out",
            str(tmp_path / "b"),
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["eval"]["test_scale"] == [833, 500]
