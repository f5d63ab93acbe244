"""Inference post-processing: top-k per level, score threshold, batched NMS, max detections."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes

from alrp_cli.detection.model import Detector, HeadOutput


def postprocess(
    model: Detector,
    out: HeadOutput,
    image_size: tuple[int, int] | list[tuple[int, int]],
    *,
    pre_nms_topk: int = 1000,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
    max_detections: int = 100,
) -> list[dict[str, Tensor]]:
    """Detections per image, in input-image coordinates (the published defaults).

    Per FPN level the ``pre_nms_topk`` highest (anchor, class) scores above
    ``score_threshold`` are decoded and clipped to ``image_size`` (h, w), or to
    ``image_size[i]`` for image i when it is a list (images padded in a batch); class-wise NMS at
    ``nms_iou`` over all levels; the best ``max_detections`` are kept. Returns per image
    {"boxes" Tensor[D, 4] XYXY float32, "scores" Tensor[D], "labels" Tensor[D] int64 0..C-1}.
    """
    num_classes = out.cls.shape[-1]
    results = []
    for i in range(out.cls.shape[0]):
        size = image_size[i] if isinstance(image_size, list) else image_size
        boxes_all, scores_all, labels_all = [], [], []
        start = 0
        for count in out.level_counts:
            logits = out.cls[i, start : start + count].float()
            scores = torch.sigmoid(logits).flatten()
            keep = scores > score_threshold
            scores = scores[keep]
            idx = keep.nonzero().squeeze(1)
            k = min(pre_nms_topk, idx.numel())
            scores, order = scores.topk(k)
            idx = idx[order]
            anchor_idx = torch.div(idx, num_classes, rounding_mode="floor") + start
            boxes = model.decode(out.reg[i, anchor_idx].float(), out.anchors[anchor_idx])
            boxes_all.append(clip_boxes_to_image(boxes, size))
            scores_all.append(scores)
            labels_all.append(idx % num_classes)
            start += count
        boxes = torch.cat(boxes_all)
        scores = torch.cat(scores_all)
        labels = torch.cat(labels_all)
        # Boxes clipped to (almost) nothing are no detections (COCO results need w, h > 0).
        valid = remove_small_boxes(boxes, 1e-2)
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = batched_nms(boxes, scores, labels, nms_iou)[:max_detections]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
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
