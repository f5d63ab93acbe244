"""COCOeval's greedy detection-to-ground-truth matching at one IoU threshold, vectorised.

pycocotools matches in Python, one detection and one ground truth at a time, and
faster-coco-eval does it in C++ but exposes only true-positive pairs at the first
threshold. LRP, the loss values and the per-detection table need, at any threshold τ,
every detection's status (TP, FP, ignored) with its matched ground truth and IoU, so
this module re-implements ``COCOeval.evaluateImg`` for area "all" exactly (the tests
compare it with pycocotools' own ``evalImgs``) and vectorises it across all
(image, category) groups at once: step r handles the r-th best detection of every
group together, so there are at most ``max_dets`` numpy steps, each touching only the
(detection, ground truth) pairs of that step. Memory is proportional to the detections
plus one step's pairs (at most one detection per group).

The rules reproduced (pycocotools ``evaluateImg``):
- per image and category, detections sorted by descending score (stable), cut to
  ``max_dets``; ground truths sorted non-ignored first (stable); a ground truth is
  ignored when crowd or its ``area`` is outside [0, 1e10];
- each detection takes, among unmatched non-ignored ground truths with IoU ≥ τ, the one
  of highest IoU (the last such on ties); only when there is none, the best ignored one
  (crowd ground truths may absorb any number of detections);
- IoU as pycocotools' ``bbIou`` in float64; against crowd, intersection / detection area;
- a detection matched to an ignored ground truth, or unmatched with area outside the
  range, is ignored: neither TP nor FP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.ground_truth import GroundTruth
from analysis.io import Predictions

FP, TP, IGNORED, CUT = 0, 1, 2, 3
STATUS_NAMES = {FP: "fp", TP: "tp", IGNORED: "ignored", CUT: "ignored"}
AREA_ALL = (0.0, 1e5**2)


@dataclass
class Matches:
    """Per-detection match results, aligned with the Predictions (file order).

    ``status`` int8 (D,): 0 FP, 1 TP, 2 ignored (matched to crowd / out-of-range ground
    truth, or out-of-range itself), 3 beyond ``max_dets`` in its image and category
    (not evaluated; reported as ignored). ``gt`` int64 (D,): row of the matched ground
    truth in the GroundTruth columns, -1 when none. ``iou`` float64 (D,): IoU with it,
    NaN when none. ``n_gt`` int64 (K,): non-ignored ground truths per class, aligned
    with ``GroundTruth.cat_ids``.
    """

    status: np.ndarray
    gt: np.ndarray
    iou: np.ndarray
    n_gt: np.ndarray
    iou_threshold: float
    max_dets: int


def gt_ignored(gt: GroundTruth, area_rng: tuple[float, float] = AREA_ALL) -> np.ndarray:
    """bool (G,): crowd or area outside ``area_rng`` (COCOeval's ``_ignore`` for that range)."""
    return gt.iscrowd | (gt.area < area_rng[0]) | (gt.area > area_rng[1])


def box_iou_pairs(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU of paired boxes, float64 (M,), exactly as pycocotools' ``bbIou``.

    ``dt``, ``gt``: float64 (M, 4) [x, y, w, h]; ``crowd``: bool (M,) — against a crowd
    box the union is the detection's area. Same operation order as the C code, so the
    values are bit-identical.
    """
    dx, dy, dw, dh = dt.T
    gx, gy, gw, gh = gt.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = da + gw * gh - inter
    if crowd is not None:
        union = np.where(crowd, da, union)
    out = np.zeros(len(inter))
    pos = (w > 0) & (h > 0)
    np.divide(inter, union, out=out, where=pos)
    return out


def _group_keys(image_id: np.ndarray, cat_id: np.ndarray, gt: GroundTruth) -> np.ndarray:
    img = np.searchsorted(gt.image_ids, image_id)
    cat = np.searchsorted(gt.cat_ids, cat_id)
    return img.astype(np.int64) * len(gt.cat_ids) + cat


def match(
    preds: Predictions, gt: GroundTruth, *, iou_threshold: float = 0.5, max_dets: int = 100
) -> Matches:
    """Match detections to ground truth as COCOeval does at IoU ``iou_threshold``, area all.

    Returns per-detection status, matched ground-truth row and IoU (see :class:`Matches`).
    """
    n_det = len(preds)
    status = np.full(n_det, FP, dtype=np.int8)
    det_gt = np.full(n_det, -1, dtype=np.int64)
    det_iou = np.full(n_det, np.nan)
    ign_all = gt_ignored(gt)
    n_gt = np.bincount(
        np.searchsorted(gt.cat_ids, gt.category_id[~ign_all]), minlength=len(gt.cat_ids)
    ).astype(np.int64)
    if n_det == 0:
        return Matches(status, det_gt, det_iou, n_gt, iou_threshold, max_dets)

    # Detections grouped by (image, category), descending score, stable (file order on ties).
    dkey = _group_keys(preds.image_id, preds.category_id, gt)
    dorder = np.lexsort((-preds.score, dkey))  # lexsort is stable
    dkey_s = dkey[dorder]
    start = np.r_[0, np.flatnonzero(dkey_s[1:] != dkey_s[:-1]) + 1]
    sizes = np.diff(np.r_[start, n_det])
    rank = np.arange(n_det) - np.repeat(start, sizes)
    status[dorder[rank >= max_dets]] = CUT
    kept = dorder[rank < max_dets]  # file-order indices, in (group, rank) order
    kept_rank = rank[rank < max_dets]

    # Ground truths grouped the same way, non-ignored first, stable.
    gkey = _group_keys(gt.image_id, gt.category_id, gt)
    gorder = np.lexsort((ign_all, gkey))
    gkey_s = gkey[gorder]
    g_ign = ign_all[gorder]
    g_crowd = gt.iscrowd[gorder]
    g_box = gt.bbox[gorder]

    # Process detections by (rank, group): step r takes the r-th detection of every group.
    by_rank = np.argsort(kept_rank, kind="stable")
    det = kept[by_rank]
    det_rank = kept_rank[by_rank]
    g0 = np.searchsorted(gkey_s, dkey[det], side="left")
    ng = np.searchsorted(gkey_s, dkey[det], side="right") - g0
    has = ng > 0
    det, det_rank, g0, ng = det[has], det_rank[has], g0[has], ng[has]

    thr = min(iou_threshold, 1 - 1e-10)
    matched = np.zeros(len(gkey_s), dtype=bool)
    step_bounds = np.searchsorted(det_rank, np.arange(max_dets + 1))
    for r in range(max_dets):
        d0, d1 = step_bounds[r], step_bounds[r + 1]
        if d0 == d1:
            continue
        # This step's (detection, ground truth) pairs only: memory is per step.
        s_det, s_ng = det[d0:d1], ng[d0:d1]
        seg = np.r_[0, np.cumsum(s_ng)[:-1]]
        pair_det = np.repeat(np.arange(d1 - d0), s_ng)
        s_gt = g0[d0:d1][pair_det] + (np.arange(len(pair_det)) - seg[pair_det])
        s_iou = box_iou_pairs(preds.bbox[s_det][pair_det], g_box[s_gt], g_crowd[s_gt])
        s_ign = g_ign[s_gt]
        elig = (s_iou >= thr) & (~matched[s_gt] | g_crowd[s_gt])
        best = _last_argmax(s_iou, elig & ~s_ign, seg)
        none = best < 0
        if none.any():
            best = np.where(none, _last_argmax(s_iou, elig & s_ign, seg), best)
        hit = best >= 0
        if not hit.any():
            continue
        b = best[hit]
        gts = s_gt[b]
        matched[gts] = True
        dets = s_det[hit]
        det_gt[dets] = gorder[gts]
        det_iou[dets] = s_iou[b]
        status[dets] = np.where(s_ign[b], IGNORED, TP)

    # Unmatched detections whose own area is out of range are ignored too.
    area = preds.bbox[:, 2] * preds.bbox[:, 3]
    out = (status == FP) & ((area < AREA_ALL[0]) | (area > AREA_ALL[1]))
    status[out] = IGNORED
    return Matches(status, det_gt, det_iou, n_gt, iou_threshold, max_dets)


def _last_argmax(values: np.ndarray, mask: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Per segment (starts ``seg``): position of the last maximum of values[mask], or -1."""
    v = np.where(mask, values, -np.inf)
    seg_max = np.maximum.reduceat(v, seg)
    lengths = np.diff(np.r_[seg, len(v)])
    at_max = mask & (v == np.repeat(seg_max, lengths))
    where = np.where(at_max, np.arange(len(v)), -1)
    return np.maximum.reduceat(where, seg)


def pooled_order(preds: Predictions, gt: GroundTruth, matches: Matches) -> np.ndarray:
    """Indices of the evaluated detections (not beyond max-dets), in COCOeval's pooled order.

    Sorted by class (as ``GroundTruth.cat_ids``), then descending score, ties by image id
    and then by position within the image: the order of ``COCOeval.accumulate``'s stable
    mergesort of the concatenated per-image lists.
    """
    ev = np.flatnonzero(matches.status != CUT)
    cat = np.searchsorted(gt.cat_ids, preds.category_id[ev])
    order = np.lexsort((preds.index[ev], preds.image_id[ev], -preds.score[ev], cat))
    return ev[order]
