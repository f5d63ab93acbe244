"""Loss values on predictions equal the loss definitions applied to the matched ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alrp_cli.losses.reference import alrp_loss_reference, ap_loss_reference
from alrp_cli.losses.reference_rs import rs_loss_reference
from analysis import analyze
from analysis.loss_values import LOGIT_EPS, class_losses
from tests.helpers.coco_cases import oracle_ranked, pycoco_eval, random_case


def test_hand_computed_class():
    # ranked: TP (IoU .9), FP, TP (IoU .7); tau .5 -> e = .2, .6
    status = np.array([1, 0, 1], dtype=np.int8)
    iou = np.array([0.9, np.nan, 0.7])
    score = np.array([0.9, 0.8, 0.7])
    got = class_losses(status, iou, score, iou_threshold=0.5, delta=0.0)
    # precisions 1 and 2/3 -> L_cls = 1/6; L_loc = mean(.2/1, (.2+.6)/3)
    assert got["alrp_cls"] == pytest.approx(1 / 6, abs=1e-12)
    assert got["alrp_loc"] == pytest.approx((0.2 + 0.8 / 3) / 2, abs=1e-12)
    assert got["alrp"] == pytest.approx(got["alrp_cls"] + got["alrp_loc"], abs=1e-15)
    # interpolated precision: ascending visit 2/3 then max(2/3, 1) = 1 -> 1/6 as well
    assert got["ap_loss"] == pytest.approx(1 / 6, abs=1e-12)


def test_hand_computed_rank_and_sort():
    # ranked: TP (IoU .6), FP, TP (IoU .9): the better box is ranked below the worse one.
    # δ = 0, a positive counts itself: rank⁺ = 1, 2; N_FP = 0, 1.
    status = np.array([1, 0, 1], dtype=np.int8)
    iou = np.array([0.6, np.nan, 0.9])
    score = np.array([0.9, 0.8, 0.7])
    got = class_losses(status, iou, score, iou_threshold=0.5, delta=0.0)
    # RE = 0 and 1/3 -> ranking 1/6.
    assert got["rs_ranking"] == pytest.approx(1 / 6, abs=1e-12)
    # SE(first) = .4/1 - .4/1 = 0; SE(second) = (.4 + .1)/2 - .1/1 = .15 -> sorting .075.
    assert got["rs_sorting"] == pytest.approx(0.075, abs=1e-12)
    assert got["rs"] == pytest.approx(1 / 6 + 0.075, abs=1e-12)
    # Sorted the other way round, the same detections have no sorting error.
    swapped = class_losses(status, iou[::-1].copy(), score, iou_threshold=0.5, delta=0.0)
    assert swapped["rs_sorting"] == 0.0 and swapped["rs_ranking"] == pytest.approx(1 / 6)


def test_no_true_positive_is_undefined():
    got = class_losses(np.array([0, 0], np.int8), np.full(2, np.nan), np.array([0.5, 0.4]))
    assert all(math.isnan(v) for v in got.values())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_equals_loop_formulation_on_matched_ranking(seed, delta):
    tau = 0.5
    gt, dets = random_case(200 + seed, n_images=15)
    r = analyze(dets, gt, delta=delta)
    ranked = oracle_ranked(pycoco_eval(gt, dets, iou_thrs=[tau]))
    rows = {row["category_id"]: row for row in r.losses["per_class"]}
    defined = []
    for cid, row in rows.items():
        items = [(s, st, i) for s, st, i in ranked.get(cid, []) if st != "ignored"]
        if not any(st == "tp" for _, st, _ in items):
            assert math.isnan(row["alrp_cls"]) and math.isnan(row["ap_loss"])
            continue
        s = torch.tensor([x[0] for x in items], dtype=torch.float64)
        logits = s if delta == 0 else torch.logit(s, eps=LOGIT_EPS)
        targets = torch.tensor([1 if x[1] == "tp" else 0 for x in items])
        e = torch.tensor(
            [(1 - x[2]) / (1 - tau) for x in items if x[1] == "tp"], dtype=torch.float64
        )
        ref = alrp_loss_reference(logits, targets, e, delta=delta)
        ap = ap_loss_reference(logits, targets, delta=delta)
        quality = [min(x[2], 1.0) if x[1] == "tp" else 0.0 for x in items]
        rs = rs_loss_reference(logits, torch.tensor(quality, dtype=torch.float64), delta=delta)
        assert row["rs_ranking"] == pytest.approx(float(rs.ranking), abs=1e-9)
        assert row["rs_sorting"] == pytest.approx(float(rs.sorting), abs=1e-9)
        assert row["alrp_cls"] == pytest.approx(float(ref.cls), abs=1e-9)
        assert row["alrp_loc"] == pytest.approx(float(ref.loc), abs=1e-9)
        assert row["ap_loss"] == pytest.approx(float(ap.cls), abs=1e-9)
        defined.append(row)
    assert defined
    assert r.losses["mean"]["alrp"] == pytest.approx(
        np.mean([d["alrp_cls"] + d["alrp_loc"] for d in defined]), abs=1e-12
    )
