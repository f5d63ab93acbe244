"""Models released by the official aLRP repository (mmdetection 2.x checkpoints) as runs.

An mmdetection checkpoint holds ``state_dict`` (``backbone.layer1.0.conv1.weight``,
``neck.lateral_convs.0.conv.weight``, ``bbox_head.retina_cls.weight``...) and ``meta``
(``config``: the training config as Python source, ``CLASSES``: the class names).
:func:`import_checkpoint` reads the model settings from that config (or an official config
file), checks that alrp builds exactly that network, moves every tensor to its place and
writes a run directory that ``alrp predict`` reads: ``config.json`` and ``best.pt``.
Anything alrp does not build the same way is refused, naming the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.models.detection import RetinaNet_ResNet50_FPN_Weights

from alrp_cli.atomic import write_json
from alrp_cli.config.training import TrainConfig
from alrp_cli.detection.build import build_model
from alrp_cli.detection.checkpoint import save_checkpoint, state_mismatch
from alrp_cli.detection.mmdet_config import load_config_file, parse_config_text, setting
from alrp_cli.errors import UserError
from alrp_cli.run_dir import check_new_run_dir, create_run_dir
from alrp_cli.torchfile import read_torch_file

HEADS = {"aLRPLossRetinaHead": "alrp", "APLossRetinaHead": "ap", "RetinaHead": "focal"}
ASSIGNERS = {"ATSSAssigner": "atss", "MaxIoUAssigner": "maxiou"}
STAGE_CHANNELS = {18: [64, 128, 256, 512], 34: [64, 128, 256, 512]}
STAGE_CHANNELS |= {50: [256, 512, 1024, 2048], 101: [256, 512, 1024, 2048]}
P6_FROM = {"on_input": "c5", "on_output": "p5"}
# The defaults of mmdetection's RetinaHead / AnchorHead (mmdet/models/dense_heads/
# retina_head.py, anchor_head.py:35-57) where a config leaves a setting out.
ANCHOR_DEFAULTS = {"type": "AnchorGenerator", "octave_base_scale": 4, "scales_per_octave": 3,
                   "ratios": [0.5, 1.0, 2.0], "strides": [8, 16, 32, 64, 128]}  # fmt: skip
CODER_DEFAULTS = {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4,
                  "target_stds": [1.0] * 4}  # fmt: skip
# alrp's model key -> mmdetection's: the ResNet names are torchvision's; the FPN has 3
# levels from the backbone (start_level=1) and P6, P7 as fpn_convs 3 and 4; ConvModule
# keeps its conv as ``conv`` and GroupNorm as ``gn``.
KEY_RULES = [
    (r"backbone\.body\.(.+)", r"backbone.\1"),
    (r"backbone\.fpn\.inner_blocks\.(\d)\.0\.(\w+)", r"neck.lateral_convs.\1.conv.\2"),
    (r"backbone\.fpn\.layer_blocks\.(\d)\.0\.(\w+)", r"neck.fpn_convs.\1.conv.\2"),
    (r"backbone\.fpn\.extra_blocks\.p6\.(\w+)", r"neck.fpn_convs.3.conv.\1"),
    (r"backbone\.fpn\.extra_blocks\.p7\.(\w+)", r"neck.fpn_convs.4.conv.\1"),
    (r"(cls|reg)_head\.conv\.(\d)\.0\.(\w+)", r"bbox_head.\1_convs.\2.conv.\3"),
    (r"(cls|reg)_head\.conv\.(\d)\.1\.(\w+)", r"bbox_head.\1_convs.\2.gn.\3"),
    (r"cls_head\.cls_logits\.(\w+)", r"bbox_head.retina_cls.\1"),
    (r"reg_head\.bbox_reg\.(\w+)", r"bbox_head.retina_reg.\1"),
]
NORMALISATION = ("mean", "std")  # buffers of the model, from the config's Normalize


@dataclass
class ImportResult:
    """What :func:`import_checkpoint` wrote, and from what."""

    run_dir: Path
    checkpoint: Path
    config_source: str
    config: TrainConfig
    category_names: list[str]
    tensors: int


def mmdet_key(key: str) -> str | None:
    """mmdetection's name of alrp's model state ``key`` (None for the normalisation)."""
    if key in NORMALISATION:
        return None
    for pattern, replacement in KEY_RULES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    raise AssertionError(f"no mmdetection name for {key}")


class _Settings:
    """Reads one config; every refusal names the setting, its value and what alrp builds."""

    def __init__(self, cfg: dict[str, Any], source: str) -> None:
        self.cfg, self.source = cfg, source

    def get(self, dotted: str, default: Any = None) -> Any:
        return setting(self.cfg, dotted, default, source=self.source)

    def need(self, ok: bool, dotted: str, value: Any, builds: str) -> None:
        if not ok:
            raise UserError(
                f"{self.source}: {dotted} = {value!r} is not supported (alrp builds {builds})"
            )

    def equal(self, dotted: str, wanted: Any, default: Any = None) -> Any:
        value = self.get(dotted, default)
        plain = list(value) if isinstance(value, tuple) else value
        self.need(plain == wanted, dotted, value, repr(wanted))
        return value


def _pipeline_step(steps: Any, kind: str) -> dict[str, Any] | None:
    """The first step of type ``kind`` in a pipeline, looking into MultiScaleFlipAug."""
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and step.get("type") == kind:
            return step
        if isinstance(step, dict) and isinstance(step.get("transforms"), list):
            found = _pipeline_step(step["transforms"], kind)
            if found is not None:
                return found
    return None


def _model_settings(s: _Settings) -> dict[str, Any]:
    """TrainConfig values of the network: backbone, FPN, head, anchors, box coder."""
    s.equal("model.type", "RetinaNet")
    head_type = s.get("model.bbox_head.type")
    s.need(head_type in HEADS, "model.bbox_head.type", head_type, " or ".join(HEADS))
    s.equal("model.backbone.type", "ResNet")
    depth = s.get("model.backbone.depth")
    s.need(depth in STAGE_CHANNELS, "model.backbone.depth", depth, "ResNet-18, 34, 50, 101")
    s.equal("model.backbone.num_stages", 4, 4)
    s.equal("model.backbone.out_indices", [0, 1, 2, 3], (0, 1, 2, 3))
    s.equal("model.backbone.style", "pytorch", "pytorch")
    for flag in ("dcn", "deep_stem", "avg_down", "plugins"):
        value = s.get(f"model.backbone.{flag}")
        s.need(not value, f"model.backbone.{flag}", value, f"no {flag}")
    s.equal("model.neck.type", "FPN")
    s.equal("model.neck.in_channels", STAGE_CHANNELS[depth])
    channels = s.get("model.neck.out_channels")
    s.equal("model.neck.start_level", 1, 0)
    s.equal("model.neck.end_level", -1, -1)
    s.equal("model.neck.num_outs", 5)
    s.equal("model.neck.relu_before_extra_convs", False, False)
    s.equal("model.neck.norm_cfg", None)
    extra = s.get("model.neck.add_extra_convs", False)
    if extra is True:  # mmdetection's older spelling
        on_input = s.get("model.neck.extra_convs_on_inputs", True)
        extra = "on_input" if on_input else "on_output"
    s.need(extra in P6_FROM, "model.neck.add_extra_convs", extra, "'on_input' or 'on_output'")
    s.equal("model.bbox_head.in_channels", channels)
    s.equal("model.bbox_head.feat_channels", channels, 256)
    s.equal("model.bbox_head.stacked_convs", 4, 4)
    norm = s.get("model.bbox_head.norm_cfg")
    groups = min(32, channels)  # alrp's GroupNorm in the towers
    plain = norm is None or (norm.get("type") == "GN" and norm.get("num_groups") == groups)
    s.need(plain, "model.bbox_head.norm_cfg", norm, f"no norm, or GN with {groups} groups")
    s.equal("model.bbox_head.loss_cls.use_sigmoid", True, True)
    anchors = {**ANCHOR_DEFAULTS, **(s.get("model.bbox_head.anchor_generator") or {})}
    for key, wanted in (("type", "AnchorGenerator"), ("octave_base_scale", 4),
                        ("strides", [8, 16, 32, 64, 128]), ("center_offset", 0.0),
                        ("scale_major", True), ("scales", None), ("base_sizes", None)):  # fmt: skip
        value = anchors.get(key, wanted)
        s.need(value == wanted, f"model.bbox_head.anchor_generator.{key}", value, repr(wanted))
    coder = {**CODER_DEFAULTS, **(s.get("model.bbox_head.bbox_coder") or {})}
    for key, wanted in (("type", "DeltaXYWHBBoxCoder"), ("target_means", [0.0] * 4),
                        ("target_stds", [0.1, 0.1, 0.2, 0.2])):  # fmt: skip
        value = coder[key]
        plain = list(value) if isinstance(value, tuple) else value
        s.need(plain == wanted, f"model.bbox_head.bbox_coder.{key}", value, repr(wanted))
    assigner = s.get("model.train_cfg.assigner.type") or s.get("train_cfg.assigner.type")
    s.need(assigner in ASSIGNERS, "train_cfg.assigner.type", assigner, " or ".join(ASSIGNERS))
    return {
        "loss": HEADS[head_type],
        "assigner": ASSIGNERS[assigner],
        "backbone": f"resnet{depth}",
        "pretrained": bool(s.get("model.pretrained")),
        "head_channels": channels,
        "group_norm": norm is not None,
        "p6_from": P6_FROM[extra],
        "anchor_scales_per_octave": anchors["scales_per_octave"],
        "anchor_ratios": [float(r) for r in anchors["ratios"]],
    }


def _test_settings(s: _Settings) -> tuple[dict[str, Any], list[float], list[float]]:
    """TrainConfig values of inference (test_cfg, the test pipeline's scale), and the
    Normalize mean and std on [0, 255] images."""
    test = "model.test_cfg" if s.get("model.test_cfg") is not None else "test_cfg"
    s.equal(f"{test}.nms.type", "nms", "nms")
    iou = s.get(f"{test}.nms.iou_thr", s.get(f"{test}.nms.iou_threshold"))
    s.need(isinstance(iou, int | float), f"{test}.nms.iou_thr", iou, "an IoU threshold")
    score = s.get(f"{test}.score_thr")
    s.need(isinstance(score, int | float), f"{test}.score_thr", score, "a score threshold")
    max_per_img = s.get(f"{test}.max_per_img", -1)
    s.need(max_per_img > 0, f"{test}.max_per_img", max_per_img, "a limit per image")
    pipeline = "data.test.pipeline" if s.get("data.test.pipeline") else "test_pipeline"
    steps = s.get(pipeline)
    aug = _pipeline_step(steps, "MultiScaleFlipAug") or {}
    scale = aug.get("img_scale")
    if isinstance(scale, list) and len(scale) == 1:
        scale = scale[0]
    s.need(isinstance(scale, tuple) and len(scale) == 2, f"{pipeline} img_scale", scale,
           "one (long, short) test scale")  # fmt: skip
    s.need(not aug.get("flip", False), f"{pipeline} flip", True, "no test-time flip")
    resize = _pipeline_step(steps, "Resize") or {}
    s.need(resize.get("keep_ratio", True), f"{pipeline} Resize keep_ratio", False, "True")
    pad = (_pipeline_step(steps, "Pad") or {}).get("size_divisor")
    s.need(pad == 32, f"{pipeline} Pad size_divisor", pad, "32")
    normalize = _pipeline_step(steps, "Normalize") or {}
    s.need(normalize.get("to_rgb", True), f"{pipeline} Normalize to_rgb", False, "RGB input")
    mean, std = normalize.get("mean"), normalize.get("std")
    for name, value in (("mean", mean), ("std", std)):
        s.need(isinstance(value, list | tuple) and len(value) == 3,
               f"{pipeline} Normalize {name}", value, "3 channels")  # fmt: skip
    values = {
        "pre_nms_topk": max(int(s.get(f"{test}.nms_pre", -1)), 0),
        "score_threshold": float(score),
        "nms_iou": float(iou),
        "max_detections": int(max_per_img),
        "test_scale": [int(max(scale)), int(min(scale))],
    }
    return values, [float(v) for v in mean], [float(v) for v in std]


def _training_settings(s: _Settings) -> dict[str, Any]:
    """How the model was trained, where the config says it: square training size, SGD,
    epochs and steps, warmup. (Recorded for the reader; an imported run trains nothing.)"""
    values: dict[str, Any] = {}
    steps = s.get("data.train.pipeline") or s.get("train_pipeline")
    resize = _pipeline_step(steps, "Resize") or {}
    size = resize.get("img_scale")
    if not resize.get("keep_ratio", True) and isinstance(size, tuple) and size[0] == size[1]:
        values["image_size"] = int(size[0])
    for key, name in (("lr", "lr"), ("momentum", "momentum"), ("weight_decay", "weight_decay")):
        if isinstance(s.get(f"optimizer.{key}"), float):
            values[name] = s.get(f"optimizer.{key}")
    epochs, lr_steps = s.get("total_epochs"), s.get("lr_config.step")
    if isinstance(epochs, int) and isinstance(lr_steps, list):
        values["epochs"], values["lr_steps"] = epochs, [step / epochs for step in lr_steps]
    if isinstance(s.get("lr_config.warmup_iters"), int):
        values["warmup_iters"] = s.get("lr_config.warmup_iters")
        values["warmup_ratio"] = float(s.get("lr_config.warmup_ratio", 0.1))
    return values


def run_config(cfg: dict[str, Any], source: str) -> tuple[TrainConfig, list[float], list[float]]:
    """The alrp configuration of an mmdetection config (resolved as the COCO preset), and
    its Normalize mean and std on [0, 255]. A UserError names the first setting alrp does
    not build the same way."""
    s = _Settings(cfg, source)
    model = _model_settings(s)
    test, mean, std = _test_settings(s)
    values = {**model, **test, **_training_settings(s)}
    return TrainConfig.from_options(**values).resolved(preset="coco"), mean, std


def coco_categories(classes: list[str], source: str) -> list[int]:
    """COCO category ids of ``classes``, label order as mmdetection's CocoDataset assigns it
    (the annotation file's category order, i.e. increasing id). Names and ids from
    torchvision's COCO table (its index is the category id)."""
    table = RetinaNet_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    ids = {name: i for i, name in enumerate(table) if name not in ("N/A", "__background__")}
    unknown = [c for c in classes if c not in ids]
    if unknown:
        raise UserError(
            f"{source}: {unknown[0]!r} is not a COCO category; alrp imports COCO models"
        )
    return sorted(ids[c] for c in classes)


def _read(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    payload = read_torch_file(path, "mmdetection checkpoint")
    if isinstance(payload, dict) and "model" in payload and "config" in payload:
        raise UserError(f"{path}: an alrp checkpoint already; alrp predict reads it as it is")
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: not an mmdetection checkpoint (no state_dict of tensors)")
    meta = payload.get("meta")
    return state, meta if isinstance(meta, dict) else {}


def _move_tensors(
    own: dict[str, Tensor], tensors: dict[str, Tensor], path: Path
) -> dict[str, Tensor]:
    """alrp's state dict filled from mmdetection's ``tensors``; every tensor used, every
    entry filled (BatchNorm's batch counters may be absent), or a UserError naming them."""
    names = {key: mmdet_key(key) for key in own}
    expected = {name: own[key].shape for key, name in names.items() if name is not None}
    problem = state_mismatch(
        expected, tensors, optional=lambda n: n.endswith("num_batches_tracked"), extra="unused"
    )
    if problem:
        raise UserError(f"{path}: the tensors do not fit the model of its config; {problem}")
    return {
        key: tensors[name].to(own[key].dtype) if name in tensors else own[key]
        for key, name in names.items()
        if name is not None
    }


def import_checkpoint(
    checkpoint: str | Path, out: str | Path, *, config: str | Path | None = None
) -> ImportResult:
    """Convert an mmdetection 2.x checkpoint of the official repository into a run
    directory ``out`` (created exclusively): ``config.json`` and ``best.pt``.

    The model settings come from ``config`` (an official config file, its ``_base_`` files
    beside it) or else from the config text stored in the checkpoint (``meta['config']``);
    the class names from ``meta['CLASSES']`` (COCO's 80 when absent). Everything is checked
    before ``out`` is created; a UserError (one line) says what does not fit.
    """
    path = Path(checkpoint)
    check_new_run_dir(out)
    tensors, meta = _read(path)
    if config is not None:
        source = str(config)
        cfg_dict = load_config_file(config)
    elif isinstance(meta.get("config"), str):
        source = f"{path} (meta['config'])"
        cfg_dict = parse_config_text(meta["config"], source)
        if "_base_" in cfg_dict:
            raise UserError(f"{source}: names _base_ files; give the official config with --config")
    else:
        raise UserError(f"{path}: holds no config (meta['config']); give it with --config FILE")
    cfg, mean, std = run_config(cfg_dict, source)
    num_classes = setting(cfg_dict, "model.bbox_head.num_classes", source=source)
    classes = meta.get("CLASSES")
    if classes is None and num_classes == 80:  # mmdetection's CocoDataset.CLASSES
        table = RetinaNet_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
        classes = [c for c in table if c not in ("N/A", "__background__")]
    if not isinstance(classes, list | tuple) or len(classes) != num_classes:
        raise UserError(
            f"{path}: meta['CLASSES'] does not name the {num_classes} classes of its config"
        )
    category_ids = coco_categories(list(classes), f"{path} (meta['CLASSES'])")
    names = {i: c for i, c in enumerate(RetinaNet_ResNet50_FPN_Weights.COCO_V1.meta["categories"])}
    model = build_model(cfg.model, num_classes)
    state = _move_tensors(model.state_dict(), tensors, path)
    state["mean"] = torch.tensor(mean).view(1, 3, 1, 1) / 255
    state["std"] = torch.tensor(std).view(1, 3, 1, 1) / 255
    model.load_state_dict(state)  # the same keys and shapes: cannot fail
    run_dir = create_run_dir(out, cfg.model.loss)
    cfg.runtime.out = str(run_dir)
    info = {
        "num_classes": num_classes,
        "category_ids": category_ids,
        "category_names": [names[i] for i in category_ids],
        "imported": {
            "checkpoint": str(path),
            "config": source,
            "mmdet_version": str(meta.get("mmdet_version", "")),
            "epoch": int(meta["epoch"]) if isinstance(meta.get("epoch"), int) else None,
        },
    }
    write_json(run_dir / "config.json", cfg.to_dict())
    save_checkpoint(run_dir / "best.pt", {"config": cfg.to_dict(), "meta": info, "model": state})
    return ImportResult(run_dir, path, source, cfg, info["category_names"], len(tensors))
