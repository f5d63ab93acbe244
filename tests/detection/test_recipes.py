"""Presets resolve to the official recipes (source lines in the comments), the max-IoU
schedule, anchors against hand-computed official values, and ``--print-config``.

Sources: github.com/kemaloksuz/aLRPLoss at commit 2cfaa8e. ATSS cfg =
configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py; max-IoU cfg =
configs/alrp_loss/alrp_loss_retinanet_r50_fpn_100e_coco500.py; AP cfg =
configs/alrp_loss/ap_loss_retinanet_r50_fpn_100e_coco500.py; RetinaNet base =
configs/_base_/models/retinanet_r50_fpn.py; schedule_1x = configs/_base_/schedules/schedule_1x.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from alrp_cli.config.training import TrainConfig
from alrp_cli.detection.anchors import ExactAnchorGenerator, anchor_sizes
from alrp_cli.detection.build import lr_factor
from alrp_cli.detection.model import Anchors
from alrp_cli.errors import UserError

COCO = {"train_ann": "a.json"}  # any dataset option that is not a synthetic folder


def _coco(**options: object) -> TrainConfig:
    return TrainConfig.from_options(**COCO, **options).resolved()


def test_coco_alrp_is_the_official_atss_recipe() -> None:
    cfg = _coco(loss="alrp")
    m, optim = cfg.model, cfg.optim
    assert m.assigner == "atss"  # ATSS cfg:42
    assert m.backbone == "resnet50" and m.head_channels == 256  # ATSS cfg:10, 20, 29
    assert m.pretrained is True  # ATSS cfg:7 pretrained='torchvision://resnet50'
    assert m.group_norm is False  # alrp_loss_retina_head.py:40 norm_cfg=None
    assert m.p6_from == "c5"  # ATSS cfg:22 add_extra_convs='on_input'
    assert (m.anchor_scales_per_octave, m.anchor_ratios) == (2, [1.0])  # ATSS cfg:33-34
    assert cfg.data.image_size == 512  # coco500_detection_augm.py:23
    assert (optim.lr, optim.batch_size, optim.lr_batch, optim.scaled_lr) == (0.008, 32, 32, 0.008)
    assert optim.epochs == 100 and optim.lr_steps == [0.75, 0.95]  # ATSS cfg:54, 57, 58
    assert (optim.warmup_iters, optim.warmup_ratio) == (500, 0.001)  # schedule_1x:8-9
    assert (optim.momentum, optim.weight_decay) == (0.9, 1e-4)  # ATSS cfg:54
    assert optim.sb_init == 50.0 and optim.sb_period_epochs == 1  # alrp_loss_retina_head.py:57-59


def test_coco_alrp_with_maxiou_is_the_official_maxiou_recipe() -> None:
    cfg = _coco(loss="alrp", assigner="maxiou")
    # max-IoU cfg:8 (2 scales per octave) x RetinaNet base:31 (3 ratios) = 6 per location
    assert (cfg.model.anchor_scales_per_octave, cfg.model.anchor_ratios) == (2, [0.5, 1.0, 2.0])
    assert cfg.optim.lr_steps == [0.6, 0.8] and cfg.optim.epochs == 100  # max-IoU cfg:18-19
    assert cfg.optim.lr == 0.008 and cfg.model.group_norm is False  # max-IoU cfg:15


def test_coco_ap_and_focal_bring_their_own_recipes() -> None:
    ap = _coco(loss="ap")
    assert ap.model.assigner == "maxiou"  # AP cfg:2 -> RetinaNet base:47 MaxIoUAssigner
    # AP cfg:8
    assert (ap.model.anchor_scales_per_octave, ap.model.anchor_ratios) == (2, [0.5, 1.0, 2.0])
    o = ap.optim
    assert (o.lr, o.batch_size, o.lr_steps, o.epochs) == (0.002, 32, [0.6, 0.8], 100)
    focal = _coco(loss="focal")  # configs/retinanet/retinanet_r50_fpn_1x_coco.py
    m, o = focal.model, focal.optim
    assert m.assigner == "maxiou"  # RetinaNet base:47
    assert (m.anchor_scales_per_octave, m.anchor_ratios) == (3, [0.5, 1.0, 2.0])
    assert (o.lr, o.batch_size, o.lr_batch) == (0.01, 16, 16)  # 1x cfg:7
    assert o.epochs == 12 and o.lr_steps == pytest.approx([8 / 12, 11 / 12])
    assert m.group_norm is False and m.p6_from == "c5"  # RetinaNet base:19


def test_coco_rank_and_sort_is_the_official_rs_atss_recipe() -> None:
    # kemaloksuz/RankSortLoss: configs/ranksort_loss/ranksort_atss_r50_fpn_1x_coco.py
    # ("RS cfg") and mmdet/models/dense_heads/rank_based_atss_head.py ("RS head").
    cfg = _coco(loss="rs")
    m, o, e = cfg.model, cfg.optim, cfg.eval
    assert m.assigner == "atss"  # RS cfg:44
    assert m.backbone == "resnet50" and m.pretrained is True  # RS cfg:7-15
    assert m.head_channels == 256 and m.group_norm is True  # RS cfg:27-29, RS head:36
    assert m.p6_from == "p5"  # RS cfg:22 add_extra_convs='on_output'
    assert (m.anchor_scales_per_octave, m.anchor_ratios) == (3, [1.0])  # RS cfg:32-34
    assert (o.lr, o.batch_size, o.lr_batch) == (0.008, 16, 16)  # RS cfg:56, 60
    assert o.epochs == 12 and o.lr_steps == pytest.approx([8 / 12, 11 / 12])  # 1x: 10-11
    assert (o.warmup_iters, o.warmup_ratio) == (500, 0.001)  # schedule_1x:8-9
    assert e.nms_iou == 0.6 and e.score_threshold == 0.05  # RS cfg:51-52
    assert e.max_detections == 100 and e.pre_nms_topk == 1000  # RS cfg:49, 53
    # every other loss keeps NMS 0.5, on COCO and on the synthetic preset
    assert _coco(loss="alrp").eval.nms_iou == 0.5
    assert TrainConfig.from_options(loss="rs").resolved().eval.nms_iou == 0.5
    assert _coco(loss="rs", nms_iou=0.7).eval.nms_iou == 0.7


def test_given_options_win_over_the_recipe() -> None:
    cfg = _coco(loss="ap", lr=0.1, group_norm=True, assigner="atss", lr_steps=[0.5])
    m, o = cfg.model, cfg.optim
    assert (o.lr, m.group_norm, m.assigner, o.lr_steps) == (0.1, True, "atss", [0.5])
    assert m.anchor_ratios == [1.0]  # anchors follow the assigner given


def test_synthetic_preset_is_one_recipe_for_every_loss() -> None:
    cfgs = [
        TrainConfig.from_options(loss=loss).resolved() for loss in ("alrp", "ap", "rs", "focal")
    ]
    for cfg in cfgs:
        m, o = cfg.model, cfg.optim
        assert cfg.preset == "synthetic" and m.pretrained is False  # downloads nothing
        assert (m.assigner, m.group_norm, m.p6_from) == ("atss", True, "c5")
        assert (o.lr, o.batch_size, o.lr_batch, o.epochs) == (0.04, 16, 32, 8)
        assert o.lr_steps == [0.75, 0.95] and o.warmup_ratio == pytest.approx(1 / 3)


def test_bad_recipe_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="--sb-period-epochs"):
        TrainConfig.from_options(sb_period_epochs=0).resolved()
    with pytest.raises(UserError, match="--p6-from"):
        TrainConfig.from_options(p6_from="c4").resolved()
    with pytest.raises(UserError, match="--loss"):
        TrainConfig.from_options(loss="hinge").resolved()


def test_maxiou_schedule_steps_at_epochs_60_and_80() -> None:
    cfg = _coco(loss="alrp", assigner="maxiou").optim
    ipe = 3665  # official iterations per epoch (alrp_loss_retina_head.py:59)
    assert lr_factor(0, optim=cfg, iters_per_epoch=ipe) == pytest.approx(0.001)
    assert lr_factor(250, optim=cfg, iters_per_epoch=ipe) == pytest.approx(0.001 + 0.999 / 2)
    assert lr_factor(60 * ipe - 1, optim=cfg, iters_per_epoch=ipe) == 1.0  # last of epoch 60
    assert lr_factor(60 * ipe, optim=cfg, iters_per_epoch=ipe) == pytest.approx(0.1)
    assert lr_factor(80 * ipe - 1, optim=cfg, iters_per_epoch=ipe) == pytest.approx(0.1)
    assert lr_factor(80 * ipe, optim=cfg, iters_per_epoch=ipe) == pytest.approx(0.01)


# Anchors: mmdetection's AnchorGenerator.gen_single_level_base_anchors
# (mmdet/core/anchor/anchor_generator.py:160-183), worked by hand for stride 8:
# w = h = 8; scales 4 · 2^(k/2) = 4, 5.656854...; ratios h/w.
S2 = 4 * math.sqrt(2) * 8 / 2  # half of the second scale's side: 22.627417
OFFICIAL_P3_ATSS = [[-16.0, -16.0, 16.0, 16.0], [-S2, -S2, S2, S2]]
H = 1 / math.sqrt(2)
OFFICIAL_P3_MAXIOU = [  # ratio-major, scale-minor (scale_major=True)
    [-16 / H, -16 * H, 16 / H, 16 * H],  # ratio 0.5, side 32: 45.25 x 22.63
    [-S2 / H, -S2 * H, S2 / H, S2 * H],  # ratio 0.5, side 45.25: 64 x 32
    [-16.0, -16.0, 16.0, 16.0],
    [-S2, -S2, S2, S2],
    [-16 * H, -16 / H, 16 * H, 16 / H],  # ratio 2
    [-S2 * H, -S2 / H, S2 * H, S2 / H],
]


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [((1.0,), OFFICIAL_P3_ATSS), ((0.5, 1.0, 2.0), OFFICIAL_P3_MAXIOU)],
)
def test_base_anchors_equal_the_official_unrounded_ones(
    ratios: tuple[float, ...], expected: list[list[float]]
) -> None:
    sizes = anchor_sizes(2)
    assert sizes[0] == pytest.approx((32.0, 45.254834))  # torchvision would give 46
    gen = ExactAnchorGenerator(sizes, (ratios,) * 5)
    got = gen.cell_anchors[0]
    assert torch.allclose(got, torch.tensor(expected), atol=1e-5)
    assert not torch.equal(got, got.round())


def test_grid_anchors_sit_on_stride_multiples_in_mmdetection_order() -> None:
    anchors = Anchors(2, (0.5, 1.0, 2.0))
    sizes = [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1)]  # a 32 x 32 input
    all_anchors = anchors(sizes, torch.device("cpu"))
    assert anchors.counts(sizes, torch.device("cpu")) == [96, 24, 6, 6, 6]
    # Location (y=1, x=2) of P3 is index (1 · 4 + 2) · 6; shift (16, 8) added to each base.
    block = all_anchors[(1 * 4 + 2) * 6 : (1 * 4 + 2) * 6 + 6]
    expected = torch.tensor(OFFICIAL_P3_MAXIOU) + torch.tensor([16.0, 8.0, 16.0, 8.0])
    assert torch.allclose(block, expected, atol=1e-5)
    # P4's first location is the origin with sides 64 and 90.51 (ratio 1).
    p4 = all_anchors[96 : 96 + 6]
    assert float(p4[2, 2] - p4[2, 0]) == pytest.approx(64.0)
    assert float(p4[3, 2] - p4[3, 0]) == pytest.approx(64 * math.sqrt(2), abs=1e-4)


runner = CliRunner()


def test_print_config_prints_the_resolved_recipe_and_trains_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--train-ann", str(tmp_path / "a.json"), "--loss", "ap", "--print-config"]
    result = runner.invoke(app, [*args, "--out", str(out), "--sb-period-epochs", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc == TrainConfig.from_dict(doc).resolved().to_dict()  # complete and resolved
    m, optim = doc["model"], doc["optim"]
    assert m["loss"] == "ap" and optim["lr"] == 0.002 and m["assigner"] == "maxiou"
    assert m["anchor_ratios"] == [0.5, 1.0, 2.0] and m["group_norm"] is False
    assert m["pretrained"] is True and m["backbone_weights"] is None
    assert optim["sb_period_epochs"] == 2 and doc["runtime"]["out"] == str(out)
    assert not out.exists()
    # Given options win, as in training.
    result = runner.invoke(app, [*args, "--group-norm", "--lr-steps", "0.5", "--lr-batch", "8"])
    doc = json.loads(result.stdout)
    assert doc["model"]["group_norm"] is True
    assert doc["optim"]["lr_steps"] == [0.5] and doc["optim"]["lr_batch"] == 8
    bad = runner.invoke(app, ["train", "--print-config", "--sb-period-epochs", "0"])
    assert bad.exit_code == 2 and "--sb-period-epochs" in bad.stderr


# coco500 = configs/_base_/datasets/coco500_detection_augm.py
def test_coco_data_options_are_the_official_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cfg = _coco()
    assert cfg.data.augmentation == "official"  # coco500:5-28
    assert cfg.eval.test_scale == [833, 500]  # coco500:33
    assert cfg.data.keep_empty_images is False  # filter_empty_gt (mmdet/datasets/custom.py:59)
    assert cfg.runtime.workers == 8  # 16 CPUs, one process: 15, capped at 8
    assert _coco(nproc=4).runtime.workers == 3  # 16 CPUs over 4 processes, one each kept
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun's: 2 CPUs per process
    assert _coco().runtime.workers == 1
    given = _coco(workers=0, augmentation="mild", test_scale=[512, 512], keep_empty_images=True)
    assert (given.runtime.workers, given.data.augmentation) == (0, "mild")
    assert given.eval.test_scale == [512, 512] and given.data.keep_empty_images is True


def test_synthetic_data_options_are_mild_square_and_in_process() -> None:
    cfg = TrainConfig().resolved()
    assert (cfg.data.augmentation, cfg.eval.test_scale, cfg.runtime.workers) == (
        "mild",
        [128, 128],
        0,
    )
    assert TrainConfig.from_options(image_size=64).resolved().eval.test_scale == [64, 64]
    with pytest.raises(UserError, match="--augmentation"):
        TrainConfig.from_options(augmentation="strong").resolved()
    with pytest.raises(UserError, match="--test-scale"):
        TrainConfig.from_options(test_scale=[833]).resolved()


def test_print_config_shows_the_data_options(tmp_path: Path) -> None:
    args = ["train", "--train-ann", str(tmp_path / "a.json"), "--print-config"]
    doc = json.loads(runner.invoke(app, args).stdout)
    assert doc["data"]["augmentation"] == "official" and doc["eval"]["test_scale"] == [833, 500]
    assert isinstance(doc["runtime"]["workers"], int) and doc["runtime"]["workers"] >= 1
    doc = json.loads(
        runner.invoke(
            app, [*args, "--test-scale", "1333,800", "--workers", "2", "--keep-empty-images"]
        ).stdout
    )
    assert doc["eval"]["test_scale"] == [1333, 800] and doc["runtime"]["workers"] == 2
    assert doc["data"]["keep_empty_images"] is True
    synthetic = json.loads(runner.invoke(app, ["train", "--print-config"]).stdout)
    assert synthetic["data"]["augmentation"] == "mild" and synthetic["runtime"]["workers"] == 0
    bad = runner.invoke(app, [*args, "--test-scale", "833"])
    assert bad.exit_code == 2 and "--test-scale" in bad.stderr
