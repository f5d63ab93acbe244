"""Focal Loss in the registry (Lin et al., ICCV 2017): the baseline of ``alrp train`` and a
contrast in ``alrp check-balance``.

torchvision's ``sigmoid_focal_loss`` (α = 0.25, γ = 2) is imported when called, so the
registry loads without torchvision. Recipe sources: mmdetection's RetinaNet 1x as shipped
in github.com/kemaloksuz/aLRPLoss at 2cfaa8e.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from alrp_cli.registry.entry import (
    LOC_ERRORS,
    BalanceForm,
    LossEntry,
    LossParts,
    Recipe,
    Sourced,
    Style,
    TrainForm,
    positives_of_batch,
    summed_parts,
)
from alrp_cli.registry.sources import (
    ATSS_CFG,
    GETTING_STARTED,
    RETINANET_1X,
    RETINANET_BASE,
    SCHEDULE_1X,
)

# The box loss: GIoU loss with weight 2, as mmdetection's ATSS head.
GIOU_WEIGHT = 2.0

RECIPE = Recipe(
    coco={
        "assigner": Sourced("maxiou", f"{RETINANET_BASE}:47 (MaxIoUAssigner)"),
        "batch_size": Sourced(16, f"{GETTING_STARTED}:261 (8 GPUs x 2 images)"),
        "lr_batch": Sourced(16, f"{GETTING_STARTED}:261 (lr 0.01 is for batch 16)"),
        "lr": Sourced(0.01, f"{RETINANET_1X}:7"),
        "epochs": Sourced(12, f"{SCHEDULE_1X}:11"),
        "lr_steps": Sourced([8 / 12, 11 / 12], f"{SCHEDULE_1X}:10 (epochs 8, 11)"),
    },
    anchors={
        "atss": Sourced((2, [1.0]), f"{ATSS_CFG}:33-34 (the ATSS anchors of every loss)"),
        "maxiou": Sourced((3, [0.5, 1.0, 2.0]), f"{RETINANET_BASE}:30-31"),
    },
)


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, **options: Any) -> Tensor:
    """torchvision's ``sigmoid_focal_loss`` (imported on first use); same arguments."""
    from torchvision.ops import sigmoid_focal_loss as focal

    return focal(inputs, targets, **options)


def _train(inputs: Any, module: nn.Module | None, collective: Any) -> LossParts:
    num_pos = positives_of_batch(inputs, collective)
    cls = sigmoid_focal_loss(inputs.cls_logits, inputs.onehot, reduction="sum") / num_pos
    loc = GIOU_WEIGHT * inputs.loc_errors.sum() / num_pos
    return summed_parts(cls, loc, collective)


def _balance(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    # RetinaNet's classification loss over the non-ignored pairs, summed and divided by
    # |P|, as RetinaNet trains with it.
    keep = targets >= 0
    num_pos = max(int((targets == 1).sum()), 1)
    loss = sigmoid_focal_loss(logits[keep], targets[keep].to(logits.dtype), reduction="sum")
    return loss / num_pos


ENTRY = LossEntry(
    name="focal",
    label="focal",
    title="Focal Loss",
    paper="Lin et al., ICCV 2017",
    needs=frozenset({LOC_ERRORS}),
    function=sigmoid_focal_loss,
    recipe=RECIPE,
    train=TrainForm(compute=_train),
    balance=BalanceForm(_balance, checked=False),
    style=Style(color=3, marker="^", draw_order=1),
)
