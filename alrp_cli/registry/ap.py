"""AP Loss in the registry (Chen et al., CVPR 2019), as published beside aLRP Loss.

Recipe sources: github.com/kemaloksuz/aLRPLoss at 2cfaa8e,
configs/alrp_loss/ap_loss_retinanet_r50_fpn_100e_coco500.py ("AP cfg" below).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from alrp_cli.losses import APLoss, ap_loss
from alrp_cli.losses.reference import ap_loss_reference
from alrp_cli.registry.entry import (
    AnalysisForm,
    BalanceForm,
    BenchForm,
    HeadForm,
    LossEntry,
    LossParts,
    Measure,
    Recipe,
    Sourced,
    Style,
    TrainForm,
    positives_of_batch,
    summed_parts,
)
from alrp_cli.registry.sources import AP_CFG, ATSS_CFG, COCO500, RETINANET_BASE

# The box loss: SmoothL1Loss(beta=1.0, loss_weight=1.0) (AP cfg:13), called with
# mmdetection's default reduction, the mean over the positives' 4 encoded deltas
# (mmdet/models/dense_heads/ap_loss_retina_head.py:206-209).
SMOOTH_L1_BETA = 1.0

RECIPE = Recipe(
    coco={
        "assigner": Sourced("maxiou", f"{AP_CFG}:2, {RETINANET_BASE}:47 (MaxIoUAssigner)"),
        "lr": Sourced(0.002, f"{AP_CFG}:15 (at batch 32: {COCO500}:45, 8 per GPU x 4 GPUs)"),
        "lr_steps": Sourced([0.6, 0.8], f"{AP_CFG}:18-19 (epochs 60, 80 of 100)"),
    },
    anchors={
        "atss": Sourced((2, [1.0]), f"{ATSS_CFG}:33-34 (the ATSS anchors of every loss)"),
        "maxiou": Sourced((2, [0.5, 1.0, 2.0]), f"{AP_CFG}:8, {RETINANET_BASE}:31"),
    },
)


def _train(inputs: Any, module: nn.Module | None, collective: Any) -> LossParts:
    num_pos = positives_of_batch(inputs, collective)
    if collective is None:
        cls = ap_loss(inputs.logits, inputs.targets)
    else:
        cls = ap_loss(inputs.logits, inputs.targets, collective=collective)
    # The official mean over the positives' 4 deltas (of the global batch under DDP).
    loc = F.smooth_l1_loss(
        inputs.deltas, inputs.target_deltas, beta=SMOOTH_L1_BETA, reduction="sum"
    ) / (4.0 * num_pos)
    return summed_parts(cls, loc, collective, global_cls=collective is not None)


def _head_module(*, period: int, init_weight: float, delta: float, collective: Any) -> nn.Module:
    return APLoss(delta=delta, collective=collective)


def _head(module: nn.Module, inputs: Any) -> tuple[Tensor, None]:
    return module(inputs.logits, inputs.targets), None


def _balance(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    return ap_loss(logits, targets, delta=delta)


def _balance_reference(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float
) -> tuple[float, Tensor]:
    out = ap_loss_reference(logits, targets, delta=delta)
    return float(out.cls), out.grad_logits


def _analysis(
    logits: Tensor, targets: Tensor, ious: Tensor, iou_threshold: float, delta: float
) -> dict[str, float]:
    return {"ap_loss": float(ap_loss(logits, targets, delta=delta))}


def _bench_fast(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, *, collective: Any = None
) -> Tensor:
    extra = {} if collective is None else {"collective": collective}
    return ap_loss(logits, targets, **extra)


def _bench_loop(logits: Tensor, targets: Tensor, loc_errors: Tensor) -> object:
    return ap_loss_reference(logits, targets)  # forward computes the update


ENTRY = LossEntry(
    name="ap",
    label="AP",
    title="AP Loss",
    paper="Chen et al., CVPR 2019",
    delta=1.0,
    function=ap_loss,
    module=APLoss,
    reference=ap_loss_reference,
    recipe=RECIPE,
    train=TrainForm(compute=_train),
    head=HeadForm(make_module=_head_module, apply=_head),
    balance=BalanceForm(_balance, checked=True, bounded=True, reference=_balance_reference),
    analysis=AnalysisForm(
        measures=(Measure("ap_loss", "AP Loss", "AP Loss", "AP", headline="AP loss"),),
        values=_analysis,
    ),
    bench=BenchForm(fast=_bench_fast, loop=_bench_loop),
    style=Style(color=2, marker="s", size=30, draw_order=2),
)
