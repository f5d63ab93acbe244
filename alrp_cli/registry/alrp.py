"""aLRP Loss in the registry (Oksuz et al., NeurIPS 2020).

Recipe sources: github.com/kemaloksuz/aLRPLoss at 2cfaa8e (mmdetection 2.x); its headline
model is configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py, which is
``PRESETS["coco"]`` itself, so only the max-IoU variant adds values here.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import Tensor, nn

from alrp_cli.losses import ALRPLoss, alrp_loss
from alrp_cli.losses.reference import alrp_loss_reference
from alrp_cli.registry.entry import (
    LOC_ERRORS,
    SELF_BALANCE,
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
)
from alrp_cli.registry.sources import ATSS_CFG, MAXIOU_CFG, RETINANET_BASE

RECIPE = Recipe(
    coco={},  # PRESETS["coco"] is the ATSS configuration
    anchors={
        "atss": Sourced((2, [1.0]), f"{ATSS_CFG}:33-34"),
        "maxiou": Sourced((2, [0.5, 1.0, 2.0]), f"{MAXIOU_CFG}:8, {RETINANET_BASE}:31"),
    },
    # With the max-IoU assigner the schedule is the max-IoU cfg's: steps at epochs 60, 80
    # of 100 (README.md: "decreasing learning rate in 60th and 80th epochs").
    by_assigner={"maxiou": {"lr_steps": Sourced([0.6, 0.8], f"{MAXIOU_CFG}:18-19")}},
)


def _make_state(*, period: int, init_weight: float, fixed: bool, collective: Any) -> nn.Module:
    # The official period is one epoch, 3665 iterations of batch 32
    # (mmdet/models/dense_heads/alrp_loss_retina_head.py:59). A period that is never
    # reached is a fixed weight: ALRPLoss has no other switch.
    extra = {} if collective is None else {"collective": collective}
    return ALRPLoss(period=sys.maxsize if fixed else period, init_weight=init_weight, **extra)


def _train(inputs: Any, module: nn.Module | None, collective: Any) -> LossParts:
    assert module is not None
    res = module(inputs.logits, inputs.targets, inputs.loc_errors)
    return LossParts(
        total=res.total,
        cls=float(res.cls.detach()),
        loc=float(res.loc.detach()),
        sb_weight=float(res.weight),
        value=float(res.total.detach()),
    )


def _head_module(*, period: int, init_weight: float, delta: float, collective: Any) -> nn.Module:
    return ALRPLoss(period=period, init_weight=init_weight, delta=delta, collective=collective)


def _head(module: nn.Module, inputs: Any) -> tuple[Tensor, Tensor]:
    res = module(inputs.logits, inputs.targets, inputs.loc_errors)
    return res.cls, res.weight.to(res.loc.dtype) * res.loc


def _balance(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    return alrp_loss(logits, targets, loc_errors, delta=delta).cls


def _balance_reference(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float
) -> tuple[float, Tensor]:
    out = alrp_loss_reference(logits, targets, loc_errors, delta=delta)
    return float(out.cls), out.grad_logits


def _analysis(
    logits: Tensor, targets: Tensor, ious: Tensor, iou_threshold: float, delta: float
) -> dict[str, float]:
    # Detections as a loss input: e = (1 − IoU) / (1 − τ), the official normalisation.
    out = alrp_loss(logits, targets, (1.0 - ious) / (1.0 - iou_threshold), delta=delta)
    cls, loc = float(out.cls), float(out.loc)
    return {"alrp_cls": cls, "alrp_loc": loc, "alrp": cls + loc}


def _bench_fast(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, *, collective: Any = None
) -> Tensor:
    # A training step backpropagates both parts.
    e = loc_errors.detach().requires_grad_()
    extra = {} if collective is None else {"collective": collective}
    out = alrp_loss(logits, targets, e, **extra)
    return out.cls + out.loc


def _bench_loop(logits: Tensor, targets: Tensor, loc_errors: Tensor) -> object:
    return alrp_loss_reference(logits, targets, loc_errors)  # forward computes the update


ENTRY = LossEntry(
    name="alrp",
    label="aLRP",
    title="aLRP Loss",
    paper="Oksuz, Cam, Akbas, Kalkan, NeurIPS 2020",
    needs=frozenset({LOC_ERRORS, SELF_BALANCE}),
    delta=1.0,
    function=alrp_loss,
    module=ALRPLoss,
    reference=alrp_loss_reference,
    recipe=RECIPE,
    train=TrainForm(compute=_train, make_state=_make_state),
    head=HeadForm(make_module=_head_module, apply=_head),
    balance=BalanceForm(_balance, checked=True, bounded=True, reference=_balance_reference),
    analysis=AnalysisForm(
        measures=(
            Measure("alrp_cls", "aLRP L_cls", "L_cls", "aLRP cls"),
            Measure("alrp_loc", "aLRP L_loc", "L_loc", "aLRP loc"),
            Measure("alrp", "aLRP", "aLRP", "aLRP", headline="aLRP loss"),
        ),
        values=_analysis,
    ),
    bench=BenchForm(fast=_bench_fast, loop=_bench_loop),
    style=Style(color=0, marker="o", size=12, draw_order=3),
)
