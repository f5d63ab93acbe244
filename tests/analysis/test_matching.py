"""The vectorised matcher against pycocotools' own evaluateImg (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.ground_truth import load_gt
from analysis.io import load_predictions
from analysis.matching import CUT, STATUS_NAMES, box_iou_pairs, match, match_all
from tests.helpers.coco_cases import coco_case, oracle_matches, pycoco_eval, random_case


def _compare(gt_dict, dets, *, tau, max_dets):
    gt = load_gt(gt_dict)
    preds = load_predictions(dets, gt)
    m = match(preds, gt, iou_threshold=tau, max_dets=max_dets)
    e = pycoco_eval(gt_dict, dets, iou_thrs=[tau], max_dets=max_dets)
    ref = oracle_matches(e)
    for d in range(len(preds)):
        did = d + 1
        if m.status[d] == CUT:
            assert did not in ref, d
            continue
        status, gid, iou = ref[did]
        got_gid = int(gt.ann_id[m.gt[d]]) if m.gt[d] >= 0 else 0
        assert (STATUS_NAMES[int(m.status[d])], got_gid) == (status, gid), d
        if gid:
            assert m.iou[d] == iou  # bit-identical to pycocotools' bbIou
        else:
            assert np.isnan(m.iou[d])
    # every evaluated detection was checked
    assert sum(1 for s in m.status if s != CUT) == len(ref)
    return m


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("tau", "max_dets"), [(0.5, 100), (0.3, 4), (0.75, 100), (0.5, 2)])
def test_matches_pycocotools(seed, tau, max_dets):
    gt_dict, dets = random_case(seed)
    m = _compare(gt_dict, dets, tau=tau, max_dets=max_dets)
    assert (m.status == 1).any()


@pytest.mark.parametrize("max_dets", [2, 100, 130])
def test_the_shared_pass_gives_the_same_matches_at_tau(max_dets):
    # match_all (COCO's 40 settings + τ, one pass) equals matching at τ alone, also when
    # --max-dets is below or above COCO's 100
    gt_dict, dets = coco_case(21, crowded=140)
    gt = load_gt(gt_dict)
    preds = load_predictions(dets, gt)
    for tau in (0.5, 0.62):
        alone = match(preds, gt, iou_threshold=tau, max_dets=max_dets)
        shared = match_all(preds, gt, iou_threshold=tau, max_dets=max_dets).matches
        np.testing.assert_array_equal(shared.status, alone.status)
        np.testing.assert_array_equal(shared.gt, alone.gt)
        np.testing.assert_array_equal(shared.iou, alone.iou)
    if max_dets == 130:
        _compare(gt_dict, dets, tau=0.5, max_dets=max_dets)


def test_matches_pycocotools_on_real_data(shared_coco):
    import json

    gt_dict = json.loads((shared_coco / "instances_val2014_100.json").read_text())
    dets = json.loads((shared_coco / "detections_fakebbox100.json").read_text())
    m = _compare(gt_dict, dets, tau=0.5, max_dets=100)
    assert int((m.status == 1).sum()) == 649


def test_crowd_absorbs_many_and_non_crowd_once():
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 10, 10],
                "area": 100,
                "iscrowd": 0,
            },
            {
                "id": 8,
                "image_id": 1,
                "category_id": 1,
                "bbox": [50, 50, 40, 40],
                "area": 1600,
                "iscrowd": 1,
            },
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.8},  # duplicate
        {"image_id": 1, "category_id": 1, "bbox": [55, 55, 10, 10], "score": 0.7},  # in crowd
        {"image_id": 1, "category_id": 1, "bbox": [60, 60, 10, 10], "score": 0.6},  # in crowd
    ]
    g = load_gt(gt)
    m = match(load_predictions(dets, g), g)
    assert [STATUS_NAMES[int(s)] for s in m.status] == ["tp", "fp", "ignored", "ignored"]
    assert m.iou[0] == 1.0 and m.iou[2] == 1.0  # crowd IoU = intersection / detection area
    assert m.n_gt.tolist() == [1]
    _compare(gt, dets, tau=0.5, max_dets=100)


def test_box_iou_pairs_hand_values():
    dt = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [5, 5, 1, 1], [1, 1, 2, 2]], dtype=float)
    gt = np.array([[1, 0, 2, 2], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2]], dtype=float)
    crowd = np.array([False, True, False, True])
    got = box_iou_pairs(dt, gt, crowd)
    assert got.tolist() == [2 / 6, 1 / 4, 0.0, 1 / 4]
