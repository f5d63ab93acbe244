"""The per-detection and per-class tables (the CSV files `alrp report` reads)."""

from __future__ import annotations

import math

import pandas as pd

from analysis import analyze
from analysis.tables import CLASS_COLUMNS, DETECTION_COLUMNS, classes_table, detections_table


def test_detection_rows_by_hand(tmp_path):
    gt = {
        "images": [{"id": 1}, {"id": 2}],
        "categories": [{"id": 4, "name": "dog"}],
        "annotations": [
            {"id": 70, "image_id": 1, "category_id": 4, "bbox": [0, 0, 10, 10], "iscrowd": 0},
            {"id": 71, "image_id": 2, "category_id": 4, "bbox": [0, 0, 50, 50], "iscrowd": 1},
        ],
    }
    dets = [
        {"image_id": 1, "category_id": 4, "bbox": [0, 0, 10, 8], "score": 0.6},  # tp, IoU .8
        {"image_id": 2, "category_id": 4, "bbox": [1, 1, 5, 5], "score": 0.9},  # in crowd
        {"image_id": 1, "category_id": 4, "bbox": [30, 30, 5, 5], "score": 0.6},  # fp, tie
        {"image_id": 1, "category_id": 4, "bbox": [40, 40, 5, 5], "score": 0.1},  # beyond max
    ]
    r = analyze(dets, gt, max_dets=2)
    t = detections_table(r)
    assert list(t.columns) == list(DETECTION_COLUMNS)
    rows = t.to_dict("records")
    assert [(d["score"], d["rank"], d["status"]) for d in rows] == [
        (0.9, 1, "ignored"),
        (0.6, 2, "tp"),
        (0.6, 3, "fp"),
        (0.1, 4, "ignored"),
    ]
    assert rows[0]["gt_id"] == 71 and rows[0]["iou"] == 1.0  # crowd: intersection / det area
    assert rows[1]["gt_id"] == 70 and rows[1]["iou"] == 0.8
    assert pd.isna(rows[2]["gt_id"]) and math.isnan(rows[2]["iou"])
    assert pd.isna(rows[3]["gt_id"])  # not evaluated: beyond max-dets in image 1
    assert set(t["category"]) == {"dog"}

    c = classes_table(r)
    assert list(c.columns) == list(CLASS_COLUMNS)
    (row,) = c.to_dict("records")
    assert (row["n_gt"], row["n_det"], row["n_tp"], row["n_fp"], row["n_ignored"]) == (
        1,
        4,
        1,
        1,
        2,
    )
    assert row["oLRP"] == r.lrp["per_class"][0]["oLRP"]
    assert row["AP"] == r.per_class_ap[4][0]
