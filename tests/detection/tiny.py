"""A tiny training configuration shared by the detection and CLI tests."""

from __future__ import annotations

from pathlib import Path

from alrp_cli.detection.config import TrainConfig


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
    return TrainConfig(**values)  # type: ignore[arg-type]
