"""Rank & Sort Loss in the registry (Oksuz, Cam, Akbas, Kalkan, ICCV 2021), as its RS-ATSS.

Recipe sources: github.com/kemaloksuz/RankSortLoss; its one-stage model RS-ATSS is
configs/ranksort_loss/ranksort_atss_r50_fpn_1x_coco.py ("RS cfg") with the head
mmdet/models/dense_heads/rank_based_atss_head.py ("RS head"). The detector's loss is that
head's (RS head:205-260):

- classification: Rank & Sort Loss, ``ranking + sorting``, over every (image, anchor,
  class) pair, each positive's target the IoU of its decoded box with its ground truth,
  detached (RS head:246-249), δ = 0.5 (RS head:37);
- box regression: GIoU loss (1 − GIoU, RS cfg:40) of each positive weighted by its anchor's
  highest class score, sigmoid, detached (RS head:230 takes the max over *all* classes, not
  the score of the positive's own class), divided by the sum of those weights (1 when the
  sum is below 1e-12, RS head:251-255);
- the box loss is multiplied by w = (ranking + sorting) / box loss, recomputed every
  iteration from detached values (RS head:257-258), so both parts weigh the same and
  there is no weight to tune. ``LossParts.sb_weight`` reports w, ``loc`` the box loss
  before it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from alrp_cli.loss_inputs import LossInputs, with_ious
from alrp_cli.losses import RSLoss, rs_loss
from alrp_cli.losses.collective import Collective
from alrp_cli.losses.reference_rs import rs_loss_reference
from alrp_cli.registry.entry import (
    BALANCED,
    IOUS,
    LOC_ERRORS,
    ZERO_SUM,
    AnalysisForm,
    BalanceForm,
    BalancePart,
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
from alrp_cli.registry.sources import (
    RETINANET_BASE,
    RS_ATSS_CFG,
    RS_ATSS_HEAD,
    RS_README,
    SCHEDULE_1X,
)

#: δ of the smoothed step: ``delta = 0.5`` of RankBasedATSSHead (RS head:37).
DELTA = 0.5
#: A total box weight below this divides by 1 instead (``EPS = 1e-12``, RS head:17, 251-253).
BOX_WEIGHT_EPS = 1e-12

RECIPE = Recipe(
    coco={
        # Equal to the COCO preset, so not restated here: ResNet-50 (RS cfg:9-10) from
        # torchvision://resnet50 with frozen_stages=1, norm_eval=True (RS cfg:7, 13-15),
        # 256 channels (RS cfg:20, 29), warmup 500 iterations from 0.001 (schedule_1x:8-9).
        "assigner": Sourced("atss", f"{RS_ATSS_CFG}:44 (ATSSAssigner, topk 9)"),
        "group_norm": Sourced(True, f"{RS_ATSS_HEAD}:36 (GroupNorm, 32 groups, in both towers)"),
        "p6_from": Sourced("p5", f"{RS_ATSS_CFG}:22 (add_extra_convs='on_output')"),
        "batch_size": Sourced(16, f"{RS_ATSS_CFG}:56 (4 per GPU) x 4 GPUs ({RS_README}:107)"),
        "lr_batch": Sourced(16, f"{RS_ATSS_CFG}:60 (lr 0.008 is for that batch of 16)"),
        "lr": Sourced(0.008, f"{RS_ATSS_CFG}:60"),
        "epochs": Sourced(12, f"{SCHEDULE_1X}:11 (RS cfg:3)"),
        "lr_steps": Sourced([8 / 12, 11 / 12], f"{SCHEDULE_1X}:10 (epochs 8, 11)"),
        "nms_iou": Sourced(0.6, f"{RS_ATSS_CFG}:52"),
    },
    anchors={
        # octave_base_scale 4 (the detector's), 3 scales per octave, ratio 1: 3 per location
        "atss": Sourced((3, [1.0]), f"{RS_ATSS_CFG}:32-34"),
        # No max-IoU configuration of RS-ATSS: the RetinaNet anchors of the same repository
        "maxiou": Sourced((3, [0.5, 1.0, 2.0]), f"{RETINANET_BASE}:30-31"),
    },
)


class RSDetectorLoss(NamedTuple):
    """The RS-ATSS head's loss on a batch (see the module docstring).

    Attributes:
        ranking, sorting (Tensor[]): Rank & Sort Loss's two parts (of the global batch with
            a collective); their backward writes the identity update.
        box (Tensor[]): the score-weighted GIoU loss Σ w_i (1 − GIoU_i) / Σ w_i (of the
            global batch with a collective: then every process has its value, and its
            gradient reaches this process's boxes: their rows of the global gradient).
        box_value (float): its value.
        weight (float): (ranking + sorting) / ``box_value``; 0 when ``box_value`` is 0
            (the published code divides by zero there).
    """

    ranking: Tensor
    sorting: Tensor
    box: Tensor
    box_value: float
    weight: float


def rs_detector_loss(
    inputs: LossInputs, *, delta: float = DELTA, collective: Collective | None = None
) -> RSDetectorLoss:
    """The RS-ATSS head's loss on one batch's :class:`~alrp_cli.loss_inputs.LossInputs`
    (with ``ious`` and ``loc_errors``). ``collective``: the loss of the global batch of all
    processes (the ranking over every process's pairs, the box loss divided by every
    process's total weight)."""
    assert inputs.loc_errors is not None
    extra = {} if collective is None else {"collective": collective}
    out = rs_loss(inputs.logits, inputs.quality_targets, delta=delta, **extra)
    weights = inputs.pos_scores.sigmoid().amax(dim=1)  # RS head:230, detached
    loc = inputs.loc_errors
    w = weights.double()  # Σ w and Σ w·e, what the processes add up
    totals = torch.stack([w.sum(), (w * loc.detach().double()).sum()])
    if collective is not None:
        totals = collective.all_reduce_sum(totals)
    norm = float(totals[0]) if float(totals[0]) >= BOX_WEIGHT_EPS else 1.0
    box_value = float(totals[1]) / norm
    cls_value = float(out.ranking.detach()) + float(out.sorting.detach())
    weight = cls_value / box_value if box_value > 0 else 0.0
    box = (weights.to(loc.dtype) * loc).sum() / norm  # this process's share
    if collective is not None:  # the global value, this process's gradient
        box = box + (box_value - box.detach())
    return RSDetectorLoss(out.ranking, out.sorting, box, box_value, weight)


def _train(inputs: Any, module: nn.Module | None, collective: Any) -> LossParts:
    res = rs_detector_loss(inputs, collective=collective)
    cls = res.ranking + res.sorting
    cls_value, loc_value = float(cls.detach()), res.box_value  # global ones with a collective
    return LossParts(
        total=cls + res.weight * res.box,
        cls=cls_value,
        loc=loc_value,
        sb_weight=res.weight,
        value=cls_value + res.weight * loc_value,
    )


def _head_module(*, period: int, init_weight: float, delta: float, collective: Any) -> nn.Module:
    return RSLoss(delta=delta, collective=collective)


def _head(module: nn.Module, inputs: Any) -> tuple[Tensor, Tensor]:
    assert isinstance(module, RSLoss)
    res = rs_detector_loss(inputs, delta=module.delta, collective=module.collective)
    return res.ranking + res.sorting, res.weight * res.box


def _balance_targets(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, ious: Tensor | None
) -> Tensor:
    if ious is None:  # inputs recorded without IoUs: (1 + GIoU) / 2, in (0, 1]
        ious = 1.0 - loc_errors / 2
    # The check compares the inputs' positives with their negatives; an IoU of 0 (which the
    # published code would count as a negative) is taken as the smallest positive IoU.
    tiny = torch.finfo(logits.dtype).tiny
    return with_ious(targets, ious.clamp(min=tiny), logits.dtype)


def _balance(
    logits: Tensor,
    targets: Tensor,
    loc_errors: Tensor,
    delta: float,
    *,
    ious: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    out = rs_loss(logits, _balance_targets(logits, targets, loc_errors, ious), delta=delta)
    return out.ranking, out.sorting


def _balance_reference(
    logits: Tensor,
    targets: Tensor,
    loc_errors: Tensor,
    delta: float,
    *,
    ious: Tensor | None = None,
) -> tuple[tuple[float, Tensor], tuple[float, Tensor]]:
    t = _balance_targets(logits, targets, loc_errors, ious)
    out = rs_loss_reference(logits, t, delta=delta)
    return (float(out.ranking), out.grad_ranking), (float(out.sorting), out.grad_sorting)


def _analysis(
    logits: Tensor, targets: Tensor, ious: Tensor, iou_threshold: float, delta: float
) -> dict[str, float]:
    # Detections as a loss input: each true positive's target is its IoU (≥ τ > 0; an IoU
    # computed a rounding above 1 is 1).
    out = rs_loss(logits, with_ious(targets, ious.clamp(max=1.0), logits.dtype), delta=delta)
    ranking, sorting = float(out.ranking), float(out.sorting)
    return {"rs_ranking": ranking, "rs_sorting": sorting, "rs": ranking + sorting}


def _bench_targets(targets: Tensor, loc_errors: Tensor) -> Tensor:
    # IoU targets in (0, 1]: the bench's errors are uniform in [0, 1). Integer targets
    # (IoU 1 everywhere) would leave the sorting part nothing to do.
    return with_ious(targets, 1.0 - loc_errors, loc_errors.dtype)


def _bench_fast(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, *, collective: Any = None
) -> Tensor:
    extra = {} if collective is None else {"collective": collective}
    out = rs_loss(logits, targets, **extra)
    return out.ranking + out.sorting


def _bench_loop(logits: Tensor, targets: Tensor, loc_errors: Tensor) -> object:
    return rs_loss_reference(logits, targets)  # forward computes the update


ENTRY = LossEntry(
    name="rs",
    label="RS",
    title="Rank & Sort Loss",
    paper="Oksuz, Cam, Akbas, Kalkan, ICCV 2021",
    needs=frozenset({LOC_ERRORS, IOUS}),
    delta=DELTA,
    function=rs_loss,
    module=RSLoss,
    reference=rs_loss_reference,
    recipe=RECIPE,
    train=TrainForm(compute=_train),
    head=HeadForm(make_module=_head_module, apply=_head),
    balance=BalanceForm(
        _balance,
        checked=True,
        bounded=True,
        reference=_balance_reference,
        takes_ious=True,
        parts=(BalancePart("ranking", BALANCED), BalancePart("sorting", ZERO_SUM)),
        derived_ious="(1 + GIoU) / 2 = 1 − e/2 of each recorded localisation error as its IoU",
    ),
    analysis=AnalysisForm(
        measures=(
            Measure("rs_ranking", "RS ranking", "RS rank", "RS rank"),
            Measure("rs_sorting", "RS sorting", "RS sort", "RS sort"),
            Measure("rs", "RS", "RS", "RS", headline="RS loss"),
        ),
        values=_analysis,
    ),
    bench=BenchForm(fast=_bench_fast, loop=_bench_loop, targets=_bench_targets),
    style=Style(color=4, marker="D", size=16, draw_order=2),
)
