"""Generated stand-ins for downloaded weights, shared by the detection and CLI tests."""

from __future__ import annotations

import torch
import torchvision


def imagenet_like(name: str = "resnet18", *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict as the 2017 ImageNet files hold it: with the
    classifier, without the BatchNorm batch counters; BatchNorm statistics not 0/1."""
    torch.manual_seed(seed)
    state = getattr(torchvision.models, name)().state_dict()
    for key in state:
        if key.endswith(("running_mean", "running_var", "bn1.weight", "bn1.bias")):
            state[key] = torch.rand_like(state[key]) + 0.5
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


# An mmdetection 2.x checkpoint of the official repository, written out from mmdetection's
# module names (mmdet/models/backbones/resnet.py BasicBlock, necks/fpn.py ConvModule,
# dense_heads/alrp_loss_retina_head.py) with random values: a ResNet-18 RetinaNet, FPN and
# head 32 channels wide, P6 on C5, 4 convs per tower, 3 classes.
MMDET_CLASSES = ("person", "bicycle", "car")
MMDET_CONFIG = """\
model = dict(
    type='RetinaNet',
    pretrained='torchvision://resnet18',
    backbone=dict(
        type='ResNet',
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch'),
    neck=dict(
        type='FPN',
        in_channels=[64, 128, 256, 512],
        out_channels=32,
        start_level=1,
        add_extra_convs='on_input',
        num_outs=5),
    bbox_head=dict(
        type='aLRPLossRetinaHead',
        num_classes=3,
        in_channels=32,
        stacked_convs=4,
        feat_channels=32,
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=4,
            scales_per_octave=2,
            ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_bbox=dict(type='GIoULoss', reduction='none')))
train_cfg = dict(
    assigner=dict(
        type='MaxIoUAssigner',
        pos_iou_thr=0.5,
        neg_iou_thr=0.4,
        min_pos_iou=0,
        ignore_iof_thr=-1),
    allowed_border=-1,
    pos_weight=-1,
    debug=False)
test_cfg = dict(
    nms_pre=1000,
    min_bbox_size=0,
    score_thr=0.05,
    nms=dict(type='nms', iou_thr=0.5),
    max_per_img=100)
dataset_type = 'CocoDataset'
data_root = 'data/coco/'
img_norm_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
data = dict(
    samples_per_gpu=8,
    workers_per_gpu=4,
    train=dict(
        type='CocoDataset',
        ann_file='data/coco/annotations/instances_train2017.json',
        img_prefix='data/coco/train2017/',
        pipeline=[
            dict(type='LoadImageFromFile', to_float32=True),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', img_scale=(128, 128), keep_ratio=False),
            dict(type='RandomFlip', flip_ratio=0.5),
            dict(
                type='Normalize',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True),
            dict(type='DefaultFormatBundle'),
            dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels'])
        ]),
    test=dict(
        type='CocoDataset',
        ann_file='data/coco/annotations/instances_val2017.json',
        img_prefix='data/coco/val2017/',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                type='MultiScaleFlipAug',
                img_scale=(833, 500),
                flip=False,
                transforms=[
                    dict(type='Resize', keep_ratio=True),
                    dict(
                        type='Normalize',
                        mean=[123.675, 116.28, 103.53],
                        std=[58.395, 57.12, 57.375],
                        to_rgb=True),
                    dict(type='Pad', size_divisor=32),
                    dict(type='ImageToTensor', keys=['img']),
                    dict(type='Collect', keys=['img'])
                ])
        ]))
evaluation = dict(interval=1, metric='bbox')
optimizer = dict(type='SGD', lr=0.008, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
lr_config = dict(
    policy='step',
    warmup='linear',
    warmup_iters=500,
    warmup_ratio=0.001,
    step=[60, 80])
total_epochs = 100
checkpoint_config = dict(interval=1)
log_level = 'INFO'
work_dir = './work_dirs/alrp_loss_retinanet_r18_fpn_100e_coco500'
gpu_ids = range(0, 4)
"""


def mmdet_shapes(anchors: int = 6, classes: int = 3) -> dict[str, tuple[int, ...]]:
    """Every tensor of that checkpoint's state_dict: mmdetection's name -> shape."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out: int, inp: int, k: int, bias: bool = False) -> None:
        shapes[f"{name}.weight"] = (out, inp, k, k)
        if bias:
            shapes[f"{name}.bias"] = (out,)

    def bn(name: str, c: int) -> None:
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{p}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    conv("backbone.conv1", 64, 3, 7)
    bn("backbone.bn1", 64)
    inplanes = 64
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):  # BasicBlock x 2 per stage (depth 18)
            p = f"backbone.layer{stage}.{block}"
            conv(f"{p}.conv1", planes, inplanes if block == 0 else planes, 3)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            if block == 0 and stage > 1:
                conv(f"{p}.downsample.0", planes, inplanes, 1)
                bn(f"{p}.downsample.1", planes)
        inplanes = planes
    for i, c in enumerate((128, 256, 512)):  # start_level=1: C3, C4, C5
        conv(f"neck.lateral_convs.{i}.conv", 32, c, 1, bias=True)
        conv(f"neck.fpn_convs.{i}.conv", 32, 32, 3, bias=True)
    conv("neck.fpn_convs.3.conv", 32, 512, 3, bias=True)  # P6 on C5 ('on_input')
    conv("neck.fpn_convs.4.conv", 32, 32, 3, bias=True)  # P7 on P6
    for tower in ("cls", "reg"):
        for i in range(4):
            conv(f"bbox_head.{tower}_convs.{i}.conv", 32, 32, 3, bias=True)
    conv("bbox_head.retina_cls", anchors * classes, 32, 3, bias=True)
    conv("bbox_head.retina_reg", anchors * 4, 32, 3, bias=True)
    return shapes


def mmdet_checkpoint(*, seed: int = 0, config: str | None = MMDET_CONFIG) -> dict:
    """The checkpoint as mmcv's save_checkpoint writes it: ``meta`` and ``state_dict``
    (random values, BatchNorm variances positive) and the optimizer's state."""
    from collections import OrderedDict

    g = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, shape in mmdet_shapes().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(366500)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g) * 0.05
    meta = {"mmdet_version": "2.3.0+2cfaa8e", "CLASSES": MMDET_CLASSES, "epoch": 100,
            "iter": 366500, "mmcv_version": "0.6.2", "time": "Sat Sep 26 2020"}  # fmt: skip
    if config is not None:
        meta["config"] = config
    return {"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}


def save_legacy(obj: object, path: object) -> None:
    """torch.save in the format before torch 1.6 (the released models were saved so)."""
    torch.save(obj, path, _use_new_zipfile_serialization=False)
