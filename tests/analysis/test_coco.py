"""The 12 COCO numbers and the PR curve equal pycocotools' COCOeval on the same files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import analyze
from analysis.coco import COCO_KEYS
from tests.analysis.cases import pycoco_eval, random_case


def _check(gt, dets, result):
    e = pycoco_eval(gt, dets)
    # COCOeval's -1 ("undefined") is None in ours
    got = np.array([-1.0 if result.coco[k] is None else result.coco[k] for k in COCO_KEYS])
    np.testing.assert_allclose(got, e.stats, rtol=0, atol=1e-12)
    p = e.eval["precision"][0, :, :, 0, -1]
    exp = np.array([row[row > -1].mean() if (row > -1).any() else np.nan for row in p])
    np.testing.assert_allclose(result.pr_curve["precision"], exp, rtol=0, atol=1e-12)
    assert result.pr_curve["recall"] == pytest.approx(np.linspace(0, 1, 101).tolist())
    return e


def test_real_data_matches_pycocotools(shared_coco):
    gt_path = shared_coco / "instances_val2014_100.json"
    dt_path = shared_coco / "detections_fakebbox100.json"
    r = analyze(dt_path, gt_path)
    _check(json.loads(gt_path.read_text()), json.loads(dt_path.read_text()), r)
    assert round(r.coco["AP"], 3) == 0.505


@pytest.mark.parametrize("seed", range(3))
def test_random_cases_match_pycocotools(seed):
    gt, dets = random_case(300 + seed, n_images=20)
    _check(gt, dets, analyze(dets, gt))


def test_empty_predictions_match_pycocotools():
    gt, _ = random_case(0)
    _check(gt, [], analyze([], gt))
