"""Ranking versus localisation: does confidence order true positives by IoU?

Among true positives: Spearman and Kendall (tau-b) correlation of score and IoU, the
share of concordant pairs, and the mean IoU per score decile.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def _tie_pairs(x: np.ndarray) -> int:
    _, counts = np.unique(x, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def rank_correlations(score: np.ndarray, iou: np.ndarray) -> dict:
    """Spearman, Kendall tau-b and concordant share of (score, IoU) pairs, float64 (n,) each.

    ``concordant_share`` = C / (C + D) over pairs with different scores and different
    IoUs (C: higher score has higher IoU; D: the opposite). NaN where undefined (fewer
    than two TPs, or one of the two constant). O(n log n): C − D comes from tau-b and
    C + D from the tie counts, as scipy's kendalltau does internally.
    """
    n = len(score)
    out = {"spearman": float("nan"), "kendall": float("nan"), "concordant_share": float("nan")}
    out["n_tp"] = int(n)
    if n < 2:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(score, iou).statistic
        tau = stats.kendalltau(score, iou).statistic
    out["spearman"] = float(rho)
    out["kendall"] = float(tau)
    n0 = n * (n - 1) // 2
    n1, n2 = _tie_pairs(score), _tie_pairs(iou)
    n3 = _tie_pairs(np.stack([score, iou], axis=1).view(np.complex128).ravel())
    both = n0 - n1 - n2 + n3  # C + D
    if both > 0 and np.isfinite(tau):
        c_minus_d = tau * np.sqrt(float(n0 - n1) * float(n0 - n2))
        out["concordant_share"] = float(min(max((1.0 + c_minus_d / both) / 2.0, 0.0), 1.0))
    return out


def iou_by_score_decile(score: np.ndarray, iou: np.ndarray) -> list[dict]:
    """Mean IoU of TPs in ten equal-count score groups, lowest scores first.

    TPs sorted by ascending score (stable) are cut into 10 groups whose sizes differ by
    at most one (``numpy.array_split``). Returns 10 dicts ``{decile 1..10, score_min,
    score_max, mean_iou, n}``; empty groups have NaN values and n 0.
    """
    order = np.argsort(score, kind="stable")
    out = []
    for d, part in enumerate(np.array_split(order, 10), start=1):
        if len(part):
            s, v = score[part], iou[part]
            out.append(
                {
                    "decile": d,
                    "score_min": float(s.min()),
                    "score_max": float(s.max()),
                    "mean_iou": float(v.mean()),
                    "n": len(part),
                }
            )
        else:
            nan = float("nan")
            out.append({"decile": d, "score_min": nan, "score_max": nan, "mean_iou": nan, "n": 0})
    return out
