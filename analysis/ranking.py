"""Ranking versus localisation: does confidence order true positives by IoU?

Among true positives: Spearman and Kendall (tau-b) correlation of score and IoU, the
share of concordant pairs, and the mean IoU per score decile.
"""

from __future__ import annotations

import math

import numpy as np

# Spearman and Kendall's tau-b are written out here, with numpy, rather than taken from
# scipy.stats: importing scipy.stats costs about as long as the whole analysis of 100,000
# detections, and `alrp analyze` computes nothing else with it. Each follows scipy's
# arithmetic step for step (scipy 1.17: `spearmanr`, `kendalltau`, `rankdata`), so the
# values are scipy's to the bit; tests/analysis/test_ranking.py checks them against it.


def _tie_pairs(x: np.ndarray) -> int:
    _, counts = np.unique(x, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` (n,), tied values sharing their mean rank, float64 (n,):
    ``scipy.stats.rankdata(x)``."""
    n = len(x)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, n])
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1.0) + (counts - 1.0) / 2, counts)
    return ranks


def inversions(a: np.ndarray) -> int:
    """The number of pairs i < j with ``a[i] > a[j]``; ``a`` int (n,) with values >= 0.

    A bottom-up merge sort whose levels are vectorised: at each level the array is sorted
    within runs of ``width``; every element of a right run counts the elements of its left
    run above it (two ``searchsorted`` over all runs at once, each run offset by its block
    number times the value span), then the run pairs merge (one sort). O(n log² n).
    """
    a = np.asarray(a, dtype=np.int64)
    n = len(a)
    if n < 2:
        return 0
    span = int(a.max()) + 1
    pos = np.arange(n)
    count = 0
    width = 1
    while width < n:
        block = pos // (2 * width)
        key = block * span + a  # ascending within each run; runs of later blocks above
        right = (pos // width) % 2 == 1
        left_keys = key[~right]  # ascending over all blocks
        at_most = np.searchsorted(left_keys, key[right], side="right")
        block_end = np.searchsorted(left_keys, (block[right] + 1) * span, side="left")
        count += int((block_end - at_most).sum())
        # Merge: each block keeps its positions; timsort merges its two runs in linear time.
        a = np.sort(key, kind="stable") - block * span
        width *= 2
    return count


def _pair_counts(x: np.ndarray, y: np.ndarray) -> tuple[int, int, int, int, int]:
    """(all pairs, pairs tied in x, tied in y, tied in both, discordant pairs) of (n,) each."""
    n = len(x)
    xr = np.unique(x, return_inverse=True)[1].astype(np.int64)  # dense ranks
    yr = np.unique(y, return_inverse=True)[1].astype(np.int64)
    both = _tie_pairs(xr * (int(yr.max(initial=0)) + 1) + yr)
    dis = inversions(yr[np.lexsort((yr, xr))])  # sorted by (x, y): discordant = inverted y
    return n * (n - 1) // 2, _tie_pairs(xr), _tie_pairs(yr), both, dis


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (n,) each: the Pearson correlation of
    their average ranks; NaN for n < 2 or a constant input (``scipy.stats.spearmanr``)."""
    if len(x) < 2 or (x[0] == x).all() or (y[0] == y).all():
        return float("nan")
    return float(np.corrcoef(average_ranks(x), average_ranks(y))[1, 0])


def _tau_b(tot: int, xtie: int, ytie: int, ntie: int, dis: int) -> float:
    if tot == 0 or xtie == tot or ytie == tot:
        return float("nan")
    con_minus_dis = tot - xtie - ytie + ntie - 2 * dis
    tau = con_minus_dis / np.sqrt(tot - xtie) / np.sqrt(tot - ytie)
    return float(np.minimum(1.0, max(-1.0, tau)))


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of ``x`` and ``y`` (n,) each, (C − D) / sqrt((n0 − n1)(n0 − n2)) with
    C, D the concordant and discordant pairs, n0 all pairs and n1, n2 the pairs tied in x,
    in y; NaN for n < 2 or a constant input (``scipy.stats.kendalltau``)."""
    return _tau_b(*_pair_counts(x, y))


def rank_correlations(score: np.ndarray, iou: np.ndarray) -> dict:
    """Spearman, Kendall tau-b and concordant share of (score, IoU) pairs, float64 (n,) each.

    ``concordant_share`` = C / (C + D) over pairs with different scores and different
    IoUs (C: higher score has higher IoU; D: the opposite). NaN where undefined (fewer
    than two TPs, or one of the two constant). O(n log² n): C − D comes from tau-b and
    C + D from the tie counts.
    """
    n = len(score)
    out = {"spearman": float("nan"), "kendall": float("nan"), "concordant_share": float("nan")}
    out["n_tp"] = int(n)
    if n < 2:
        return out
    n0, n1, n2, n3, dis = _pair_counts(score, iou)
    tau = _tau_b(n0, n1, n2, n3, dis)
    out["spearman"] = spearman(score, iou)
    out["kendall"] = tau
    both = n0 - n1 - n2 + n3  # C + D
    if both > 0 and math.isfinite(tau):
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
