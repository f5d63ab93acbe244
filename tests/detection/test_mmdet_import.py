"""Official mmdetection checkpoints as alrp runs: the config reader (literals only, ``_base_``
merged as mmcv merges), every tensor in its place, anchors / box order / class order as
mmdetection's (its formulas written out here), and refusals that name the setting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from alrp_cli.config.training import TrainConfig
from alrp_cli.detection.build import build_model
from alrp_cli.detection.checkpoint import load_checkpoint
from alrp_cli.detection.mmdet_config import (
    Unsupported,
    load_config_file,
    parse_config_text,
    setting,
)
from alrp_cli.detection.mmdet_import import import_checkpoint, run_config
from alrp_cli.errors import UserError
from tests.helpers.weights import MMDET_CONFIG, mmdet_checkpoint, mmdet_shapes, save_legacy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_config_text_is_read_as_literals_only() -> None:
    cfg = parse_config_text(
        "import os\n"
        "data_root = 'data/coco/'\n"
        "norm = dict(mean=[1.5, -2], to_rgb=True)\n"
        "pipe = [dict(type='Normalize', **norm), {'x y': (1, 2)}]\n"
        "train = dict(ann_file=data_root + 'a.json', m=norm['mean'][1], n=None)\n"
        "gpu_ids = range(0, 4)\n"
        "evil = __import__('os').system('false')\n",
        "t.py",
    )
    assert cfg["pipe"] == [
        {"type": "Normalize", "mean": [1.5, -2], "to_rgb": True},
        {"x y": (1, 2)},
    ]
    assert cfg["train"] == {"ann_file": "data/coco/a.json", "m": -2, "n": None}
    assert cfg["gpu_ids"] == Unsupported("range(0, 4)") and isinstance(cfg["evil"], Unsupported)
    with pytest.raises(UserError, match=r"t\.py: gpu_ids = range\(0, 4\) is not a plain value"):
        setting(cfg, "gpu_ids", source="t.py")
    assert setting(cfg, "train.missing.deeper", 7, source="t.py") == 7
    with pytest.raises(UserError, match="not an mmcv config"):
        parse_config_text("model = dict(", "bad.py")


def test_base_files_merge_as_mmcv_merges_them(tmp_path: Path) -> None:
    (tmp_path / "_base_").mkdir()
    (tmp_path / "_base_" / "model.py").write_text(
        "model = dict(type='RetinaNet', head=dict(a=1, b=dict(c=2, d=3)), tags=[1, 2])\n"
    )
    (tmp_path / "_base_" / "data.py").write_text("root = 'x/'\ndata = dict(ann=root + 'a')\n")
    child = tmp_path / "child.py"
    child.write_text(
        "_base_ = ['./_base_/model.py', './_base_/data.py']\n"
        "model = dict(head=dict(b=dict(c=20), e=5), tags=[9])\n"
        "data = dict(_delete_=True, other=1)\n"
    )
    cfg = load_config_file(child)
    # dicts merged key by key, lists replaced, _delete_ replaces the whole dict
    assert cfg["model"] == {"type": "RetinaNet", "head": {"a": 1, "b": {"c": 20, "d": 3}, "e": 5},
                            "tags": [9]}  # fmt: skip
    assert cfg["data"] == {"other": 1} and cfg["root"] == "x/" and "_base_" not in cfg
    (tmp_path / "twice.py").write_text("_base_ = ['_base_/model.py', '_base_/model.py']\n")
    with pytest.raises(UserError, match="'model' is set by two of its _base_ files"):
        load_config_file(tmp_path / "twice.py")
    (tmp_path / "loop.py").write_text("_base_ = 'loop.py'\n")
    with pytest.raises(UserError, match="includes itself"):
        load_config_file(tmp_path / "loop.py")
    with pytest.raises(UserError, match="no such config file"):
        load_config_file(tmp_path / "none.py")


@pytest.fixture
def imported(tmp_path: Path) -> tuple[dict, Path]:
    checkpoint = mmdet_checkpoint()
    save_legacy(checkpoint, tmp_path / "alrp_r18.pth")
    result = import_checkpoint(tmp_path / "alrp_r18.pth", tmp_path / "run")
    assert result.run_dir == tmp_path / "run" and result.tensors == len(mmdet_shapes())
    return checkpoint, tmp_path / "run"


def test_every_tensor_lands_in_the_model_unchanged(imported: tuple[dict, Path]) -> None:
    checkpoint, run = imported
    tensors = checkpoint["state_dict"]
    saved = load_checkpoint(run / "best.pt")
    state = saved["model"]
    # Pairs written out: mmdetection's name -> alrp's (torchvision's FPN and heads).
    pairs = {
        "backbone.conv1.weight": "backbone.body.conv1.weight",
        "backbone.layer2.0.downsample.1.running_var": "backbone.body.layer2.0.downsample.1."
        "running_var",
        "backbone.layer4.1.bn2.num_batches_tracked": "backbone.body.layer4.1.bn2."
        "num_batches_tracked",
        "neck.lateral_convs.2.conv.weight": "backbone.fpn.inner_blocks.2.0.weight",
        "neck.fpn_convs.1.conv.bias": "backbone.fpn.layer_blocks.1.0.bias",
        "neck.fpn_convs.3.conv.weight": "backbone.fpn.extra_blocks.p6.weight",
        "neck.fpn_convs.4.conv.bias": "backbone.fpn.extra_blocks.p7.bias",
        "bbox_head.cls_convs.0.conv.weight": "cls_head.conv.0.0.weight",
        "bbox_head.reg_convs.3.conv.bias": "reg_head.conv.3.0.bias",
        "bbox_head.retina_cls.weight": "cls_head.cls_logits.weight",
        "bbox_head.retina_reg.bias": "reg_head.bbox_reg.bias",
    }  # fmt: skip
    for theirs, ours in pairs.items():
        assert torch.equal(state[ours], tensors[theirs]), theirs
    # Every tensor of the file is one of the model's, and the model holds nothing else but
    # the normalisation (the values are random, so equal tensors are the same tensor).
    ours_by_value = {(tuple(v.shape), v.numpy().tobytes()) for v in state.values()}
    assert all((tuple(v.shape), v.numpy().tobytes()) in ours_by_value for v in tensors.values())
    assert len(state) == len(tensors) + 2 and {"mean", "std"} <= set(state)
    # Normalize(mean=[123.675, ...], std=[58.395, ...]) on 0-255 images = ImageNet's on [0, 1]
    assert state["mean"].flatten().tolist() == pytest.approx([0.485, 0.456, 0.406], abs=1e-6)
    assert state["std"].flatten().tolist() == pytest.approx([0.229, 0.224, 0.225], abs=1e-6)
    meta = saved["meta"]
    assert meta["category_ids"] == [1, 2, 3] and meta["category_names"] == [
        "person",
        "bicycle",
        "car",
    ]
    assert meta["imported"]["mmdet_version"] == "2.3.0+2cfaa8e"


def test_the_run_config_is_the_checkpoint_s(imported: tuple[dict, Path]) -> None:
    _, run = imported
    stored = load_checkpoint(run / "best.pt")["config"]
    assert json.loads((run / "config.json").read_text()) == stored  # one structure, as train's
    cfg = TrainConfig.from_dict(stored)
    m, ev, optim = cfg.model, cfg.eval, cfg.optim
    assert (m.loss, m.assigner, m.backbone, m.head_channels) == ("alrp", "maxiou", "resnet18", 32)
    assert (m.pretrained, m.group_norm, m.p6_from) == (True, False, "c5")
    assert (m.anchor_scales_per_octave, m.anchor_ratios) == (2, [0.5, 1.0, 2.0])
    assert ev.test_scale == [833, 500] and cfg.data.image_size == 128
    assert (ev.pre_nms_topk, ev.score_threshold, ev.nms_iou, ev.max_detections) == (
        1000,
        0.05,
        0.5,
        100,
    )
    assert (optim.lr, optim.epochs, optim.lr_steps, optim.warmup_iters) == (
        0.008,
        100,
        [0.6, 0.8],
        500,
    )
    assert cfg.runtime.out == str(run)
    assert (run / "config.json").read_text().count('"test_scale"') == 1


# mmdetection's AnchorGenerator (mmdet/core/anchor/anchor_generator.py), written out:
# per level, base size = stride, scales = octave_base_scale · 2^(i / scales_per_octave),
# h_ratio = sqrt(ratio), w_ratio = 1 / h_ratio, sizes ratio-major (scale_major=True),
# centred on (0, 0) (center_offset=0); shifted to (x · stride, y · stride) for every cell,
# rows first; the anchors of one cell together.
def _mmdet_anchors(height: int, width: int) -> list[list[float]]:
    out = []
    for stride in (8, 16, 32, 64, 128):
        base = []
        for ratio in (0.5, 1.0, 2.0):
            for i in range(2):
                scale = 4 * 2 ** (i / 2)
                w = stride * (1 / math.sqrt(ratio)) * scale
                h = stride * math.sqrt(ratio) * scale
                base.append((-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h))
        for y in range(math.ceil(height / stride)):
            for x in range(math.ceil(width / stride)):
                for x1, y1, x2, y2 in base:
                    sx, sy = x * stride, y * stride
                    out.append([x1 + sx, y1 + sy, x2 + sx, y2 + sy])
    return out


def test_anchors_and_output_order_are_mmdetection_s(tmp_path: Path) -> None:
    checkpoint = mmdet_checkpoint()
    tensors = checkpoint["state_dict"]
    # retina_cls / retina_reg output only their bias: channel a·C + c (a·4 + j) of every cell
    # is the score of anchor a, class c (delta j), as mmdetection's permute(1, 2, 0) reads it
    tensors["bbox_head.retina_cls.weight"].zero_()
    tensors["bbox_head.retina_reg.weight"].zero_()
    tensors["bbox_head.retina_cls.bias"].copy_(torch.arange(18.0))
    tensors["bbox_head.retina_reg.bias"].copy_(-torch.arange(24.0))
    save_legacy(checkpoint, tmp_path / "ck.pth")
    run = import_checkpoint(tmp_path / "ck.pth", tmp_path / "run").run_dir
    saved = load_checkpoint(run / "best.pt")
    model = build_model(TrainConfig.from_dict(saved["config"]).model, 3)
    model.load_state_dict(saved["model"])
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 3, 64, 96))
    assert torch.allclose(out.anchors, torch.tensor(_mmdet_anchors(64, 96)), atol=1e-4)
    cells = out.cls.shape[1] // 6
    for cell in (0, 5, cells - 1):
        for a in range(6):
            row = cell * 6 + a
            assert out.cls[0, row].tolist() == [a * 3 + c for c in range(3)]
            assert out.reg[0, row].tolist() == [-(a * 4 + j) for j in range(4)]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("model.backbone.type", "ResNeXt"), "model.backbone.type = 'ResNeXt' is not supported"),
        (
            ("model.bbox_head.type", "FoveaHead"),
            "model.bbox_head.type = 'FoveaHead' is not supported",
        ),
        (("model.neck.add_extra_convs", "on_lateral"), "add_extra_convs = 'on_lateral'"),
        (("test_cfg.max_per_img", -1), "test_cfg.max_per_img = -1 is not supported"),
    ],
)
def test_what_alrp_does_not_build_is_refused_by_name(
    edit: tuple[str, object], message: str
) -> None:
    cfg = parse_config_text(MMDET_CONFIG, "cfg")
    *parents, last = edit[0].split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = edit[1]
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        run_config(cfg, "cfg")
