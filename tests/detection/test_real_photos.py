"""`alrp train` on real photographs (scikit-image's bundled ones, JPEG, labelled by hand)
through the COCO preset's own code path: the official augmentation, keep-ratio evaluation,
JPEG decoding with a grayscale and a CMYK image, data-loading workers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from tests.helpers.photos import PHOTOS, write_photo_coco

TINY = ["--backbone", "resnet18", "--head-channels", "32", "--batch-size", "2",
        "--lr", "0.001", "--lr-batch", "2", "--epochs", "1", "--warmup-iters", "2",
        "--log-every", "1", "--device", "cpu", "--threads", "1",
        "--score-threshold", "0.001"]  # fmt: skip

runner = CliRunner()


def _backbone(folder: Path) -> list[str]:
    """The COCO preset's pretrained backbone from a local file (no download): a torchvision
    ResNet-18 state dict, randomly initialised here in place of the ImageNet weights."""
    import torch
    import torchvision

    path = folder / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return ["--backbone-weights", str(path)]


def _train(data: Path, out: Path, *options: str) -> dict:
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out),
                                 *_backbone(data.parent), *TINY, *options])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    data_cfg, model = config["data"], config["model"]
    assert data_cfg["augmentation"] == "official" and data_cfg["keep_empty_images"] is False
    assert config["runtime"]["workers"] >= 1  # the COCO preset loads in worker processes
    assert model["pretrained"] is True and model["backbone_weights"]
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r["type"] == "step"]
    assert len(losses) == len(PHOTOS) // 2 and all(math.isfinite(x) for x in losses)
    gt = json.loads((data / "annotations" / "instances_val2017.json").read_text())
    sizes = {i["id"]: (i["width"], i["height"]) for i in gt["images"]}
    predictions = json.loads((out / "eval" / "epoch_001" / "predictions.json").read_text())
    assert {p["image_id"] for p in predictions} == set(sizes)
    for p in predictions:  # mapped back to each photo's own pixels
        x, y, w, h = p["bbox"]
        width, height = sizes[p["image_id"]]
        assert min(x, y) >= -1e-3 and x + w <= width + 1e-3 and y + h <= height + 1e-3
    return config


def test_photos_train_through_the_coco_preset(tmp_path: Path) -> None:
    data = write_photo_coco(tmp_path / "photos")
    config = _train(data, tmp_path / "run", "--image-size", "128", "--test-scale", "192,128")
    assert config["eval"]["test_scale"] == [192, 128]


@pytest.mark.slow
def test_coco_sized_photos_train_at_the_official_scales(tmp_path: Path) -> None:
    data = write_photo_coco(tmp_path / "photos", size=(640, 480))
    config = _train(data, tmp_path / "run")
    assert config["data"]["image_size"] == 512 and config["eval"]["test_scale"] == [833, 500]
