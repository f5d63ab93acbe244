"""The 12 COCO numbers, COCOeval's precision / recall arrays and the PR curve equal
pycocotools' COCOeval on the same files (the oracle), on random and real cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import analyze, load_gt, load_predictions
from analysis.coco import COCO_KEYS, coco_eval
from analysis.matching import match_all
from tests.helpers.coco_cases import coco_case, pycoco_eval, random_case


def _stats(result_coco: dict) -> np.ndarray:
    # COCOeval's -1 ("undefined") is None in ours
    return np.array([-1.0 if result_coco[k] is None else result_coco[k] for k in COCO_KEYS])


def _check(gt, dets, result):
    e = pycoco_eval(gt, dets)
    np.testing.assert_allclose(_stats(result.coco), e.stats, rtol=0, atol=1e-12)
    p = e.eval["precision"][0, :, :, 0, -1]
    exp = np.array([row[row > -1].mean() if (row > -1).any() else np.nan for row in p])
    np.testing.assert_allclose(result.pr_curve["precision"], exp, rtol=0, atol=1e-12)
    assert result.pr_curve["recall"] == pytest.approx(np.linspace(0, 1, 101).tolist())
    return e


def _check_arrays(gt_dict, dets):
    """Every entry of COCOeval's precision (at 100 detections) and recall arrays, exactly."""
    gt = load_gt(gt_dict)
    preds = load_predictions(dets, gt)
    ours = coco_eval(preds, gt, match_all(preds, gt))
    e = pycoco_eval(gt_dict, dets)
    np.testing.assert_array_equal(ours["precision"], e.eval["precision"][..., -1])
    np.testing.assert_array_equal(ours["recall"], e.eval["recall"])
    np.testing.assert_array_equal(_stats(ours["coco"]), e.stats)  # bit-identical
    return e


def test_real_data_matches_pycocotools(shared_coco):
    gt_path = shared_coco / "instances_val2014_100.json"
    dt_path = shared_coco / "detections_fakebbox100.json"
    r = analyze(dt_path, gt_path)
    gt, dets = json.loads(gt_path.read_text()), json.loads(dt_path.read_text())
    _check(gt, dets, r)
    _check_arrays(gt, dets)
    assert round(r.coco["AP"], 3) == 0.505


@pytest.mark.parametrize("seed", range(3))
def test_random_cases_match_pycocotools(seed):
    gt, dets = random_case(300 + seed, n_images=20)
    _check(gt, dets, analyze(dets, gt))


@pytest.mark.parametrize("seed", range(12))
def test_every_corner_matches_pycocotools_exactly(seed):
    # crowd, a class without GT, images without GT, score ties, every area range with
    # values on the bounds; every third case has one (image, class) past max-dets 100
    gt, dets = coco_case(500 + seed, crowded=130 if seed % 3 == 0 else 0)
    e = _check_arrays(gt, dets)
    assert (e.eval["precision"][:, :, -1] == -1).all()  # the class without GT
    areas = [a["area"] for a in gt["annotations"] if not a["iscrowd"]]
    assert min(areas) < 32**2 and max(areas) > 96**2  # small and large both present


def test_max_dets_truncation_at_1_10_100():
    # one image and class with 150 detections on 3 ground truths: AR1, AR10, AR100 differ
    gt, dets = coco_case(7, n_images=2, crowd_p=0.0, crowded=150)
    e = _check_arrays(gt, dets)
    ar1, ar10, ar100 = e.stats[6:9]
    assert ar1 <= ar10 <= ar100 and len({ar1, ar10, ar100}) > 1


def test_undefined_numbers_are_none_where_cocoeval_says_minus_one():
    gt, dets = random_case(3)  # boxes under 40 x 40: no large ground truth
    r = analyze(dets, gt)
    e = pycoco_eval(gt, dets)
    assert e.stats[5] == -1 and e.stats[11] == -1  # APl, ARl undefined
    assert r.coco["APl"] is None and r.coco["ARl"] is None
    assert r.coco["AP"] == pytest.approx(e.stats[0], abs=1e-12)


def test_empty_predictions_match_pycocotools():
    gt, _ = random_case(0)
    _check(gt, [], analyze([], gt))


def test_ground_truth_without_annotations_is_undefined_everywhere():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": []}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]
    r = analyze(dets, gt)
    assert all(v is None for v in r.coco.values())
