"""Every option of a training run, and how unset options resolve.

Options left ``None`` resolve by preset: with no dataset given (or a folder written by
``alrp data synth``) the run trains on the synthetic shapes dataset with a small
configuration that finishes on a laptop CPU; with any other COCO-format dataset the
defaults are the paper's configuration (ResNet-50, 512 px, ATSS, 100 epochs, learning rate
0.008 at batch 32). ``config.json`` in the run directory holds the resolved values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alrp_cli.errors import UserError

# Paper (COCO) configuration and the small CPU configuration for the synthetic dataset.
PRESETS: dict[str, dict[str, Any]] = {
    "coco": {
        "backbone": "resnet50",
        "head_channels": 256,
        "image_size": 512,
        "batch_size": 32,
        "epochs": 100,
        "lr": 0.008,
        "warmup_iters": 500,
    },
    "synthetic": {
        "backbone": "resnet18",
        "head_channels": 64,
        "image_size": 128,
        "batch_size": 16,
        "epochs": 8,
        "lr": 0.04,
        "warmup_iters": 100,
    },
}
CHOICES = {
    "loss": ("alrp", "ap", "focal"),
    "assigner": ("atss", "maxiou"),
    "backbone": ("resnet18", "resnet34", "resnet50", "resnet101"),
    "device": ("auto", "cpu", "cuda"),
    "ranking": ("global", "local"),
    "amp_dtype": ("auto", "bfloat16", "float16"),
}


@dataclass
class TrainConfig:
    """Every option of ``alrp train`` (see docs/training.md)."""

    # data
    data: str | None = None
    train_ann: str | None = None
    val_ann: str | None = None
    train_images: str | None = None
    val_images: str | None = None
    skip_bad_images: bool = False
    # model
    loss: str = "alrp"
    assigner: str = "atss"
    backbone: str | None = None
    pretrained: bool = False
    head_channels: int | None = None
    group_norm: bool = True
    image_size: int | None = None
    # optimisation
    batch_size: int | None = None
    epochs: int | None = None
    lr: float | None = None
    lr_batch: int = 32
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int | None = None
    warmup_ratio: float = 1.0 / 3.0
    lr_steps: list[float] = field(default_factory=lambda: [0.75, 0.95])
    lr_gamma: float = 0.1
    grad_clip: float | None = None
    sb_init: float = 50.0
    sb_fixed: bool = False
    # inference
    pre_nms_topk: int = 1000
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100
    # run
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "auto"
    # several processes (torchrun): world_size and backend are recorded, not options
    ranking: str = "global"
    nproc: int = 1
    world_size: int = 1
    backend: str | None = None
    seed: int = 0
    workers: int = 0
    threads: int | None = None
    eval_every: int = 1
    log_every: int = 20
    record_loss_inputs: int = 0
    out: str | None = None
    resume: str | None = None

    @property
    def preset(self) -> str:
        """'synthetic' with no dataset given or a ``--data`` folder written by ``alrp data
        synth`` (it holds ``alrp-synth.json``), 'coco' otherwise."""
        from alrp_cli.detection.data.synthetic import MARKER

        if self.data is not None and (Path(self.data) / MARKER).is_file():
            return "synthetic"
        given = (self.data, self.train_ann, self.val_ann, self.train_images, self.val_images)
        return "coco" if any(v is not None for v in given) else "synthetic"

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` preset option filled in, validated."""
        values = dataclasses.asdict(self)
        for key, value in PRESETS[self.preset].items():
            if values[key] is None:
                values[key] = value
        cfg = TrainConfig(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first impossible option value."""
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise UserError(f"--{name.replace('_', '-')}: {value!r} is not one of {allowed}")
        positive = ("head_channels", "image_size", "batch_size", "epochs", "lr", "lr_batch")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"--{name.replace('_', '-')}: must be > 0, got {value}")
        for name in ("eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')}: must be >= 1")
        for name in ("workers", "record_loss_inputs", "max_detections"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')}: must be >= 0")
        if self.image_size is not None and self.image_size % 32:
            raise UserError(f"--image-size: must be a multiple of 32, got {self.image_size}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise UserError(f"--grad-clip: must be > 0, got {self.grad_clip}")
        if self.sb_init <= 0:
            raise UserError(f"--sb-init: must be > 0, got {self.sb_init}")
        if not 0 <= self.score_threshold <= 1:
            raise UserError(f"--score-threshold: must be in [0, 1], got {self.score_threshold}")
        if not 0 < self.nms_iou <= 1:
            raise UserError(f"--nms-iou: must be in (0, 1], got {self.nms_iou}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads: must be >= 1, got {self.threads}")
        if self.seed < 0:
            raise UserError(f"--seed: must be >= 0, got {self.seed}")
        if self.nproc < 1:
            raise UserError(f"--nproc: must be >= 1, got {self.nproc}")
        self.check_world_size(self.world_size)

    def check_world_size(self, world_size: int) -> None:
        """The global ``batch_size`` must split evenly over ``world_size`` processes."""
        if self.batch_size is not None and self.batch_size % world_size:
            raise UserError(
                f"--batch-size {self.batch_size} (the global batch) does not split over "
                f"{world_size} processes; give a multiple of {world_size}"
            )

    @property
    def scaled_lr(self) -> float:
        """Learning rate at this batch size: ``lr × batch_size / lr_batch`` (linear rule)."""
        assert self.lr is not None and self.batch_size is not None
        return self.lr * self.batch_size / self.lr_batch

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON- and ``weights_only``-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"config: unknown options {unknown}")
        return cls(**values)
