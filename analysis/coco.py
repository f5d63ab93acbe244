"""The 12 COCO summary numbers and the IoU-0.5 precision-recall curve.

Computed by faster-coco-eval's ``COCOeval_faster``, a well-kept drop-in for
pycocotools' COCOeval that is bit-identical to it and several times faster (its
evaluateImg / accumulate are C++). pycocotools stays the test oracle
(tests/analysis/test_coco.py compares all 12 numbers to 1e-12).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
from faster_coco_eval import COCO as FasterCOCO
from faster_coco_eval import COCOeval_faster

from analysis.ground_truth import GroundTruth
from analysis.io import Predictions

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def gt_coco(gt: GroundTruth) -> FasterCOCO:
    """A faster-coco-eval COCO object for the ground truth, with fresh annotation ids 1..G."""
    anns = [
        {
            "id": i + 1,
            "image_id": img,
            "category_id": cat,
            "bbox": box,
            "area": area,
            "iscrowd": int(crowd),
        }
        for i, (img, cat, box, area, crowd) in enumerate(
            zip(
                gt.image_id.tolist(),
                gt.category_id.tolist(),
                gt.bbox.tolist(),
                gt.area.tolist(),
                gt.iscrowd.tolist(),
                strict=True,
            )
        )
    ]
    cats = [{"id": int(c), "name": gt.cat_names[int(c)]} for c in gt.cat_ids]
    return _coco({"images": gt.images, "annotations": anns, "categories": cats})


def dt_coco(preds: Predictions, gt: GroundTruth) -> FasterCOCO:
    """A faster-coco-eval COCO object for the detections (what ``loadRes`` would build).

    When the Predictions carry their own parsed records with exactly the four result
    keys, those dicts get ``id``, ``area`` and ``iscrowd`` added and are used as they
    are; otherwise fresh dicts are built from the validated columns.
    """
    bbox = preds.bbox
    area = (bbox[:, 2] * bbox[:, 3]).tolist()
    ids = range(1, len(preds) + 1)
    records = preds.records
    if records is not None:
        anns = [records[i] for i in preds.index.tolist()]
        if set(map(len, anns)) <= {4}:
            for ann, i, a in zip(anns, ids, area, strict=True):
                ann["id"] = i
                ann["area"] = a
                ann["iscrowd"] = 0
            return _coco({"images": gt.images, "annotations": anns, "categories": _cats(gt)})
    anns = [
        {
            "id": i,
            "image_id": img,
            "category_id": cat,
            "bbox": box,
            "score": score,
            "area": a,
            "iscrowd": 0,
        }
        for i, img, cat, box, score, a in zip(
            ids,
            preds.image_id.tolist(),
            preds.category_id.tolist(),
            bbox.tolist(),
            preds.score.tolist(),
            area,
            strict=True,
        )
    ]
    return _coco({"images": gt.images, "annotations": anns, "categories": _cats(gt)})


def _cats(gt: GroundTruth) -> list[dict]:
    return [{"id": int(c), "name": gt.cat_names[int(c)]} for c in gt.cat_ids]


def _coco(dataset: dict) -> FasterCOCO:
    c = FasterCOCO()
    c.dataset = dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.createIndex()
    return c


def coco_eval(preds: Predictions, gt: GroundTruth, gt_obj: FasterCOCO | None = None) -> dict:
    """Run COCOeval (bbox, standard parameters) and return its numbers.

    Returns ``{"coco": {12 keys}, "precision": float64 array [T, R, K, A, M]}``, the
    array as COCOeval's ``eval["precision"]`` (-1 where a class has no ground truth).
    With no detections at all, AP and AR are 0 (COCOeval's -1 "undefined" would say the
    classes are absent; they are present and missed).
    """
    gt_obj = gt_obj or gt_coco(gt)
    dt_obj = dt_coco(preds, gt)
    ev = COCOeval_faster(gt_obj, dt_obj, "bbox", print_function=lambda *a, **k: None)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats, dtype=np.float64)[: len(COCO_KEYS)]
    coco = {k: float(v) for k, v in zip(COCO_KEYS, stats, strict=True)}
    return {"coco": coco, "precision": np.asarray(ev.eval["precision"], dtype=np.float64)}


def pr_curve(precision: np.ndarray) -> dict:
    """Mean over classes of COCOeval precision at IoU 0.5, area all, maxDets 100.

    ``precision``: COCOeval's [T, R, K, A, M] array. Entries of -1 (class without ground
    truth) are excluded; a recall point with no class left is NaN.
    Returns ``{"iou": 0.5, "recall": [101], "precision": [101]}``.
    """
    p = precision[0, :, :, 0, -1]  # [R, K]
    valid = p > -1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, p, 0.0).sum(axis=1) / valid.sum(axis=1)
    recall = np.linspace(0.0, 1.0, p.shape[0])
    return {"iou": 0.5, "recall": recall.tolist(), "precision": mean.tolist()}


def per_class_ap(precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP@[.5:.95] and AP50 (area all, maxDets 100), float64 (K,); NaN without GT."""
    p = precision[:, :, :, 0, -1]  # [T, R, K]
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = p > -1
        ap = np.where(valid, p, 0.0).sum(axis=(0, 1)) / valid.sum(axis=(0, 1))
        v50 = p[0] > -1
        ap50 = np.where(v50, p[0], 0.0).sum(axis=0) / v50.sum(axis=0)
    return ap, ap50
