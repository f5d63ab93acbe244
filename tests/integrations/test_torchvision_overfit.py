"""Overfitting one batch with the aLRP heads raises COCO AP (pycocotools) above 0.6.

Slow (about 10–20 s each on one CPU thread): run with ``pytest -m slow tests/integrations``.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from alrp_cli.integrations.torchvision import ALRPFCOSHead, ALRPRetinaNetHead
from tests.helpers.tiny_torchvision import (
    NUM_CLASSES,
    SIZE,
    synthetic_batch,
    tiny_fcos,
    tiny_retinanet,
)

AP_THRESHOLD = 0.6


def _xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def coco_ap(detections: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> float:
    """COCO AP@[.5:.95] of torchvision-style detections against the targets (pycocotools)."""
    gt = {
        "images": [{"id": i, "width": SIZE, "height": SIZE} for i in range(len(targets))],
        "categories": [{"id": c} for c in range(NUM_CLASSES)],
        "annotations": [],
    }
    for i, t in enumerate(targets):
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            xywh = _xywh(box)
            gt["annotations"].append(
                {"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": label,
                 "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0}
            )  # fmt: skip
    results = [
        {"image_id": i, "category_id": int(c), "bbox": _xywh(b), "score": float(s)}
        for i, d in enumerate(detections)
        for b, c, s in zip(d["boxes"].tolist(), d["labels"], d["scores"], strict=True)
    ]
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("build", "head_cls"), [(tiny_retinanet, ALRPRetinaNetHead), (tiny_fcos, ALRPFCOSHead)]
)
def test_overfitting_one_batch_raises_ap(build, head_cls) -> None:  # type: ignore[no-untyped-def]
    model = build()
    model.head = head_cls.from_head(model.head, period=10_000)
    images, targets = synthetic_batch(4, seed=1)
    model.eval()
    with torch.no_grad():
        before = coco_ap(model(images), targets)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(120):
        losses = model(images, targets)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = coco_ap(model(images), targets)
    assert before < 0.05 and after > AP_THRESHOLD, (before, after)
