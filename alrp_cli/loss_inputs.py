"""From a dense head's outputs and its anchor assignment to the inputs of every loss.

One function, :func:`flatten_head_outputs`, serves ``alrp train``'s detector
(:mod:`alrp_cli.detection.head_losses`, after its own assigner) and the torchvision heads
(:mod:`alrp_cli.integrations.torchvision`, after torchvision's matcher), so both flatten the
same way: the classification logits of every (image, anchor, class) pair row-major, one-hot
targets at each matched anchor's class, -1 on every class of an ignored anchor, and per
positive, in the order the positives appear in the flat logits, its decoded box, its
localisation error e = 1 − GIoU and, when a loss asks, its IoU with its box.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

BoxFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class LossInputs:
    """A batch of B images with A anchors each and C classes, flattened.

    Attributes:
        logits (Tensor[B·A·C], the head's dtype): classification logits, row-major.
        targets (Tensor[B·A·C], int8): 1 positive, 0 negative, -1 ignored.
        valid (Tensor[B, A], bool): the anchors that are not ignored.
        pos_image, pos_anchor (Tensor[P], int64): image and anchor of each positive, in
            the order the positives appear in ``logits``; every tensor below follows it.
        labels (Tensor[P], int64): class of each positive.
        anchors (Tensor[P, 4], float32): its anchor (XYXY).
        gt_boxes (Tensor[P, 4], float32): its matched box (XYXY).
        deltas (Tensor[P, 4], float32): its predicted box deltas (differentiable).
        boxes (Tensor[P, 4], float32): the deltas decoded against the anchor (XYXY).
        loc_errors (Tensor[P], float32 or None): e = 1 − GIoU(box, matched box),
            differentiable; None when not asked for.
        ious (Tensor[P], float32 or None): IoU(box, matched box), detached (the continuous
            target of a positive); None when not asked for.
        target_deltas (Tensor[P, 4], float32 or None): the matched box encoded against the
            anchor; None without an encoder.
    """

    logits: Tensor
    targets: Tensor
    valid: Tensor
    pos_image: Tensor
    pos_anchor: Tensor
    labels: Tensor
    anchors: Tensor
    gt_boxes: Tensor
    deltas: Tensor
    boxes: Tensor
    loc_errors: Tensor | None = None
    ious: Tensor | None = None
    target_deltas: Tensor | None = None

    @property
    def num_pos(self) -> int:
        """Number of positive anchors P."""
        return int(self.pos_image.shape[0])

    @property
    def cls_logits(self) -> Tensor:
        """Tensor[M, C]: the logits of the M anchors that are not ignored (differentiable)."""
        return self.logits.view(*self.valid.shape, -1)[self.valid]

    @property
    def onehot(self) -> Tensor:
        """Tensor[M, C] float32: the one-hot targets of the same anchors."""
        return self.targets.view(*self.valid.shape, -1)[self.valid].float()

    @property
    def pos_scores(self) -> Tensor:
        """Tensor[P, C]: the logits of every class at each positive's anchor (detached)."""
        return self.logits.detach().view(*self.valid.shape, -1)[self.pos_image, self.pos_anchor]

    @property
    def quality_targets(self) -> Tensor:
        """Tensor[B·A·C] float32: ``targets`` with each positive's IoU in place of its 1
        (a loss with continuous targets); needs ``ious``."""
        if self.ious is None:
            raise ValueError("quality_targets needs ious: flatten with ious=True")
        return with_ious(self.targets, self.ious)


def with_ious(targets: Tensor, ious: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Continuous targets: Tensor[N] {1, 0, -1} ``targets`` as ``dtype`` with each positive's
    1 replaced by its IoU, Tensor[P] in the order the positives appear in ``targets``."""
    out = targets.to(dtype)
    out[targets == 1] = ious.to(device=out.device, dtype=dtype)
    return out


def aligned_iou(boxes: Tensor, others: Tensor) -> Tensor:
    """IoU of each pair ``(boxes[i], others[i])``: Tensor[P, 4] XYXY each -> Tensor[P].

    Written here because torchvision has only the pairwise ``box_iou`` (a P × P matrix).
    A pair whose union is empty has IoU 0.
    """
    top_left = torch.maximum(boxes[:, :2], others[:, :2])
    bottom_right = torch.minimum(boxes[:, 2:], others[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=1)
    area_other = (others[:, 2:] - others[:, :2]).clamp(min=0).prod(dim=1)
    union = area + area_other - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def flatten_head_outputs(
    cls_logits: Tensor,
    box_deltas: Tensor,
    anchors: Tensor,
    matched: Tensor,
    targets: Sequence[Mapping[str, Tensor]],
    *,
    decode: BoxFn,
    ignore_value: int | None,
    encode: BoxFn | None = None,
    loc_errors: bool = True,
    ious: bool = False,
) -> LossInputs:
    """Flatten a batch's head outputs into :class:`LossInputs`.

    Args:
        cls_logits (Tensor[B, A, C]): classification logits.
        box_deltas (Tensor[B, A, 4]): box regression outputs.
        anchors (Tensor[A, 4] or Tensor[B, A, 4]): anchors (XYXY), shared or per image.
        matched (Tensor[B, A], int64): the index of each anchor's matched box in its image's
            ``targets``, a negative value when it has none.
        targets: per image, "boxes" (Tensor[K, 4] XYXY) and "labels" (Tensor[K] int64).
        decode: ``decode(deltas Tensor[P, 4] float32, anchors Tensor[P, 4]) -> boxes``.
        ignore_value: the ``matched`` value of ignored anchors (-1 on every class); None
            when no anchor is ignored.
        encode: ``encode(boxes Tensor[P, 4], anchors Tensor[P, 4]) -> deltas``; given, the
            matched boxes' encoding is ``target_deltas``.
        loc_errors: compute e = 1 − GIoU of each positive.
        ious: compute each positive's IoU with its matched box (detached).
    """
    from torchvision.ops import generalized_box_iou_loss

    b, a, c = cls_logits.shape
    device = cls_logits.device
    positive = matched >= 0  # [B, A]
    pos_image, pos_anchor = positive.nonzero(as_tuple=True)  # row-major: the flat order
    gt_index = matched[pos_image, pos_anchor]
    labels, boxes = [], []
    for i, t in enumerate(targets):
        idx = gt_index[pos_image == i]
        labels.append(t["labels"].to(device)[idx])
        boxes.append(t["boxes"].to(device=device, dtype=torch.float32)[idx])
    gt = torch.cat(boxes) if boxes else anchors.new_zeros((0, 4), dtype=torch.float32)
    lab = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64, device=device)
    onehot = torch.zeros((b, a, c), dtype=torch.int8, device=device)
    onehot[pos_image, pos_anchor, lab] = 1
    if ignore_value is None:
        valid = torch.ones_like(positive)
    else:
        valid = matched != ignore_value
        onehot[~valid] = -1
    anchors_pos = anchors[pos_anchor] if anchors.dim() == 2 else anchors[pos_image, pos_anchor]
    deltas = box_deltas[pos_image, pos_anchor].float()
    decoded = decode(deltas, anchors_pos)
    return LossInputs(
        logits=cls_logits.reshape(-1),
        targets=onehot.reshape(-1),
        valid=valid,
        pos_image=pos_image,
        pos_anchor=pos_anchor,
        labels=lab,
        anchors=anchors_pos,
        gt_boxes=gt,
        deltas=deltas,
        boxes=decoded,
        loc_errors=generalized_box_iou_loss(decoded, gt, reduction="none") if loc_errors else None,
        ious=aligned_iou(decoded.detach(), gt) if ious else None,
        target_deltas=None if encode is None else encode(gt, anchors_pos),
    )
