"""Ranking statistics against plain O(n²) loops, rank-based formulas and scipy.stats."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.ranking import (
    average_ranks,
    inversions,
    iou_by_score_decile,
    kendall_tau_b,
    rank_correlations,
    spearman,
)


def _loops(score, iou):
    c = d = tx = ty = 0
    n = len(score)
    for i, j in itertools.combinations(range(n), 2):
        ds, di = score[i] - score[j], iou[i] - iou[j]
        if ds == 0 and di == 0:
            continue
        if ds == 0:
            tx += 1
        elif di == 0:
            ty += 1
        elif ds * di > 0:
            c += 1
        else:
            d += 1
    tau_b = (c - d) / math.sqrt((c + d + tx) * (c + d + ty))
    rs = pd.Series(score).rank().to_numpy()
    ri = pd.Series(iou).rank().to_numpy()
    spearman = np.corrcoef(rs, ri)[0, 1]
    return spearman, tau_b, c / (c + d)


@pytest.mark.parametrize("seed", range(5))
def test_against_loops(seed):
    rng = np.random.default_rng(seed)
    n = 60
    score = np.round(rng.uniform(size=n), 1)  # ties in score
    iou = np.round(0.5 + 0.5 * np.clip(score + rng.normal(0, 0.3, n), 0, 1), 2)  # ties in IoU
    got = rank_correlations(score, iou)
    sp, kt, share = _loops(score, iou)
    assert got["n_tp"] == n
    assert got["spearman"] == pytest.approx(sp, abs=1e-12)
    assert got["kendall"] == pytest.approx(kt, abs=1e-12)
    assert got["concordant_share"] == pytest.approx(share, abs=1e-12)


def test_perfect_and_undefined():
    assert rank_correlations(np.array([0.1, 0.5, 0.9]), np.array([0.6, 0.7, 0.8]))[
        "concordant_share"
    ] == pytest.approx(1.0)
    one = rank_correlations(np.array([0.5]), np.array([0.7]))
    assert one["n_tp"] == 1 and math.isnan(one["spearman"]) and math.isnan(one["kendall"])
    const = rank_correlations(np.array([0.5, 0.5, 0.5]), np.array([0.6, 0.7, 0.8]))
    assert math.isnan(const["concordant_share"])


def test_deciles():
    score = np.arange(25, dtype=float)[::-1] / 25
    iou = 0.5 + score / 2
    out = iou_by_score_decile(score, iou)
    assert [d["decile"] for d in out] == list(range(1, 11))
    assert [d["n"] for d in out] == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    asc = np.sort(score)
    assert out[0]["score_min"] == asc[0] and out[0]["score_max"] == asc[2]
    assert out[0]["mean_iou"] == pytest.approx(np.mean(0.5 + asc[:3] / 2))
    assert out[-1]["score_max"] == asc[-1]
    empty = iou_by_score_decile(np.zeros(3), np.ones(3))
    assert sum(d["n"] for d in empty) == 3 and math.isnan(empty[-1]["mean_iou"])


def _same(a: float, b: float) -> bool:
    """Equal to the bit, NaN equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def _scipy(score: np.ndarray, iou: np.ndarray) -> tuple[float, float]:
    """scipy.stats' Spearman and Kendall tau-b (quietly NaN on a constant input)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            float(stats.spearmanr(score, iou).statistic),
            float(stats.kendalltau(score, iou).statistic),
        )


def _by_scipy(score: np.ndarray, iou: np.ndarray) -> dict:
    """rank_correlations as alrp analyze computed it with scipy.stats."""
    n = len(score)
    out = {"spearman": float("nan"), "kendall": float("nan"), "concordant_share": float("nan")}
    out["n_tp"] = n
    if n < 2:
        return out
    out["spearman"], tau = _scipy(score, iou)
    out["kendall"] = tau
    n1, n2, n3 = (
        sum(c * (c - 1) // 2 for c in np.unique(v, return_counts=True)[1].tolist())
        for v in (score, iou, np.stack([score, iou], axis=1).view(np.complex128).ravel())
    )
    n0 = n * (n - 1) // 2
    both = n0 - n1 - n2 + n3
    if both > 0 and np.isfinite(tau):
        c_minus_d = tau * np.sqrt(float(n0 - n1) * float(n0 - n2))
        out["concordant_share"] = float(min(max((1.0 + c_minus_d / both) / 2.0, 0.0), 1.0))
    return out


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000)) if seed % 3 else int(rng.integers(2, 12))
    score = rng.uniform(size=n)
    iou = 0.5 + 0.5 * np.clip(score + rng.normal(0, 0.4, n), 0, 1)
    if seed % 2:  # ties: scores and IoUs on coarse grids, as rounded outputs are
        score, iou = np.round(score, 2), np.round(iou, 2)
    if seed % 5 == 4:  # negative correlation
        iou = iou[::-1].copy()
    if seed % 7 == 6:  # one input constant: undefined
        iou = np.full(n, 0.75)
    return score, iou


@pytest.mark.parametrize("seed", range(28))
def test_equal_to_scipy_to_the_bit(seed: int) -> None:
    score, iou = _case(seed)
    rho, tau = _scipy(score, iou)
    assert _same(spearman(score, iou), rho)
    assert _same(kendall_tau_b(score, iou), tau)
    assert np.array_equal(average_ranks(score), stats.rankdata(score))
    got, before = rank_correlations(score, iou), _by_scipy(score, iou)
    assert got.keys() == before.keys()
    assert all(_same(got[k], before[k]) for k in got), (got, before)


def test_inversions_against_loops() -> None:
    rng = np.random.default_rng(0)
    arrays = [np.array([], dtype=int), np.array([3]), np.array([2, 1]), np.array([1, 1])]
    arrays += [np.arange(9), np.arange(9)[::-1], np.zeros(5, dtype=int)]
    arrays += [rng.integers(0, k, size=n) for n in (3, 7, 16, 33, 100) for k in (2, 5, 1000)]
    for a in arrays:
        expected = sum(1 for i, j in itertools.combinations(range(len(a)), 2) if a[i] > a[j])
        assert inversions(a) == expected, a
