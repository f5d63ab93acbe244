"""COCOeval's greedy detection-to-ground-truth matching, vectorised, in one pass for all settings.

One pass over the detections serves every number of ``alrp analyze``: the 40 settings
COCOeval evaluates (10 IoU thresholds x 4 area ranges; its three max-dets are prefixes
of the 100-detection matching) and the IoU threshold τ of LRP and the loss values (area
all), which shares a setting when τ is one of COCO's thresholds. pycocotools matches in
Python, one detection and one ground truth at a time, setting by setting;
faster-coco-eval does the same in C++ and exposes only true-positive pairs. Here the
IoU of each (detection, ground truth) pair of an image and class is computed once and
the greedy rule runs for all settings at once, vectorised across all (image, category)
groups: step r handles the r-th best detection of every group together, so there are at
most ``max(100, max_dets)`` numpy steps, each touching only that step's pairs times the
settings. Memory: one int8 code per detection and setting, plus one step's pairs.

The rules reproduced (pycocotools ``evaluateImg``; the tests compare every setting's
result with pycocotools' own ``evalImgs``):
- per image and category, detections sorted by descending score (stable), cut to
  ``max_dets``; a ground truth is ignored in an area range when crowd or its ``area``
  is outside the range (bounds included); non-ignored ground truths are searched first;
- each detection takes, among unmatched non-ignored ground truths with IoU ≥ t, the one
  of highest IoU (the last such in file order on ties); only when there is none, the
  best ignored one (crowd ground truths may absorb any number of detections);
- IoU as pycocotools' ``bbIou`` in float64; against crowd, intersection / detection area;
- a detection matched to an ignored ground truth, or unmatched with its area (w * h)
  outside the range, is ignored: neither TP nor FP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.ground_truth import GroundTruth
from analysis.io import Predictions

FP, TP, IGNORED, CUT = 0, 1, 2, 3
STATUS_NAMES = {FP: "fp", TP: "tp", IGNORED: "ignored", CUT: "ignored"}
AREA_ALL = (0.0, 1e5**2)
# COCOeval's parameters (pycocotools ``Params.setDetParams``), built the same way so the
# thresholds are bit-identical.
AREA_RANGES = ((0.0, 1e5**2), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))
AREA_NAMES = ("all", "small", "medium", "large")
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_MAX_DETS = (1, 10, 100)


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


@dataclass
class MatchPass:
    """Results of one matching pass: every COCO setting plus τ.

    ``code`` int8 (C, D): per setting (area index ``a``, IoU threshold ``t``) and
    detection, 0 FP, 1 TP, 2 ignored; meaningful for detections of ``rank`` < 100 (the
    COCO settings ``c = a * 10 + t``, t indexing ``IOU_THRS``, a ``AREA_RANGES``).
    ``rank`` int64 (D,): 0-based position of each detection in its image and class by
    descending score (stable). ``candidate`` bool (D,): the detection has IoU ≥ the
    lowest threshold with some ground truth of its image and class (only those can be
    anything but FP, or ignored for their own area). ``matches``: the per-detection
    results at τ, area all, cut at ``max_dets``.
    """

    code: np.ndarray
    rank: np.ndarray
    candidate: np.ndarray
    matches: Matches
    pooled: np.ndarray  # int64 (D,): all detections in COCOeval's pooled order


def match(
    preds: Predictions, gt: GroundTruth, *, iou_threshold: float = 0.5, max_dets: int = 100
) -> Matches:
    """Match detections to ground truth as COCOeval does at IoU ``iou_threshold``, area all.

    Returns per-detection status, matched ground-truth row and IoU (see :class:`Matches`).
    """
    return match_all(preds, gt, iou_threshold=iou_threshold, max_dets=max_dets, coco=False).matches


def match_all(
    preds: Predictions,
    gt: GroundTruth,
    *,
    iou_threshold: float = 0.5,
    max_dets: int = 100,
    coco: bool = True,
) -> MatchPass:
    """One matching pass for the 40 COCO settings (when ``coco``) and for τ (area all).

    The COCO settings use COCOeval's 100 detections per image and class, τ uses
    ``max_dets``; see :class:`MatchPass` for what is returned.
    """
    n_det = len(preds)
    n_t = len(IOU_THRS)
    # Settings: (area index, threshold); τ shares a COCO setting when it equals one.
    s_area = [a for a in range(len(AREA_RANGES)) for _ in range(n_t)] if coco else []
    s_thr = [float(t) for _ in AREA_RANGES for t in IOU_THRS] if coco else []
    hit = np.flatnonzero(iou_threshold == IOU_THRS) if coco else np.zeros(0, np.int64)
    if len(hit):
        c_tau = int(hit[0])
    else:
        c_tau = len(s_thr)
        s_area.append(0)
        s_thr.append(float(iou_threshold))
    n_set = len(s_thr)
    area_of = np.array(s_area, dtype=np.int64)
    thr = np.minimum(np.array(s_thr), 1 - 1e-10)
    coco_steps = 100 if coco else 0

    ign_all = gt_ignored(gt)
    n_gt = np.bincount(
        np.searchsorted(gt.cat_ids, gt.category_id[~ign_all]), minlength=len(gt.cat_ids)
    ).astype(np.int64)
    code = np.zeros((n_set, n_det), dtype=np.int8)
    det_gt = np.full(n_det, -1, dtype=np.int64)
    det_iou = np.full(n_det, np.nan)
    rank = np.zeros(n_det, dtype=np.int64)
    candidate = np.zeros(n_det, dtype=bool)
    if n_det == 0:
        status = code[c_tau].copy()
        m = Matches(status, det_gt, det_iou, n_gt, iou_threshold, max_dets)
        return MatchPass(code, rank, candidate, m, np.zeros(0, np.int64))

    # Detections grouped by (image, category), descending score, stable (file order on ties).
    dkey = _group_keys(preds.image_id, preds.category_id, gt)
    dorder = np.argsort(-preds.score, kind="stable")
    dorder = dorder[np.argsort(dkey[dorder], kind="stable")]
    dkey_s = dkey[dorder]
    start = np.r_[0, np.flatnonzero(dkey_s[1:] != dkey_s[:-1]) + 1]
    rank[dorder] = np.arange(n_det) - np.repeat(start, np.diff(np.r_[start, n_det]))
    del dkey_s, start, dorder
    # No group has more detections than the largest: a larger max_dets changes nothing, and
    # the work below stays bounded by the file, whatever --max-dets says.
    steps = max(coco_steps, min(max_dets, int(rank.max()) + 1))
    # Detections to match, by (rank, group): step r takes the r-th detection of every group.
    by_rank = np.argsort(rank, kind="stable")
    by_rank = by_rank[: np.searchsorted(rank[by_rank], steps)]
    det = by_rank
    det_rank = rank[det]

    # Ground truths grouped the same way, file order within a group.
    gkey = _group_keys(gt.image_id, gt.category_id, gt)
    gorder = np.argsort(gkey, kind="stable")
    gkey_s = gkey[gorder]
    g_crowd = gt.iscrowd[gorder]
    g_box = gt.bbox[gorder]
    g_ign = np.stack([gt_ignored(gt, rng)[gorder] for rng in AREA_RANGES])  # (A, G)

    g0 = np.searchsorted(gkey_s, dkey[det], side="left")
    ng = np.searchsorted(gkey_s, dkey[det], side="right") - g0
    has = ng > 0
    det, det_rank, g0, ng = det[has], det_rank[has], g0[has], ng[has]
    del dkey

    matched = np.zeros((n_set, len(gkey_s)), dtype=bool)
    all_sets = np.arange(n_set)
    tau_only = np.array([c_tau])
    lowest = thr.min()
    step_bounds = np.searchsorted(det_rank, np.arange(steps + 1))
    for r in range(steps):
        d0, d1 = step_bounds[r], step_bounds[r + 1]
        if d0 == d1:
            continue
        sets = all_sets if r < coco_steps else tau_only
        # This step's (detection, ground truth) pairs only: memory is per step.
        s_det, s_ng = det[d0:d1], ng[d0:d1]
        seg = np.r_[0, np.cumsum(s_ng)[:-1]]
        pair_det = np.repeat(np.arange(d1 - d0), s_ng)
        s_gt = g0[d0:d1][pair_det] + (np.arange(len(pair_det)) - seg[pair_det])
        crowd = g_crowd[s_gt]
        s_iou = box_iou_pairs(preds.bbox[s_det][pair_det], g_box[s_gt], crowd)
        # Pairs below every threshold can never match: drop them before the (S, P) work.
        near = s_iou >= lowest
        if not near.any():
            continue
        if not near.all():
            pair_det, s_gt, s_iou, crowd = pair_det[near], s_gt[near], s_iou[near], crowd[near]
            s_det = s_det[np.unique(pair_det)]
            first = np.r_[True, pair_det[1:] != pair_det[:-1]]
            seg = np.flatnonzero(first)
        candidate[s_det] = True
        ign = g_ign[area_of[sets]][:, s_gt]  # (S, P)
        elig = (s_iou >= thr[sets][:, None]) & (~matched[sets][:, s_gt] | crowd)
        best = _last_argmax(s_iou, elig & ~ign, seg)  # (S, n): pair index or -1
        none = best < 0
        if none.any():
            best = np.where(none, _last_argmax(s_iou, elig & ign, seg), best)
        si, di = np.nonzero(best >= 0)
        if not len(si):
            continue
        b = best[si, di]
        c = sets[si]
        matched[c, s_gt[b]] = True
        dets = s_det[di]
        code[c, dets] = np.where(ign[si, b], IGNORED, TP)
        at_tau = c == c_tau
        det_gt[dets[at_tau]] = gorder[s_gt[b[at_tau]]]
        det_iou[dets[at_tau]] = s_iou[b[at_tau]]

    # Unmatched detections whose own area is out of the setting's range are ignored too.
    area = preds.bbox[:, 2] * preds.bbox[:, 3]
    for a, (lo, hi) in enumerate(AREA_RANGES):
        out = (area < lo) | (area > hi)
        if not out.any():
            continue
        for c in np.flatnonzero(area_of == a):
            row = code[c]
            row[out & (row == FP)] = IGNORED
    status = code[c_tau].copy()
    cut = rank >= max_dets  # matched for COCO's 100 but beyond --max-dets: not evaluated
    status[cut] = CUT
    det_gt[cut] = -1
    det_iou[cut] = np.nan
    m = Matches(status, det_gt, det_iou, n_gt, iou_threshold, max_dets)
    return MatchPass(
        code, rank, candidate, m, pooled_order(preds, gt) if coco else np.zeros(0, np.int64)
    )


def _last_argmax(values: np.ndarray, mask: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Per row and segment (starts ``seg``): position of the last maximum of values[mask].

    ``values`` (P,), ``mask`` bool (S, P); returns int64 (S, len(seg)), -1 where the
    segment has no masked value.
    """
    v = np.where(mask, values, -np.inf)
    seg_max = np.maximum.reduceat(v, seg, axis=1)
    lengths = np.diff(np.r_[seg, v.shape[1]])
    at_max = mask & (v == np.repeat(seg_max, lengths, axis=1))
    where = np.where(at_max, np.arange(v.shape[1]), -1)
    return np.maximum.reduceat(where, seg, axis=1)


def pooled_order(preds: Predictions, gt: GroundTruth, matches: Matches | None = None) -> np.ndarray:
    """Indices of the detections in COCOeval's pooled order (all, or not beyond max-dets).

    Sorted by class (as ``GroundTruth.cat_ids``), then descending score, ties by image id
    and then by position within the image: the order of ``COCOeval.accumulate``'s stable
    mergesort of the concatenated per-image lists. With ``matches``, the detections
    beyond max-dets are left out. One float sort and one integer sort (the columns are in
    file order, so the last tie-break is the sort's stability).
    """
    n = len(preds)
    by_score = np.argsort(-preds.score, kind="stable")
    s_sorted = preds.score[by_score]
    score_rank = np.empty(n, dtype=np.int64)  # dense rank of descending score
    score_rank[by_score] = np.cumsum(np.r_[False, s_sorted[1:] != s_sorted[:-1]])
    del by_score, s_sorted
    n_img = len(gt.image_ids)
    key = np.searchsorted(gt.cat_ids, preds.category_id) * (n + 1) + score_rank
    key *= n_img
    key += np.searchsorted(gt.image_ids, preds.image_id)
    del score_rank
    order = np.argsort(key, kind="stable")
    if matches is not None:
        order = order[matches.status[order] != CUT]
    return order
