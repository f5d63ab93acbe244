"""A tiny training configuration shared by the detection and CLI tests."""

from __future__ import annotations

from pathlib import Path

from alrp_cli.config.training import TrainConfig


def tiny_config(data: Path, out: Path, **overrides: object) -> TrainConfig:
    """A configuration that trains in about a second per epoch on a CPU core."""
    values: dict[str, object] = {
        "data": str(data),
        "out": str(out),
        "backbone": "resnet18",
        "head_channels": 32,
        "image_size": 64,
        "batch_size": 4,
        "epochs": 2,
        "lr": 0.02,
        "lr_batch": 4,
        "warmup_iters": 2,
        "eval_every": 100,
        "log_every": 1,
        "device": "cpu",
    }
    values.update(overrides)
    return TrainConfig.from_options(**values)


def make_tiny_coco(folder: Path) -> Path:
    """8 training and 4 validation synthetic images of 64 px, in the COCO layout."""
    from alrp_cli.detection.data import make_synthetic_coco

    return make_synthetic_coco(folder, num_train=8, num_val=4, image_size=64)


TINY_CLI_OPTIONS = [
    "--backbone", "resnet18", "--head-channels", "32", "--image-size", "64",
    "--batch-size", "4", "--lr", "0.02", "--lr-batch", "4", "--warmup-iters", "2",
    "--log-every", "1", "--device", "cpu", "--threads", "1",
]  # fmt: skip
