"""Every setting of a training run, declared once, and how unset ones resolve.

The configuration is five groups, each a dataclass whose fields are declared with
:func:`~alrp_cli.config.settings.setting` (type, default, help, choices, bounds):
:class:`DataConfig`, :class:`ModelConfig`, :class:`OptimConfig`, :class:`EvalConfig` and
:class:`RuntimeConfig`, held by :class:`TrainConfig`. ``alrp train``'s options, their help,
``--print-config``, ``config.json`` (``{"data": {...}, "model": {...}, ...}``) and
:meth:`TrainConfig.validate` all come from this declaration; a checkpoint's ``model`` and
``eval`` groups are what ``alrp predict`` rebuilds the detector from.

Settings left ``None`` resolve by preset (:data:`~alrp_cli.config.presets.PRESETS`):
with no dataset given (or a folder written by ``alrp data synth``) the run trains on the
synthetic shapes dataset with a small configuration that finishes on a laptop CPU; with
any other COCO-format dataset the defaults are the official configuration of the chosen
loss (its recipe in :mod:`alrp_cli.registry` over ``PRESETS["coco"]``; for aLRP:
ResNet-50, 512 px, ATSS, no head normalisation, 100 epochs, learning rate 0.008 at batch
32).

No torch at import time: ``alrp train --help`` reads this module.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alrp_cli import registry
from alrp_cli.config.presets import PRESETS, default_workers
from alrp_cli.config.settings import (
    Setting,
    option_flag,
    parse_numbers,
    setting,
    setting_of,
    type_problem,
)
from alrp_cli.device import DEVICE_HELP, device_problem
from alrp_cli.errors import UserError
from alrp_cli.limits import SEED_MAX


def _fractions(text: str, option: str) -> list[float]:
    return parse_numbers(text, option, float, "a comma-separated list of numbers")


def _scale(text: str, option: str) -> list[int]:
    return parse_numbers(text, option, int, "LONG,SHORT (two positive integers)")


def _fractions_problem(steps: list[float]) -> str | None:
    bad = any(not 0 < s <= 1 for s in steps)
    return f"fractions of the epochs must be in (0, 1], got {steps}" if bad else None


def _scale_problem(scale: list[int]) -> str | None:
    ok = len(scale) == 2 and all(v >= 1 for v in scale)
    return None if ok else f"must be two positive integers, got {scale}"


def _multiple_of_32(size: int) -> str | None:
    return f"must be a multiple of 32, got {size}" if size % 32 else None


def _positive_numbers(values: list[float]) -> str | None:
    ok = values and all(v > 0 for v in values)
    return None if ok else f"must be positive numbers, got {values}"


@dataclass
class DataConfig:
    """What the run trains and evaluates on, and how training images are augmented."""

    data: str | None = setting(
        None,
        "COCO-layout dataset folder (annotations/, train2017/, val2017/). Without any data "
        "option: the built-in synthetic shapes dataset",
        path=True,
    )
    train_ann: str | None = setting(None, "Training annotation file", path=True)
    train_images: str | None = setting(None, "Training images", path=True)
    val_ann: str | None = setting(None, "Validation annotation file", path=True)
    val_images: str | None = setting(None, "Validation images", path=True)
    skip_bad_images: bool = setting(
        False, "Leave unreadable or truncated training images out (counted) instead of stopping"
    )
    # False: the official filter_empty_gt=True (mmdet/datasets/custom.py:59, not set in coco500)
    keep_empty_images: bool = setting(
        False,
        "Train also on images no annotation refers to (the official loader leaves them out)",
    )
    augmentation: str | None = setting(
        None,
        "The training pipeline; official: the paper's SSD-style augmentation",
        choices=("official", "mild"),
    )
    image_size: int | None = setting(
        None, "Square training input size, a multiple of 32", low=0, open_low=True,
        check=_multiple_of_32,
    )  # fmt: skip


@dataclass
class ModelConfig:
    """The detector and its loss: what ``alrp predict`` rebuilds it from."""

    loss: str = setting(registry.DEFAULT_LOSS, "The loss", choices=lambda: registry.names("train"))
    assigner: str | None = setting(
        None, "Which anchors are positives", choices=("atss", "maxiou"), per_loss=True
    )
    backbone: str | None = setting(
        None, "The backbone ResNet", choices=("resnet18", "resnet34", "resnet50", "resnet101")
    )
    pretrained: bool | None = setting(
        None,
        "Start the backbone from torchvision's ImageNet weights, downloaded once into torch's "
        "cache; --no-pretrained trains from scratch",
        flag="--pretrained/--no-pretrained",
    )
    backbone_weights: str | None = setting(
        None,
        "A local copy of the ImageNet weights (a torchvision state dict, e.g. "
        "resnet50-0676ba61.pth) for machines without internet; implies --pretrained",
        path=True,
    )
    head_channels: int | None = setting(None, "FPN/head width", low=0, open_low=True)
    group_norm: bool | None = setting(
        None, "GroupNorm in the head towers",
        flag="--group-norm/--no-group-norm", per_loss=True,
    )  # fmt: skip
    p6_from: str | None = setting(None, "Input of the P6 conv", choices=("c5", "p5"), per_loss=True)
    # Set by the loss's recipe for the assigner (the one place anchors resolve).
    anchor_scales_per_octave: int | None = setting(
        None, "Anchor scales per octave", option=False, low=1
    )
    anchor_ratios: list[float] | None = setting(
        None, "Anchor aspect ratios", option=False, check=_positive_numbers
    )


@dataclass
class OptimConfig:
    """How the detector trains: batch, schedule, SGD, and the loss's own settings."""

    batch_size: int | None = setting(
        None, "Global batch: images per step over all processes, each takes its share",
        low=0, open_low=True, per_loss=True,
    )  # fmt: skip
    epochs: int | None = setting(None, "Training epochs", low=0, open_low=True, per_loss=True)
    lr: float | None = setting(
        None, "Learning rate at batch --lr-batch", low=0, open_low=True, per_loss=True
    )
    lr_batch: int | None = setting(
        None, "Batch size --lr refers to (linear rule)", low=0, open_low=True, per_loss=True
    )
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(1e-4, "SGD weight decay")
    warmup_iters: int | None = setting(None, "Linear warmup iterations", low=0)
    warmup_ratio: float | None = setting(
        None, "Warmup starts at this fraction of the rate", option=False, low=0, high=1,
        open_low=True,
    )  # fmt: skip
    lr_steps: list[float] | None = setting(
        None, "Fractions of the epochs where lr drops ×0.1", per_loss=True, parse=_fractions,
        metavar="F1,F2,...", check=_fractions_problem,
    )  # fmt: skip
    lr_gamma: float = setting(0.1, "Factor of each learning-rate step", option=False)
    grad_clip: float | None = setting(None, "Max gradient L2 norm", low=0, open_low=True)
    sb_init: float = setting(50.0, "Initial self-balance weight (aLRP)", low=0, open_low=True)
    sb_fixed: bool = setting(False, "Hold the aLRP loc weight at --sb-init (no self-balance)")
    sb_period_epochs: int = setting(1, "Epochs per self-balance update (aLRP; official: 1)", low=1)
    ranking: str = setting(
        "global",
        "Several processes: global = aLRP/AP Loss rank the global batch, exactly as one "
        "process would; local = each process ranks its own share (the official code)",
        choices=("global", "local"),
    )

    @property
    def scaled_lr(self) -> float:
        """Learning rate at this batch size: ``lr × batch_size / lr_batch`` (linear rule)."""
        assert self.lr is not None and self.batch_size is not None and self.lr_batch
        return self.lr * self.batch_size / self.lr_batch


@dataclass
class EvalConfig:
    """How the detector is evaluated and what inference keeps (also ``alrp predict``'s)."""

    test_scale: list[int] | None = setting(
        None, "Evaluation keeps the aspect ratio within these sides", parse=_scale,
        metavar="LONG,SHORT", unset={"synthetic": "the image size"}, check=_scale_problem,
    )  # fmt: skip
    pre_nms_topk: int = setting(1000, "Top-k per level before NMS", low=0)
    score_threshold: float = setting(0.05, "Inference threshold", low=0, high=1)
    nms_iou: float | None = setting(
        None, "NMS IoU threshold", low=0, high=1, open_low=True, per_loss=True
    )
    max_detections: int = setting(100, "Detections per image", low=0)
    eval_every: int = setting(1, "Evaluate every N epochs (and last)", low=1)


@dataclass
class RuntimeConfig:
    """Where and how the run executes; ``world_size`` and ``backend`` are recorded."""

    device: str = setting("auto", DEVICE_HELP, check=device_problem)
    amp: bool = setting(
        False, "Mixed precision (autocast; losses stay float32), on CUDA and CPU",
        flag="--amp/--no-amp",
    )  # fmt: skip
    amp_dtype: str = setting(
        "auto",
        "The autocast dtype (float16 with a gradient scaler); auto: bfloat16 where supported "
        "(CPU too), else float16",
        choices=("auto", "bfloat16", "float16"),
    )
    nproc: int = setting(
        1,
        "Start N processes on this node through torch's launcher (as torchrun --standalone "
        "--nproc_per_node N); one per GPU",
        low=1,
    )
    seed: int = setting(0, "Random seed", low=0, high=SEED_MAX)
    workers: int | None = setting(
        None, "Data-loading worker processes per training process", low=0,
        unset={"coco": "its CPUs less one, at most 8"},
    )  # fmt: skip
    threads: int | None = setting(None, "torch CPU threads", low=1)
    log_every: int = setting(20, "Step record every N iterations", low=1)
    record_loss_inputs: int = setting(
        0, "Save the loss inputs of N batches (loss_inputs.pt)", low=0
    )
    out: str | None = setting(None, "Run directory [runs/<timestamp>-<loss>]", path=True)
    resume: str | None = setting(
        None, "Continue the run in this directory exactly (other options ignored)", path=True
    )
    world_size: int = setting(1, "Processes the run trains with", option=False, low=1)
    backend: str | None = setting(None, "torch.distributed backend", option=False)


#: The groups by their key in ``config.json``, in order.
GROUPS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "eval": EvalConfig,
    "runtime": RuntimeConfig,
}


@dataclass(frozen=True)
class Field:
    """One declared field: its group, name, type annotation, default and :class:`Setting`."""

    group: str
    name: str
    annotation: Any
    default: Any
    setting: Setting

    @property
    def label(self) -> str:
        """How messages name it: the option (``--lr-steps``), else ``group.name``."""
        return option_flag(self.name) if self.setting.option else f"{self.group}.{self.name}"


def _fields() -> dict[str, Field]:
    out: dict[str, Field] = {}
    for group, cls in GROUPS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.name not in out, f"{f.name} is declared twice"
            out[f.name] = Field(group, f.name, hints[f.name], f.default, setting_of(f))
    return out


#: Every field by name (names are unique over the groups), in declaration order.
FIELDS = _fields()
#: The choices of each field that has them.
CHOICES = {n: c for n, f in FIELDS.items() if (c := f.setting.choice_values()) is not None}


def _check_choice(f: Field, value: Any) -> None:
    """UserError naming the option unless ``value`` is None or one of its choices."""
    choices = CHOICES.get(f.name)
    if choices is not None and value is not None and value not in choices:
        raise UserError(f"{f.label}: {value!r} is not one of {choices}")


@dataclass
class TrainConfig:
    """Every setting of ``alrp train``, in five groups (see docs/training.md)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        """A config from values by field name, as ``alrp train`` takes them (e.g.
        ``lr=0.01, lr_steps="0.5,0.9"``): list options may be given as their text (parsed,
        a UserError naming the option), paths as ``Path``; None is the field's default."""
        groups: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
        for name, value in options.items():
            if name not in FIELDS:
                raise TypeError(f"TrainConfig has no setting {name!r}")
            f = FIELDS[name]
            if isinstance(value, str) and f.setting.parse is not None:
                value = f.setting.parse(value, f.label)
            elif isinstance(value, os.PathLike):
                value = str(value)
            if value is not None:
                groups[f.group][name] = value
        return cls(**{g: GROUPS[g](**values) for g, values in groups.items()})

    def values(self) -> dict[str, Any]:
        """Every field's value by name (the groups flattened)."""
        return {n: getattr(getattr(self, f.group), n) for n, f in FIELDS.items()}

    @property
    def preset(self) -> str:
        """'synthetic' with no dataset given or a ``--data`` folder written by ``alrp data
        synth`` (it holds ``alrp-synth.json``), 'coco' otherwise."""
        from alrp_cli.synth_names import MARKER

        d = self.data
        if d.data is not None and (Path(d.data) / MARKER).is_file():
            return "synthetic"
        given = (d.data, d.train_ann, d.val_ann, d.train_images, d.val_images)
        return "coco" if any(v is not None for v in given) else "synthetic"

    def resolved(self, preset: str | None = None) -> TrainConfig:
        """A copy with every ``None`` preset setting filled in, validated.

        COCO preset: the official recipe of ``loss`` (its registry entry's recipe over
        :data:`PRESETS`); synthetic preset: one recipe for every loss. Anchors follow the
        loss and assigner in every preset (the recipe's, :meth:`Recipe.anchors_for`).
        ``preset`` overrides :attr:`preset` (a model imported without its data).
        ``backbone_weights`` implies ``pretrained``.
        """
        values = self.values()
        _check_choice(FIELDS["loss"], values["loss"])
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
        _check_choice(FIELDS["assigner"], values["assigner"])
        scales, ratios = recipe.anchors_for(values["assigner"])
        if values["anchor_scales_per_octave"] is None:
            values["anchor_scales_per_octave"] = scales
        if values["anchor_ratios"] is None:
            values["anchor_ratios"] = ratios
        cfg = TrainConfig.from_options(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first impossible value: of the wrong type,
        not one of its choices, out of its bounds, or refused by its check; then the few
        rules that involve two settings."""
        values = self.values()
        for name, f in FIELDS.items():
            value, s = values[name], f.setting
            if value is None:
                continue
            problem = type_problem(value, f.annotation)
            if problem is None:
                _check_choice(f, value)
            if problem is None and (s.low is not None or s.high is not None):
                problem = s.bounds_problem(value)
            if problem is None and s.check is not None:
                problem = s.check(value)
            if problem is not None:
                raise UserError(f"{f.label}: {problem}")
        d, m = self.data, self.model
        if self.optim.batch_size == 1 and d.image_size == 32 and m.pretrained is False:
            # BatchNorm trains here: at 32 px the last stage is 1 x 1, one value per channel
            raise UserError(
                "--batch-size 1 at --image-size 32: the backbone's BatchNorm would train on one "
                "value per channel (its last stage is 1 × 1); use --image-size 64 or more, or "
                "--batch-size 2 or more"
            )
        self.check_world_size(self.runtime.world_size)

    def check_machine(self) -> None:
        """Raise :class:`UserError` for counts and sizes beyond this machine (see
        :mod:`alrp_cli.limits`): refused before a run starts, not as a million processes or
        an out-of-memory error later. Apart from :meth:`validate`, so that
        ``--print-config`` still shows a command meant for a larger machine."""
        from alrp_cli.limits import check_fits, check_per_core, cpu_count

        rt = self.runtime
        if rt.threads is not None:
            check_per_core(rt.threads, "--threads", what="threads")
        if rt.workers is not None:
            check_per_core(rt.workers, "--workers", what="worker processes")
        if rt.nproc > 1:
            import torch

            most = max(torch.cuda.device_count(), cpu_count())
            if rt.nproc > most:
                raise UserError(
                    f"--nproc {rt.nproc}: more processes than this node has GPUs "
                    f"({torch.cuda.device_count()}) or CPU cores ({cpu_count()})"
                )
        device = None
        if rt.device != "cpu":
            import torch

            device = "cuda" if torch.cuda.is_available() else None
        channels, size = self.model.head_channels, self.data.image_size
        if channels is not None:  # the head's 2 x 4 conv 3 x 3 weights alone
            what = f"the head's weights at {channels} channels"
            check_fits(4 * 2 * 4 * 9 * channels**2, "--head-channels", what=what, device=device)
        if size is not None:  # one float32 input image alone
            what = f"input images of {size} × {size}"
            check_fits(4 * 3 * size**2, "--image-size", what=what, device=device)

    def check_world_size(self, world_size: int) -> None:
        """The global ``batch_size`` must split evenly over ``world_size`` processes."""
        batch = self.optim.batch_size
        if batch is not None and batch % world_size:
            raise UserError(
                f"--batch-size {batch} (the global batch) does not split over "
                f"{world_size} processes; give a multiple of {world_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        """``{"data": {...}, "model": {...}, ...}``: plain, JSON- and ``weights_only``-safe."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Any, source: str = "config") -> TrainConfig:
        """Inverse of :meth:`to_dict`, checked; ``source`` names the file in errors.

        Every group must be there and hold only its own fields (a field left out takes its
        default); anything else, e.g. a configuration of another form, is a UserError.
        """
        if not isinstance(values, dict) or set(values) != set(GROUPS):
            keys = sorted(values) if isinstance(values, dict) else [type(values).__name__]
            shown = ", ".join(map(str, keys[:4])) + (", ..." if len(keys) > 4 else "")
            raise UserError(
                f"{source}: not an alrp training configuration: expected the groups "
                f"{', '.join(GROUPS)}, got {shown or 'nothing'}"
            )
        groups = {}
        for group, cls_ in GROUPS.items():
            given = values[group]
            names = {f.name for f in dataclasses.fields(cls_)}
            unknown = sorted(set(given) - names) if isinstance(given, dict) else None
            if unknown is None or unknown:
                what = f"unknown settings {unknown}" if unknown else "not a JSON object"
                raise UserError(f"{source}: {group}: {what}")
            groups[group] = cls_(**given)
        return cls(**groups)
