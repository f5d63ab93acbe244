"""Turn head outputs and assignments into the inputs of aLRP Loss, AP Loss or Focal Loss.

All three losses see the same assignment and the same flattened (anchor, class) logits, so
comparisons between them are fair: only the loss differs.

- ``alrp``: logits flattened over (image, anchor, class) with one-hot targets (ignored anchors
  -1 on every class); localisation error of each positive e = 1 − GIoU of its decoded box;
  :class:`~alrp_cli.losses.ALRPLoss` (self-balance per epoch) combines the two parts.
- ``ap``: AP Loss on the same logits + smooth L1 (β = 1, mean over the positives' 4 encoded
  box deltas) as the official AP-Loss configuration (configs/alrp_loss/
  ap_loss_retinanet_r50_fpn_100e_coco500.py:13; mmdet/models/dense_heads/
  ap_loss_retina_head.py:206-209 calls it with mmdetection's default reduction, the mean).
- ``focal``: torchvision's sigmoid focal loss (α = 0.25, γ = 2) + GIoU loss (weight 2, as
  mmdetection's ATSS), both normalised by the number of positives.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from alrp_cli.detection.assigners import IGNORED, assign
from alrp_cli.detection.model import Detector, HeadOutput

LOSSES = ("alrp", "ap", "focal")
FOCAL_GIOU_WEIGHT = 2.0
SMOOTH_L1_BETA = 1.0  # AP cfg:13 (SmoothL1Loss, beta=1.0, loss_weight=1.0)


@dataclass
class LossInputs:
    """The flattened loss inputs of one batch (see DESIGN.md, "The losses").

    logits Tensor[N] float32, targets Tensor[N] int8 in {1, 0, -1}, loc_errors Tensor[P]
    float32 (1 − GIoU, one per positive in logits order), plus what the baselines need:
    cls_logits Tensor[M, C] and onehot Tensor[M, C] of the non-ignored anchors, deltas and
    target_deltas Tensor[P, 4] of the positives.
    """

    logits: Tensor
    targets: Tensor
    loc_errors: Tensor
    cls_logits: Tensor
    onehot: Tensor
    deltas: Tensor
    target_deltas: Tensor

    @property
    def num_pos(self) -> int:
        """Number of positive anchors in the batch."""
        return int(self.loc_errors.shape[0])


@dataclass
class LossParts:
    """One step's loss: ``total`` (what backward runs on), the loss value and its ``cls``
    and ``loc`` parts (detached floats) and the self-balance weight (``None`` for the
    baselines).

    With a collective (a global loss over several processes), ``total``'s gradient with
    respect to this process's inputs is this process's rows of the global loss's gradient,
    and ``value``, ``cls`` and ``loc`` are this process's report values: their mean over the
    processes is the global loss and its parts.
    """

    total: Tensor
    cls: float
    loc: float
    sb_weight: float | None
    value: float = float("nan")


def build_loss_inputs(
    model: Detector, out: HeadOutput, targets: list[dict[str, Tensor]], *, assigner: str
) -> LossInputs:
    """Assign anchors of every image and flatten the batch into loss inputs.

    ``out`` holds cls Tensor[B, A, C] and reg Tensor[B, A, 4]; ``targets[i]`` has "boxes"
    Tensor[K, 4] XYXY (input-image coordinates) and "labels" Tensor[K] int64 in 0..C-1.
    """
    cls = out.cls.float()
    reg = out.reg.float()
    b, a, c = cls.shape
    anchors = out.anchors
    with torch.no_grad():
        assigned = torch.stack(
            [assign(assigner, anchors, out.level_counts, t["boxes"].to(anchors)) for t in targets]
        )  # [B, A]
    pos = assigned >= 0  # [B, A]
    onehot = torch.zeros((b, a, c), dtype=torch.float32, device=cls.device)
    gt_boxes, labels = [], []
    for i, t in enumerate(targets):
        idx = assigned[i][pos[i]]
        gt_boxes.append(t["boxes"].to(anchors)[idx])
        labels.append(t["labels"].to(cls.device)[idx])
    gt = torch.cat(gt_boxes) if gt_boxes else anchors.new_zeros((0, 4))
    lab = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64, device=cls.device)
    pos_b, pos_a = pos.nonzero(as_tuple=True)  # row-major: the order positives appear
    onehot[pos_b, pos_a, lab] = 1.0
    flat_targets = onehot.to(torch.int8)
    flat_targets[assigned == IGNORED] = -1
    valid = assigned != IGNORED
    anchors_pos = anchors[pos_a]
    deltas = reg[pos_b, pos_a]
    boxes = model.decode(deltas, anchors_pos)
    loc_errors = generalized_box_iou_loss(boxes, gt, reduction="none")
    target_deltas = model.box_coder.encode_single(gt, anchors_pos)
    return LossInputs(
        logits=cls.reshape(-1),
        targets=flat_targets.reshape(-1),
        loc_errors=loc_errors,
        cls_logits=cls[valid],
        onehot=onehot[valid],
        deltas=deltas,
        target_deltas=target_deltas,
    )


def count_non_finite(inputs: LossInputs) -> Tensor:
    """Tensor[2] float32: the numbers of non-finite logits and localisation errors (and box
    deltas), on the inputs' device, so that processes can sum them before any loss runs."""
    return torch.stack(
        [
            (~torch.isfinite(inputs.logits)).sum(),
            (~torch.isfinite(inputs.loc_errors)).sum() + (~torch.isfinite(inputs.deltas)).sum(),
        ]
    ).float()


def make_loss_module(
    kind: str,
    *,
    period: int,
    init_weight: float = 50.0,
    fixed: bool = False,
    collective: Any = None,
) -> nn.Module | None:
    """The stateful loss module of ``kind``: :class:`ALRPLoss` for 'alrp' (self-balance with
    ``period`` steps per update — the training loop passes iterations per epoch ×
    ``sb_period_epochs``; the official period is one epoch, 3665 iterations of batch 32,
    mmdet/models/dense_heads/alrp_loss_retina_head.py:59; ``fixed=True`` holds the weight at
    ``init_weight``), ``None`` for the stateless baselines. ``collective`` makes it rank
    the global batch."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    if kind == "alrp":
        from alrp_cli.losses import ALRPLoss

        # A period that is never reached is a fixed weight: ALRPLoss has no other switch.
        extra = {} if collective is None else {"collective": collective}
        return ALRPLoss(period=sys.maxsize if fixed else period, init_weight=init_weight, **extra)
    return None


def compute_loss(
    kind: str, inputs: LossInputs, module: nn.Module | None, *, collective: Any = None
) -> LossParts:
    """The loss of ``kind`` ('alrp', 'ap' or 'focal') on one batch's inputs, in float32.

    ``collective`` (see ``alrp_cli.losses.collective``): the loss of the global batch of all
    processes: aLRP and AP Loss rank the global batch, and sums divided by the number of
    positives divide by the global number (see :class:`LossParts` for what is returned).
    """
    if kind == "alrp":
        assert module is not None
        res = module(inputs.logits, inputs.targets, inputs.loc_errors)
        return LossParts(
            total=res.total,
            cls=float(res.cls.detach()),
            loc=float(res.loc.detach()),
            sb_weight=float(res.weight),
            value=float(res.total.detach()),
        )
    world = 1 if collective is None else collective.world_size
    num_pos = float(inputs.num_pos)
    if collective is not None:
        count = torch.tensor([num_pos], dtype=torch.float64, device=inputs.logits.device)
        num_pos = float(collective.all_reduce_sum(count).item())
    num_pos = max(1.0, num_pos)
    cls_world = world  # a sum over this rank's rows: its report value is world × its share
    if kind == "ap":
        from alrp_cli.losses import ap_loss

        if collective is None:
            cls = ap_loss(inputs.logits, inputs.targets)
        else:
            cls = ap_loss(inputs.logits, inputs.targets, collective=collective)
            cls_world = 1  # already the global value
        # The official mean over the positives' 4 deltas (of the global batch under DDP).
        loc = F.smooth_l1_loss(
            inputs.deltas, inputs.target_deltas, beta=SMOOTH_L1_BETA, reduction="sum"
        ) / (4.0 * num_pos)
    elif kind == "focal":
        cls = sigmoid_focal_loss(inputs.cls_logits, inputs.onehot, reduction="sum") / num_pos
        loc = FOCAL_GIOU_WEIGHT * inputs.loc_errors.sum() / num_pos
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    cls_value, loc_value = float(cls.detach()) * cls_world, float(loc.detach()) * world
    return LossParts(
        total=cls + loc,
        cls=cls_value,
        loc=loc_value,
        sb_weight=None,
        value=cls_value + loc_value,
    )
