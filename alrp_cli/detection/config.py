"""Every option of a training run, and how unset options resolve.

Options left ``None`` resolve by preset: with no dataset given (or a folder written by
``alrp data synth``) the run trains on the synthetic shapes dataset with a small
configuration that finishes on a laptop CPU; with any other COCO-format dataset the
defaults are the official configuration of the chosen loss (its recipe in
:mod:`alrp_cli.registry` over :data:`PRESETS`; for aLRP: ResNet-50, 512 px, ATSS, no head
normalisation, 100 epochs, learning rate 0.008 at batch 32).
``config.json`` in the run directory and ``alrp train --print-config`` show the resolved values.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alrp_cli import registry
from alrp_cli.errors import UserError

# Sources: the official aLRP repository, github.com/kemaloksuz/aLRPLoss at commit 2cfaa8e
# (mmdetection 2.x); docs/training.md has the table. Abbreviations:
# "ATSS cfg"    configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py
# "max-IoU cfg" configs/alrp_loss/alrp_loss_retinanet_r50_fpn_100e_coco500.py
# "AP cfg"      configs/alrp_loss/ap_loss_retinanet_r50_fpn_100e_coco500.py
# "RetinaNet base" configs/_base_/models/retinanet_r50_fpn.py
# "schedule_1x" configs/_base_/schedules/schedule_1x.py
# "coco500"     configs/_base_/datasets/coco500_detection_augm.py
PRESETS: dict[str, dict[str, Any]] = {
    "coco": {
        "assigner": "atss",  # ATSS cfg:42 (aLRP's headline model); per loss: its recipe
        "backbone": "resnet50",  # ATSS cfg:10
        # pretrained='torchvision://resnet50' (ATSS cfg:7): torchvision's ImageNet weights,
        # IMAGENET1K_V1 today; frozen stem and stage 1, BatchNorm in eval mode (ATSS cfg:13-15)
        "pretrained": True,
        "head_channels": 256,  # ATSS cfg:20, 29
        "group_norm": False,  # no norm_cfg in the towers: alrp_loss_retina_head.py:40
        "p6_from": "c5",  # add_extra_convs='on_input': ATSS cfg:22, RetinaNet base:19
        "image_size": 512,  # coco500:23 (training resize 512 x 512)
        "batch_size": 32,  # coco500:45 (8 per GPU) x 4 GPUs (README.md, "on 4 GPUs as we did")
        "lr_batch": 32,
        "epochs": 100,  # ATSS cfg:58
        "lr": 0.008,  # ATSS cfg:54
        "lr_steps": [0.75, 0.95],  # ATSS cfg:57 (epochs 75, 95)
        "warmup_iters": 500,  # schedule_1x:8
        "warmup_ratio": 0.001,  # schedule_1x:9
        "augmentation": "official",  # coco500:5-28 (detection/data/transforms.py)
        "test_scale": [833, 500],  # coco500:33 (keep ratio, :36; pad to 32, :39)
        "nms_iou": 0.5,  # ATSS cfg:50 (per loss: its recipe)
        # workers: default_workers() below (coco500:46 has 4 per GPU)
    },
    # The small CPU configuration: one recipe for every loss so that a comparison on it
    # varies the loss only. It differs from the official one where a 2-core CPU needs it
    # (ResNet-18, 64 channels, 128 px, 8 epochs, batch 16) and where training from scratch
    # at that budget needs it: GroupNorm in the towers and a gentler warmup (ratio 1/3) keep
    # a randomly initialised head stable at lr 0.04. Anchors and P6 are the official ones.
    "synthetic": {
        "assigner": "atss",
        "backbone": "resnet18",
        "pretrained": False,  # from scratch: the CPU preset downloads nothing
        "head_channels": 64,
        "group_norm": True,
        "p6_from": "c5",
        "image_size": 128,
        "batch_size": 16,
        "lr_batch": 32,
        "epochs": 8,
        "lr": 0.04,
        "lr_steps": [0.75, 0.95],
        "warmup_iters": 100,
        "warmup_ratio": 1.0 / 3.0,
        # Milder augmentation (no 4x expand, crops on 30% of the images) for a model learnt
        # from scratch in 8 epochs; test_scale is [image_size, image_size] (square images:
        # the same as a plain resize); no workers (0 is fastest here, docs/benchmarks.md).
        "augmentation": "mild",
        "workers": 0,
        "nms_iou": 0.5,
    },
}
# Values an older config.json lacks: what those runs were built with (so they resume).
LEGACY: dict[str, Any] = {"p6_from": "p5", "sb_period_epochs": 1}
# The same for the data options (test_scale: [image_size, image_size], then a plain resize).
LEGACY_DATA: dict[str, Any] = {"augmentation": "mild", "keep_empty_images": True}
# Data-loading workers per process on the COCO preset: at most this many (docs/benchmarks.md).
WORKERS_CAP = 8


def default_workers(nproc: int = 1) -> int:
    """Data-loading workers per process on the COCO preset.

    The CPUs this process may run on (``os.sched_getaffinity``), shared by the training
    processes of the node (``LOCAL_WORLD_SIZE`` under torchrun, else ``nproc``), less one
    for the process itself; at least 1, at most :data:`WORKERS_CAP`.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", nproc))
    return max(1, min(WORKERS_CAP, cpus // max(1, local) - 1))


CHOICES = {
    "loss": registry.names("train"),
    "assigner": ("atss", "maxiou"),
    "p6_from": ("c5", "p5"),
    "backbone": ("resnet18", "resnet34", "resnet50", "resnet101"),
    "device": ("auto", "cpu", "cuda"),
    "ranking": ("global", "local"),
    "amp_dtype": ("auto", "bfloat16", "float16"),
    "augmentation": ("official", "mild"),
}


def _check_choice(name: str, value: Any) -> None:
    """UserError naming the option unless ``value`` is None or one of its choices."""
    if value is not None and value not in CHOICES[name]:
        raise UserError(f"--{name.replace('_', '-')}: {value!r} is not one of {CHOICES[name]}")


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
    # False: the official filter_empty_gt=True (mmdet/datasets/custom.py:59, not set in coco500)
    keep_empty_images: bool = False
    augmentation: str | None = None  # "official" | "mild", by preset
    test_scale: list[int] | None = None  # [long, short] of the keep-ratio evaluation, by preset
    # model
    loss: str = registry.DEFAULT_LOSS
    assigner: str | None = None
    backbone: str | None = None
    pretrained: bool | None = None
    backbone_weights: str | None = None
    head_channels: int | None = None
    group_norm: bool | None = None
    p6_from: str | None = None
    anchor_scales_per_octave: int | None = None
    anchor_ratios: list[float] | None = None
    image_size: int | None = None
    # optimisation
    batch_size: int | None = None
    epochs: int | None = None
    lr: float | None = None
    lr_batch: int | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int | None = None
    warmup_ratio: float | None = None
    lr_steps: list[float] | None = None
    lr_gamma: float = 0.1
    grad_clip: float | None = None
    sb_init: float = 50.0
    sb_fixed: bool = False
    sb_period_epochs: int = 1
    # inference
    pre_nms_topk: int = 1000
    score_threshold: float = 0.05
    nms_iou: float | None = None  # by preset and loss (0.5; Rank & Sort on COCO: 0.6)
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
    workers: int | None = None  # per process; by preset (default_workers() on COCO)
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

    def resolved(self, preset: str | None = None) -> TrainConfig:
        """A copy with every ``None`` preset option filled in, validated.

        COCO preset: the official recipe of ``loss`` (its registry entry's recipe over
        :data:`PRESETS`); synthetic preset: one recipe for every loss. Anchors follow the
        loss and assigner in every preset (the recipe's, :meth:`Recipe.anchors_for`).
        ``preset`` overrides :attr:`preset` (a model imported without its data).
        ``backbone_weights`` implies ``pretrained``.
        """
        values = dataclasses.asdict(self)
        _check_choice("loss", values["loss"])
        recipe = registry.get(values["loss"], "train").recipe
        assert recipe is not None
        preset_name = preset or self.preset
        if values["backbone_weights"] is not None:
            if values["pretrained"] is False:
                raise UserError("--backbone-weights: contradicts --no-pretrained; give one")
            values["pretrained"] = True
        defaults = dict(PRESETS[preset_name])
        if preset_name == "coco":
            defaults = recipe.coco_values(defaults, values["assigner"])
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = list(value) if isinstance(value, list) else value
        if values["test_scale"] is None:  # synthetic: the training size, square
            values["test_scale"] = [values["image_size"]] * 2
        if values["workers"] is None:
            values["workers"] = default_workers(values["nproc"])
        _check_choice("assigner", values["assigner"])
        scales, ratios = recipe.anchors_for(values["assigner"])
        if values["anchor_scales_per_octave"] is None:
            values["anchor_scales_per_octave"] = scales
        if values["anchor_ratios"] is None:
            values["anchor_ratios"] = ratios
        cfg = TrainConfig(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first impossible option value."""
        for name in CHOICES:
            _check_choice(name, getattr(self, name))
        positive = ("head_channels", "image_size", "batch_size", "epochs", "lr", "lr_batch")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"--{name.replace('_', '-')}: must be > 0, got {value}")
        for name in ("eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')}: must be >= 1")
        for name in ("workers", "record_loss_inputs", "max_detections"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')}: must be >= 0")
        if self.image_size is not None and self.image_size % 32:
            raise UserError(f"--image-size: must be a multiple of 32, got {self.image_size}")
        if self.batch_size == 1 and self.image_size == 32 and self.pretrained is False:
            # BatchNorm trains here: at 32 px the last stage is 1 x 1, one value per channel
            raise UserError(
                "--batch-size 1 at --image-size 32: the backbone's BatchNorm would train on one "
                "value per channel (its last stage is 1 × 1); use --image-size 64 or more, or "
                "--batch-size 2 or more"
            )
        if self.test_scale is not None and (
            len(self.test_scale) != 2 or any(int(v) != v or v < 1 for v in self.test_scale)
        ):
            raise UserError(f"--test-scale: must be two positive integers, got {self.test_scale}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise UserError(f"--grad-clip: must be > 0, got {self.grad_clip}")
        if self.sb_init <= 0:
            raise UserError(f"--sb-init: must be > 0, got {self.sb_init}")
        if not 0 <= self.score_threshold <= 1:
            raise UserError(f"--score-threshold: must be in [0, 1], got {self.score_threshold}")
        if self.nms_iou is not None and not 0 < self.nms_iou <= 1:
            raise UserError(f"--nms-iou: must be in (0, 1], got {self.nms_iou}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads: must be >= 1, got {self.threads}")
        if self.seed < 0:
            raise UserError(f"--seed: must be >= 0, got {self.seed}")
        if self.nproc < 1:
            raise UserError(f"--nproc: must be >= 1, got {self.nproc}")
        if self.sb_period_epochs < 1:
            raise UserError(f"--sb-period-epochs: must be >= 1, got {self.sb_period_epochs}")
        if self.anchor_scales_per_octave is not None and self.anchor_scales_per_octave < 1:
            raise UserError("--anchor-scales-per-octave: must be >= 1")
        if self.anchor_ratios is not None and (
            not self.anchor_ratios or any(r <= 0 for r in self.anchor_ratios)
        ):
            raise UserError(f"anchor_ratios: must be positive numbers, got {self.anchor_ratios}")
        if self.warmup_ratio is not None and not 0 < self.warmup_ratio <= 1:
            raise UserError(f"warmup_ratio: must be in (0, 1], got {self.warmup_ratio}")
        self.check_world_size(self.world_size)

    def check_machine(self) -> None:
        """Raise :class:`UserError` for counts and sizes beyond this machine (see
        :mod:`alrp_cli.limits`): refused before a run starts, not as a million processes or
        an out-of-memory error later. Apart from :meth:`validate`, so that
        ``--print-config`` still shows a command meant for a larger machine."""
        from alrp_cli.limits import check_fits, check_per_core, cpu_count

        if self.threads is not None:
            check_per_core(self.threads, "--threads", what="threads")
        if self.workers is not None:
            check_per_core(self.workers, "--workers", what="worker processes")
        if self.nproc > 1:
            import torch

            most = max(torch.cuda.device_count(), cpu_count())
            if self.nproc > most:
                raise UserError(
                    f"--nproc {self.nproc}: more processes than this node has GPUs "
                    f"({torch.cuda.device_count()}) or CPU cores ({cpu_count()})"
                )
        device = None
        if self.device != "cpu":
            import torch

            device = "cuda" if torch.cuda.is_available() else None
        if self.head_channels is not None:  # the head's 2 x 4 conv 3 x 3 weights alone
            weights = 4 * 2 * 4 * 9 * self.head_channels**2
            what = f"the head's weights at {self.head_channels} channels"
            check_fits(weights, "--head-channels", what=what, device=device)
        if self.image_size is not None:  # one float32 input image alone
            what = f"input images of {self.image_size} × {self.image_size}"
            check_fits(4 * 3 * self.image_size**2, "--image-size", what=what, device=device)

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
        """Inverse of :meth:`to_dict`; unknown keys are an error. A resolved config written
        before an option existed gets the value those runs were built with (:data:`LEGACY`;
        the anchors they had: 3 scales per octave × 3 ratios with max-IoU)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"config: unknown options {unknown}")
        values = dict(values)
        if values.get("backbone") is not None and "p6_from" not in values:  # a resolved old one
            values.update(LEGACY)
            maxiou = values.get("assigner") == "maxiou"
            values["anchor_scales_per_octave"] = 3 if maxiou else 2
            values["anchor_ratios"] = [0.5, 1.0, 2.0] if maxiou else [1.0]
        if values.get("backbone") is not None:  # resolved before the data options existed
            for key, value in LEGACY_DATA.items():
                values.setdefault(key, value)
            if values.get("test_scale") is None and values.get("image_size") is not None:
                values["test_scale"] = [values["image_size"]] * 2
        return cls(**values)
