"""The per-preset defaults of ``alrp train`` (plain data; :mod:`.config` declares the
settings and resolves them).

``"synthetic"``: the small CPU configuration (no dataset given, or a folder written by
``alrp data synth``); ``"coco"``: the official configuration of aLRP Loss, which each
loss's recipe in :mod:`alrp_cli.registry` overrides where its own differs.
"""

from __future__ import annotations

import os
from typing import Any

# Sources: the official aLRP repository, github.com/kemaloksuz/aLRPLoss at commit 2cfaa8e
# (mmdetection 2.x); docs/training.md has the table. Abbreviations:
# "ATSS cfg"    configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py
# "max-IoU cfg" configs/alrp_loss/alrp_loss_retinanet_r50_fpn_100e_coco500.py
# "AP cfg"      configs/alrp_loss/ap_loss_retinanet_r50_fpn_100e_coco500.py
# "RetinaNet base" configs/_base_/models/retinanet_r50_fpn.py
# "schedule_1x" configs/_base_/schedules/schedule_1x.py
# "coco500"     configs/_base_/datasets/coco500_detection_augm.py
PRESETS: dict[str, dict[str, Any]] = {
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
}
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
