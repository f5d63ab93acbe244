"""Ranking statistics against plain O(n²) loops and rank-based formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from analysis.ranking import iou_by_score_decile, rank_correlations


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
