"""oLRP and its components: hand-computed cases and a plain loop over pycocotools' matching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import analyze
from tests.helpers.coco_cases import n_gt_per_class, oracle_ranked, pycoco_eval, random_case


def _ann(i, img, cat, box, crowd=0):
    return {
        "id": i,
        "image_id": img,
        "category_id": cat,
        "bbox": box,
        "area": box[2] * box[3],
        "iscrowd": crowd,
    }


def _det(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": box, "score": score}


@pytest.fixture
def hand_case():
    cats = [{"id": i, "name": n} for i, n in enumerate("abcde", start=1)]
    gt = {
        "images": [{"id": 1}, {"id": 2}],
        "categories": cats,
        "annotations": [
            _ann(1, 1, 1, [0, 0, 10, 10]),  # a
            _ann(2, 1, 1, [20, 20, 10, 10]),  # a
            _ann(3, 2, 1, [0, 0, 50, 50], crowd=1),  # a, crowd
            _ann(4, 1, 2, [0, 0, 10, 10]),  # b: never detected
            _ann(5, 1, 3, [0, 0, 10, 10]),  # c: only false positives
            _ann(6, 1, 5, [0, 0, 10, 10]),  # e: ties in score across images
            _ann(7, 2, 5, [0, 0, 10, 10]),
        ],
    }
    dets = [
        _det(1, 1, [0, 0, 10, 10], 0.9),  # a: TP, IoU 1
        _det(1, 1, [60, 60, 10, 10], 0.8),  # a: FP
        _det(1, 1, [20, 20, 10, 8], 0.7),  # a: TP, IoU 0.8
        _det(2, 1, [5, 5, 10, 10], 0.95),  # a: inside the crowd box: ignored
        _det(1, 3, [70, 70, 10, 10], 0.6),  # c: FP
        _det(1, 4, [0, 0, 10, 10], 0.6),  # d: no ground truth: class skipped
        _det(2, 5, [0, 0, 10, 10], 0.5),  # e: TP (image 2)
        _det(1, 5, [80, 80, 10, 10], 0.5),  # e: FP (image 1), same score, pooled first
    ]
    return gt, dets


def test_hand_computed_olrp(hand_case):
    gt, dets = hand_case
    r = analyze(dets, gt)
    rows = {row["name"]: row for row in r.lrp["per_class"]}
    assert set(rows) == {"a", "b", "c", "e"}  # d has no ground truth
    # a: prefixes TP(e=0) 1/2, +FP 2/3, +TP(e=0.2/0.5) (0.4+1+0)/3; the crowd match is ignored
    a = rows["a"]
    assert a["n_gt"] == 2 and a["n_tp"] == 2 and a["n_fp"] == 1
    assert a["oLRP"] == pytest.approx(1.4 / 3, abs=1e-12)
    assert a["oLRP_loc"] == pytest.approx(0.1, abs=1e-12)
    assert a["oLRP_FP"] == pytest.approx(1 / 3, abs=1e-12)
    assert a["oLRP_FN"] == 0.0
    assert a["threshold"] == 0.7
    for name in ("b", "c"):  # no TP: oLRP 1, FN 1, the rest undefined
        row = rows[name]
        assert row["oLRP"] == 1.0 and row["oLRP_FN"] == 1.0
        assert all(math.isnan(row[k]) for k in ("oLRP_loc", "oLRP_FP", "threshold"))
    # e: tied scores are pooled by image id (COCOeval's stable sort): FP (image 1) first:
    # prefix 1: (0+1+2)/(1+2) = 1; prefix 2: (0+1+1)/(1+2) = 2/3. TP first would give 1/2.
    e = rows["e"]
    assert e["oLRP"] == pytest.approx(2 / 3, abs=1e-12)
    assert e["oLRP_FP"] == 0.5 and e["oLRP_FN"] == 0.5 and e["oLRP_loc"] == 0.0
    assert e["threshold"] == 0.5
    # moLRP averages the classes with ground truth; components where defined
    assert r.molrp == pytest.approx((1.4 / 3 + 1 + 1 + 2 / 3) / 4, abs=1e-12)
    assert r.lrp["moLRP_loc"] == pytest.approx((0.1 + 0.0) / 2, abs=1e-12)
    assert r.lrp["moLRP_FP"] == pytest.approx((1 / 3 + 0.5) / 2, abs=1e-12)
    assert r.lrp["moLRP_FN"] == pytest.approx((0 + 1 + 1 + 0.5) / 4, abs=1e-12)


def test_more_than_max_dets_in_one_image():
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [_ann(1, 1, 1, [0, 0, 10, 10])],
    }
    dets = [
        _det(1, 1, [50, 50, 10, 10], 0.9),
        _det(1, 1, [70, 70, 10, 10], 0.8),
        _det(1, 1, [0, 0, 10, 10], 0.7),  # the TP, third in its image
    ]
    cut = analyze(dets, gt, max_dets=2).lrp["per_class"][0]
    assert cut["oLRP"] == 1.0 and cut["n_tp"] == 0 and math.isnan(cut["threshold"])
    full = analyze(dets, gt, max_dets=3).lrp["per_class"][0]
    # prefixes: (0+1+1)/(1+1) = 1, (0+2+1)/(2+1) = 1, (0+2+0)/(2+1) = 2/3
    assert full["oLRP"] == pytest.approx(2 / 3, abs=1e-12)
    assert full["oLRP_FP"] == pytest.approx(2 / 3, abs=1e-12)
    assert full["threshold"] == 0.7


def test_empty_predictions():
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [_ann(1, 1, 1, [0, 0, 10, 10])],
    }
    r = analyze([], gt)
    assert r.coco["AP"] == 0.0
    assert r.molrp == 1.0
    assert r.n_detections == 0


def _plain_olrp(ranked, n_gt, tau):
    """The LRP definition evaluated from scratch at every prefix (no cumulative sums)."""
    best = None
    for j in range(1, len(ranked) + 1):
        prefix = ranked[:j]
        tps = [iou for _, st, iou in prefix if st == "tp"]
        n_fp = sum(1 for _, st, _ in prefix if st == "fp")
        n_fn = n_gt - len(tps)
        lrp = (sum((1 - i) / (1 - tau) for i in tps) + n_fp + n_fn) / (len(tps) + n_fp + n_fn)
        if best is None or lrp < best[0]:
            best = (lrp, tps, n_fp, n_fn, prefix[-1][0])
    if best is None or not best[1]:
        return 1.0, math.nan, math.nan, 1.0, math.nan
    lrp, tps, n_fp, n_fn, thr = best
    loc = sum(1 - i for i in tps) / len(tps)
    return lrp, loc, n_fp / (len(tps) + n_fp), n_fn / n_gt, thr


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("tau", [0.5, 0.7])
def test_random_cases_against_plain_loop(seed, tau):
    gt, dets = random_case(100 + seed, n_images=15)
    r = analyze(dets, gt, iou_threshold=tau, max_dets=6)
    ranked = oracle_ranked(pycoco_eval(gt, dets, iou_thrs=[tau], max_dets=6))
    n_gt = n_gt_per_class(gt)
    rows = {row["category_id"]: row for row in r.lrp["per_class"]}
    assert set(rows) == {c for c, n in n_gt.items() if n > 0}
    expected_means = []
    for cid, row in rows.items():
        exp = _plain_olrp(ranked.get(cid, []), n_gt[cid], tau)
        got = (row["oLRP"], row["oLRP_loc"], row["oLRP_FP"], row["oLRP_FN"], row["threshold"])
        np.testing.assert_allclose(got, exp, rtol=0, atol=1e-12, equal_nan=True)
        expected_means.append(exp[0])
    assert r.molrp == pytest.approx(np.mean(expected_means), abs=1e-12)
