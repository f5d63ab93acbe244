"""Optimal LRP (oLRP) per class and its components, from matched detections.

LRP (Oksuz et al., ECCV 2018; TPAMI 2021) of a set of detections of one class:
    LRP = ( Σ_TP (1 − IoU)/(1 − τ) + N_FP + N_FN ) / ( N_TP + N_FP + N_FN ).
Per class the (max-dets-cut) detections of all images are pooled in COCOeval's order
(descending score, stable) and LRP is evaluated at every prefix; oLRP is the first
minimum. See docs/analyze.md ("Definitions").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.matching import FP, TP


@dataclass
class ClassLRP:
    """oLRP of one class: value, components (NaN where undefined) and counts."""

    olrp: float
    loc: float
    fp: float
    fn: float
    threshold: float
    n_gt: int
    n_tp: int  # TPs at the LRP-optimal threshold
    n_fp: int  # FPs at the LRP-optimal threshold


def lrp_curve(
    status: np.ndarray, iou: np.ndarray, n_gt: int, *, iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LRP at every prefix of one class's detections in ranked order.

    ``status`` int8 (M,) (TP 1, FP 0, anything else ignored), ``iou`` float64 (M,) (read
    at TPs only), ``n_gt`` non-ignored ground truths (> 0). Returns float64 (M,) LRP and
    int64 (M,) cumulative TP, FP counts and float64 (M,) cumulative Σ_TP (1 − IoU).
    """
    tp = status == TP
    fp = status == FP
    cum_tp = np.cumsum(tp, dtype=np.int64)
    cum_fp = np.cumsum(fp, dtype=np.int64)
    cum_loc = np.cumsum(np.where(tp, 1.0 - iou, 0.0))
    # N_TP + N_FP + N_FN = N_FP + n_gt, since N_FN = n_gt - N_TP.
    lrp = (cum_loc / (1.0 - iou_threshold) + cum_fp + (n_gt - cum_tp)) / (cum_fp + n_gt)
    return lrp, cum_tp, cum_fp, cum_loc


def class_olrp(
    status: np.ndarray,
    iou: np.ndarray,
    score: np.ndarray,
    n_gt: int,
    *,
    iou_threshold: float = 0.5,
) -> ClassLRP:
    """oLRP and components of one class; detections given in ranked (pooled) order.

    ``status`` int8 (M,), ``iou`` float64 (M,), ``score`` float64 (M,) in that order,
    ``n_gt`` > 0 non-ignored ground truths. A class without TP has oLRP 1, FN 1 and
    loc, FP, threshold NaN.
    """
    if n_gt <= 0:
        raise ValueError(f"n_gt must be positive, got {n_gt}")
    nan = float("nan")
    if not (status == TP).any():
        return ClassLRP(1.0, nan, nan, 1.0, nan, n_gt, 0, 0)
    lrp, cum_tp, cum_fp, cum_loc = lrp_curve(status, iou, n_gt, iou_threshold=iou_threshold)
    j = int(np.argmin(lrp))  # first minimum
    n_tp, n_fp = int(cum_tp[j]), int(cum_fp[j])
    return ClassLRP(
        olrp=float(lrp[j]),
        loc=float(cum_loc[j] / n_tp) if n_tp else nan,
        fp=float(n_fp / (n_tp + n_fp)) if n_tp + n_fp else nan,
        fn=float((n_gt - n_tp) / n_gt),
        threshold=float(score[j]),
        n_gt=n_gt,
        n_tp=n_tp,
        n_fp=n_fp,
    )


def mean_defined(values: list[float]) -> float:
    """Mean over the finite values; NaN when there is none."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if len(arr) else float("nan")
