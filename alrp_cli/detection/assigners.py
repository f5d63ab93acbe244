"""Anchor-to-ground-truth assignment: ATSS (the default) and max-IoU.

Both return ``Tensor[A] int64`` per image: the index of the assigned ground-truth box for a
positive anchor, :data:`NEGATIVE` (-1) for a negative and :data:`IGNORED` (-2) for an anchor
that neither loss part sees.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import box_iou

NEGATIVE = -1
IGNORED = -2


def _centres(boxes: Tensor) -> Tensor:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def atss_assign(
    anchors: Tensor, level_counts: list[int], gt_boxes: Tensor, *, topk: int = 9
) -> Tensor:
    """ATSS (Zhang et al., CVPR 2020) as in mmdetection's ``ATSSAssigner``.

    anchors: Tensor[A, 4] XYXY, ordered by level with ``level_counts`` per level;
    gt_boxes: Tensor[K, 4] XYXY. Per level the ``topk`` anchors closest (centre distance) to
    each box are candidates; a candidate is positive when its IoU ≥ mean + std of the
    candidates' IoUs and its centre lies inside the box. An anchor positive for several
    boxes takes the one of highest IoU. Returns Tensor[A] int64 (gt index or -1).
    """
    num_anchors = anchors.shape[0]
    assigned = torch.full((num_anchors,), NEGATIVE, dtype=torch.int64, device=anchors.device)
    if gt_boxes.numel() == 0:
        return assigned
    iou = box_iou(anchors, gt_boxes)  # [A, K]
    dist = torch.cdist(_centres(anchors), _centres(gt_boxes))  # [A, K]
    candidates = []
    start = 0
    for count in level_counts:
        k = min(topk, count)
        _, idx = dist[start : start + count].topk(k, dim=0, largest=False)  # [k, K]
        candidates.append(idx + start)
        start += count
    cand = torch.cat(candidates)  # [L*k, K]
    cand_iou = iou.gather(0, cand)
    threshold = cand_iou.mean(0) + cand_iou.std(0)  # [K]
    is_pos = cand_iou >= threshold[None, :]
    # The candidate's centre must lie strictly inside the box (mmdetection: margin 0.01).
    centres = _centres(anchors)[cand]  # [L*k, K, 2]
    inside = (
        (centres[..., 0] - gt_boxes[None, :, 0] > 0.01)
        & (centres[..., 1] - gt_boxes[None, :, 1] > 0.01)
        & (gt_boxes[None, :, 2] - centres[..., 0] > 0.01)
        & (gt_boxes[None, :, 3] - centres[..., 1] > 0.01)
    )
    is_pos &= inside
    # IoU of each anchor with each box, kept only where the pair is a positive pair.
    masked = torch.full_like(iou, -1.0)
    gt_index = torch.arange(gt_boxes.shape[0], device=anchors.device).expand_as(cand)
    masked[cand[is_pos], gt_index[is_pos]] = iou[cand[is_pos], gt_index[is_pos]]
    best_iou, best_gt = masked.max(dim=1)
    positive = best_iou >= 0
    assigned[positive] = best_gt[positive]
    return assigned


def maxiou_assign(
    anchors: Tensor,
    gt_boxes: Tensor,
    *,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
) -> Tensor:
    """Max-IoU assignment (RetinaNet): IoU ≥ ``pos_iou`` positive, < ``neg_iou`` negative,
    between ignored; each box also keeps its best anchors (low-quality matches), as
    torchvision's ``Matcher`` and mmdetection's ``MaxIoUAssigner``.

    anchors Tensor[A, 4], gt_boxes Tensor[K, 4] XYXY; returns Tensor[A] int64 (gt index, -1
    negative, -2 ignored).
    """
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), NEGATIVE, dtype=torch.int64, device=anchors.device)
    matcher = det_utils.Matcher(pos_iou, neg_iou, allow_low_quality_matches=True)
    matches = matcher(box_iou(gt_boxes, anchors))
    matches[matches == det_utils.Matcher.BELOW_LOW_THRESHOLD] = NEGATIVE
    matches[matches == det_utils.Matcher.BETWEEN_THRESHOLDS] = IGNORED
    return matches


def assign(kind: str, anchors: Tensor, level_counts: list[int], gt_boxes: Tensor) -> Tensor:
    """Dispatch on ``kind`` ('atss' or 'maxiou'); see :func:`atss_assign`, :func:`maxiou_assign`."""
    if kind == "atss":
        return atss_assign(anchors, level_counts, gt_boxes)
    if kind == "maxiou":
        return maxiou_assign(anchors, gt_boxes)
    raise ValueError(f"assigner must be 'atss' or 'maxiou', got {kind!r}")
