"""Inference post-processing on hand-built head outputs against mmdetection's rule written
out as a loop, and COCO results conversion."""

from __future__ import annotations

import math

import pytest
import torch

from alrp_cli.detection.model import Detector, HeadOutput
from alrp_cli.detection.postprocess import postprocess, to_coco_results

pytestmark = pytest.mark.usefixtures("one_thread")


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def model() -> Detector:
    return Detector(2, backbone="resnet18", head_channels=32)


def _out() -> HeadOutput:
    anchors = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [30.0, 30.0, 40.0, 40.0]]
    )
    cls = torch.full((1, 3, 2), _logit(0.01))
    cls[0, 0, 1] = _logit(0.9)
    cls[0, 1, 1] = _logit(0.8)  # IoU 0.9 with anchor 0, same class: suppressed
    cls[0, 1, 0] = _logit(0.7)  # other class: kept
    cls[0, 2, 0] = _logit(0.6)
    return HeadOutput(cls=cls, reg=torch.zeros(1, 3, 4), anchors=anchors, level_counts=[3])


def test_threshold_nms_and_max_detections(model: Detector) -> None:
    (det,) = postprocess(model, _out(), (64, 64))
    assert det["scores"].tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert det["labels"].tolist() == [1, 0, 0]
    assert det["boxes"][0].tolist() == pytest.approx([0.0, 0.0, 10.0, 10.0])
    (det,) = postprocess(model, _out(), (64, 64), max_detections=2)
    assert det["scores"].tolist() == pytest.approx([0.9, 0.7])
    (det,) = postprocess(model, _out(), (64, 64), score_threshold=0.65)
    assert det["labels"].tolist() == [1, 0]
    (det,) = postprocess(model, _out(), (64, 64), pre_nms_topk=1)
    assert det["scores"].tolist() == pytest.approx([0.9])
    # The top-2 *anchors* (0 and 1) bring every class above the threshold: 0.9, 0.8, 0.7
    # (0.8 then suppressed); the top-2 (anchor, class) pairs would lose the 0.7.
    (det,) = postprocess(model, _out(), (64, 64), pre_nms_topk=2)
    assert det["scores"].tolist() == pytest.approx([0.9, 0.7])
    # Clipping: an image of 35 px cuts the third box to [30, 30, 35, 35].
    (det,) = postprocess(model, _out(), (35, 35))
    assert det["boxes"][2].tolist() == pytest.approx([30.0, 30.0, 35.0, 35.0])


def test_coco_results_are_in_original_coordinates() -> None:
    det = {
        "boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]),
        "scores": torch.tensor([0.5]),
        "labels": torch.tensor([1]),
    }
    (rec,) = to_coco_results([det], [42], [torch.tensor([0.5, 2.0])], [7, 9])
    # x / sx, y / sy: (10, 20, 30, 60) / (0.5, 2) -> (20, 10, 60, 30) -> xywh (20, 10, 40, 20)
    assert rec == {"image_id": 42, "category_id": 9, "bbox": [20.0, 10.0, 40.0, 20.0], "score": 0.5}


# mmdetection 2.x at test time, written out one anchor and one class at a time:
# AnchorHead._get_bboxes_single (mmdet/models/dense_heads/anchor_head.py:572-647),
# DeltaXYWHBBoxCoder.decode with stds (0.1, 0.1, 0.2, 0.2) and max_shape
# (mmdet/core/bbox/coder/delta_xywh_bbox_coder.py), multiclass_nms
# (mmdet/core/post_processing/bbox_nms.py:6-61) and its greedy NMS (nms_cpu.cpp: suppress
# when IoU > threshold).
STDS = (0.1, 0.1, 0.2, 0.2)
MAX_RATIO = abs(math.log(16 / 1000))


def _decode(anchor: list[float], delta: list[float], h: int, w: int) -> list[float]:
    dx, dy, dw, dh = (d * s for d, s in zip(delta, STDS, strict=True))
    dw, dh = (min(max(v, -MAX_RATIO), MAX_RATIO) for v in (dw, dh))
    px, py = (anchor[0] + anchor[2]) * 0.5, (anchor[1] + anchor[3]) * 0.5
    pw, ph = anchor[2] - anchor[0], anchor[3] - anchor[1]
    gw, gh = pw * math.exp(dw), ph * math.exp(dh)
    gx, gy = px + pw * dx, py + ph * dy
    x1, y1, x2, y2 = gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5
    return [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _mmdet_reference(cls, reg, anchors, counts, h, w, nms_pre, score_thr, iou_thr, max_per_img):
    rows = []  # (box, [score per class]) of the anchors kept by nms_pre, level by level
    start = 0
    for count in counts:
        level = range(start, start + count)
        scores = {a: [1 / (1 + math.exp(-x)) for x in cls[a]] for a in level}
        kept = list(level)
        if 0 < nms_pre < count:
            kept = sorted(level, key=lambda a: -max(scores[a]))[:nms_pre]
        rows += [(_decode(anchors[a], reg[a], h, w), scores[a]) for a in kept]
        start += count
    candidates = [
        (score, c, box) for box, row in rows for c, score in enumerate(row) if score > score_thr
    ]
    kept_dets: list[tuple[float, int, list[float]]] = []
    for score, c, box in sorted(candidates, key=lambda d: -d[0]):
        if all(k[1] != c or _iou(k[2], box) <= iou_thr for k in kept_dets):
            kept_dets.append((score, c, box))
    # alrp's one departure: boxes clipped to zero width or height (outside the image) are
    # dropped from the result, after NMS and the limit (a COCO result needs w, h > 0)
    return [d for d in kept_dets[:max_per_img] if d[2][2] > d[2][0] and d[2][3] > d[2][1]]


def test_postprocess_is_mmdetection_s_rule(model: Detector) -> None:
    g = torch.Generator().manual_seed(0)
    counts, classes = [60, 15], 3
    total = sum(counts)
    xy = torch.rand(total, 2, generator=g) * 40
    anchors = torch.cat([xy, xy + 8 + torch.rand(total, 2, generator=g) * 24], dim=1)
    out = HeadOutput(
        cls=torch.randn(2, total, classes, generator=g) * 2,
        reg=torch.randn(2, total, 4, generator=g) * 2,
        anchors=anchors,
        level_counts=counts,
    )
    shapes = [(50, 44), (37, 64)]  # per image, as mmdetection's img_shape
    settings = {"pre_nms_topk": 12, "score_threshold": 0.3, "nms_iou": 0.5, "max_detections": 20}
    got = postprocess(model, out, shapes, **settings)
    for i, (h, w) in enumerate(shapes):
        expected = _mmdet_reference(
            out.cls[i].tolist(), out.reg[i].tolist(), anchors.tolist(), counts, h, w,
            *settings.values(),
        )  # fmt: skip
        assert len(expected) > 12  # several classes of one anchor survive
        assert got[i]["labels"].tolist() == [c for _, c, _ in expected]
        assert got[i]["scores"].tolist() == pytest.approx([s for s, _, _ in expected])
        boxes = torch.tensor([b for _, _, b in expected])
        assert torch.allclose(got[i]["boxes"], boxes, atol=1e-4)
