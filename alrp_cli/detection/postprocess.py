"""Inference post-processing as mmdetection 2.x's ``AnchorHead.get_bboxes`` (the official
aLRP and AP Loss heads inherit it): per level the top anchors by their best class score,
then every class above the threshold, class-wise NMS, the best detections per image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from alrp_cli.detection.model import Detector, HeadOutput


def postprocess(
    model: Detector,
    out: HeadOutput,
    image_size: tuple[int, int] | Sequence[tuple[int, int]],
    *,
    pre_nms_topk: int = 1000,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
    max_detections: int = 100,
) -> list[dict[str, Tensor]]:
    """Detections per image, in input-image coordinates (the published test settings).

    mmdetection's rule (mmdet/models/dense_heads/anchor_head.py:572-647 with
    ``multiclass_nms``, mmdet/core/post_processing/bbox_nms.py:6-61): per FPN level, sigmoid
    scores; where a level has more than ``pre_nms_topk`` anchors, keep the ``pre_nms_topk``
    anchors with the highest best-class score; decode and clip them to the image
    (``image_size`` (h, w), or one per image: the resized image before padding, as
    mmdetection's ``img_shape``). Over all levels, every (anchor, class) with score above
    ``score_threshold`` is a candidate; class-wise NMS at ``nms_iou``; the best
    ``max_detections`` are kept. (``min_bbox_size`` is unused by that rule.)

    ``out.cls`` Tensor[B, A, C] logits, ``out.reg`` Tensor[B, A, 4]. Returns per image
    {"boxes" Tensor[D, 4] XYXY float32, "scores" Tensor[D], "labels" Tensor[D] int64 0..C-1},
    by decreasing score, boxes of zero width or height left out (a COCO result needs w, h > 0).
    """
    batch = out.cls.shape[0]
    sizes = (
        [tuple(image_size)] * batch
        if len(image_size) == 2 and isinstance(image_size[0], int)
        else [tuple(s) for s in image_size]
    )
    if len(sizes) != batch:
        raise ValueError(f"image_size: {len(sizes)} sizes for {batch} images")
    results = []
    for i, (h, w) in enumerate(sizes):
        boxes_all, scores_all = [], []
        start = 0
        for count in out.level_counts:
            scores = torch.sigmoid(out.cls[i, start : start + count].float())
            index = torch.arange(start, start + count, device=scores.device)
            if 0 < pre_nms_topk < count:
                top = scores.max(dim=1).values.topk(pre_nms_topk).indices
                scores, index = scores[top], index[top]
            boxes = model.decode(out.reg[i, index].float(), out.anchors[index])
            boxes[:, 0::2] = boxes[:, 0::2].clamp(min=0, max=w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(min=0, max=h)
            boxes_all.append(boxes)
            scores_all.append(scores)
            start += count
        scores = torch.cat(scores_all)
        anchor, label = (scores > score_threshold).nonzero(as_tuple=True)
        boxes, scores = torch.cat(boxes_all)[anchor], scores[anchor, label]
        keep = batched_nms(boxes, scores, label, nms_iou)[:max_detections]
        boxes, scores, label = boxes[keep], scores[keep], label[keep]
        # mmdetection would write a box clipped to nothing; COCO results need w, h > 0
        real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        results.append({"boxes": boxes[real], "scores": scores[real], "labels": label[real]})
    return results


def to_coco_results(
    detections: list[dict[str, Tensor]],
    image_ids: list[int],
    scales: list[Tensor],
    category_ids: list[int],
) -> list[dict]:
    """COCO results records in original image coordinates.

    ``scales[i]`` Tensor[2] (sx, sy) is the resize factor input/original of image i; boxes are
    divided by it and written as [x, y, w, h]; label l becomes ``category_ids[l]``.
    """
    records = []
    for det, image_id, scale in zip(detections, image_ids, scales, strict=True):
        s = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        boxes = det["boxes"].detach().float().cpu() / torch.cat([s, s])
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)
        for box, score, label in zip(
            xywh.tolist(), det["scores"].tolist(), det["labels"].tolist(), strict=True
        ):
            records.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_ids[label]),
                    "bbox": box,
                    "score": float(score),
                }
            )
    return records
