"""The 12 COCO summary numbers and the IoU-0.5 precision-recall curve, from one matching pass.

``COCOeval.accumulate`` and ``summarize`` of pycocotools, re-done on the per-detection
codes of :func:`analysis.matching.match_all`: per class the evaluated detections of all
images are pooled in COCOeval's order (descending score, stable over the images in id
order), and every step is the same float64 operation in the same order as pycocotools,
so the 12 numbers are bit-identical to it (tests/analysis/test_coco.py compares them to
1e-12 on random and real cases). pycocotools and faster-coco-eval are test oracles and
benchmark references only; neither is needed at run time.

A number COCOeval cannot define (no non-ignored ground truth in that area range for any
class, e.g. APl when the ground truth has no large objects) is ``None`` here, where
COCOeval writes -1: JSON ``null``, "–" in tables.
"""

from __future__ import annotations

import numpy as np

from analysis.ground_truth import GroundTruth
from analysis.io import Predictions
from analysis.matching import (
    AREA_RANGES,
    COCO_MAX_DETS,
    FP,
    IOU_THRS,
    TP,
    MatchPass,
    gt_ignored,
)

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
# (AP?, IoU threshold or None, area index, max-dets index), as COCOeval.summarize.
_SUMMARY = (
    (True, None, 0, 2),
    (True, 0.5, 0, 2),
    (True, 0.75, 0, 2),
    (True, None, 1, 2),
    (True, None, 2, 2),
    (True, None, 3, 2),
    (False, None, 0, 0),
    (False, None, 0, 1),
    (False, None, 0, 2),
    (False, None, 1, 2),
    (False, None, 2, 2),
    (False, None, 3, 2),
)


def coco_eval(preds: Predictions, gt: GroundTruth, mp: MatchPass) -> dict:
    """COCOeval's accumulate + summarize (bbox, standard parameters) on a matching pass.

    Returns ``{"coco": {12 keys: float, or None where COCOeval gives -1}, "precision":
    float64 array [T, R, K, A] at 100 detections (COCOeval's ``eval["precision"]``
    [..., -1]; -1 where a class has no non-ignored ground truth in that area range),
    "recall": float64 [T, K, A, M]}``.
    """
    n_t, n_r, n_k, n_a = len(IOU_THRS), len(REC_THRS), len(gt.cat_ids), len(AREA_RANGES)
    precision = -np.ones((n_t, n_r, n_k, n_a))
    recall = -np.ones((n_t, n_k, n_a, len(COCO_MAX_DETS)))
    # Non-ignored ground truths per class and area range.
    gcat = np.searchsorted(gt.cat_ids, gt.category_id)
    npig = np.stack(
        [np.bincount(gcat[~gt_ignored(gt, rng)], minlength=n_k) for rng in AREA_RANGES], axis=1
    )  # (K, A)
    # Evaluated detections (COCOeval keeps 100 per image and class) in accumulate's order:
    # class, descending score, then image id, then position in the image's sorted list.
    order = mp.pooled[mp.rank[mp.pooled] < COCO_MAX_DETS[-1]]
    bounds = np.searchsorted(
        np.searchsorted(gt.cat_ids, preds.category_id[order]), np.arange(n_k + 1)
    )
    # Only candidates (IoU ≥ 0.5 with some ground truth) can be TP; every other detection
    # is FP at all thresholds, or ignored at all of them (unmatched, area out of range).
    # Those are not visited one by one: the FPs enter as counts (FPs so far, at each
    # candidate), the ignored ones not at all. The precision and recall values at the
    # candidates are the same float64 operations on the same integers as COCOeval's, and
    # the values COCOeval reads (first position reaching each recall threshold, the
    # running maximum of precision after it) are always at candidates or are 0.
    cand_pos = np.flatnonzero(mp.candidate[order])  # positions in ``order``
    cand = order[cand_pos]
    cand_bounds = np.searchsorted(cand_pos, bounds)
    cand_rank = mp.rank[cand]
    area = preds.bbox[order, 2] * preds.bbox[order, 3]
    plain = ~mp.candidate[order]
    eps = np.spacing(1)
    for a, (lo, hi) in enumerate(AREA_RANGES):
        # FPs among the non-candidates, counted up to each candidate (within its class).
        fp_only = np.cumsum(plain & (area >= lo) & (area <= hi))
        fp_before = fp_only[cand_pos] - np.r_[0, fp_only][bounds[:-1]].repeat(np.diff(cand_bounds))
        del fp_only
        codes = mp.code[a * n_t : (a + 1) * n_t][:, cand]  # (T, candidates)
        for k in range(n_k):
            n_pos = npig[k, a]
            if n_pos == 0:
                continue
            c0, c1 = cand_bounds[k], cand_bounds[k + 1]
            nd = bounds[k + 1] - bounds[k]
            if nd == 0:
                recall[:, k, a, :] = 0
                precision[:, :, k, a] = 0
                continue
            code = codes[:, c0:c1]
            tps = code == TP
            rank = cand_rank[c0:c1]
            for m, max_det in enumerate(COCO_MAX_DETS[:-1]):
                recall[:, k, a, m] = tps[:, rank < max_det].sum(axis=1).astype(float) / n_pos
            if c1 == c0:
                recall[:, k, a, -1] = 0
                precision[:, :, k, a] = 0
                continue
            tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
            fp_sum = (np.cumsum(code == FP, axis=1) + fp_before[c0:c1]).astype(dtype=float)
            rc = tp_sum / n_pos
            pr = tp_sum / (fp_sum + tp_sum + eps)
            recall[:, k, a, -1] = rc[:, -1]
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
            n = c1 - c0
            for t in range(n_t):
                inds = np.searchsorted(rc[t], REC_THRS, side="left")
                precision[t, :, k, a] = np.where(inds < n, pr[t][np.minimum(inds, n - 1)], 0.0)
    coco = {}
    for key, (is_ap, iou, a, m) in zip(COCO_KEYS, _SUMMARY, strict=True):
        if is_ap:
            s = precision[:, :, :, a]
            if iou is not None:
                s = s[np.where(iou == IOU_THRS)[0]]
        else:
            s = recall[:, :, a, m]
            if iou is not None:
                s = s[np.where(iou == IOU_THRS)[0]]
        valid = s[s > -1]
        coco[key] = float(np.mean(valid)) if len(valid) else None
    return {"coco": coco, "precision": precision, "recall": recall}


def pr_curve(precision: np.ndarray) -> dict:
    """Mean over classes of COCOeval precision at IoU 0.5, area all, maxDets 100.

    ``precision``: the [T, R, K, A] array of :func:`coco_eval`. Entries of -1 (class
    without ground truth) are excluded; a recall point with no class left is NaN.
    Returns ``{"iou": 0.5, "recall": [101], "precision": [101]}``.
    """
    p = precision[0, :, :, 0]  # [R, K]
    valid = p > -1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, p, 0.0).sum(axis=1) / valid.sum(axis=1)
    return {"iou": 0.5, "recall": REC_THRS.tolist(), "precision": mean.tolist()}


def per_class_ap(precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP@[.5:.95] and AP50 (area all, maxDets 100), float64 (K,); NaN without GT."""
    p = precision[:, :, :, 0]  # [T, R, K]
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = p > -1
        ap = np.where(valid, p, 0.0).sum(axis=(0, 1)) / valid.sum(axis=(0, 1))
        v50 = p[0] > -1
        ap50 = np.where(v50, p[0], 0.0).sum(axis=0) / v50.sum(axis=0)
    return ap, ap50
