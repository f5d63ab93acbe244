"""analyze(): inputs in every accepted form, progress reporting, options, the result's shape."""

from __future__ import annotations

import json

import pytest

from alrp_cli.errors import UserError
from analysis import analyze, load_gt, load_predictions
from tests.helpers.coco_cases import random_case


def test_accepts_paths_dicts_and_loaded_objects(tmp_path):
    gt, dets = random_case(11)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "run-3.json").write_text(json.dumps(dets))
    from_paths = analyze(tmp_path / "run-3.json", tmp_path / "gt.json")
    assert from_paths.label == "run-3" and from_paths.path == str(tmp_path / "run-3.json")
    g = load_gt(gt)
    from_objects = analyze(load_predictions(dets, g), g, label="x")
    assert from_objects.label == "x"
    assert from_objects.coco == from_paths.coco
    assert from_objects.lrp == from_paths.lrp


def test_progress_reports_each_phase():
    gt, dets = random_case(12)
    seen = []
    analyze(dets, gt, progress=lambda phase, done, total: seen.append((phase, done, total)))
    phases = list(dict.fromkeys(p for p, _, _ in seen))
    assert phases == ["loading", "matching", "COCO evaluation", "per-class metrics"]
    assert all(0 <= done <= total for _, done, total in seen)
    assert seen[-1][1] == seen[-1][2]  # the last phase completes


def test_classes_restrict_every_number():
    gt, dets = random_case(13, n_images=20)
    r = analyze(dets, gt, classes=["c1", 5])
    assert {row["category_id"] for row in r.lrp["per_class"]} == {1, 5}
    only = [d for d in dets if d["category_id"] in (1, 5)]
    sub = {**gt, "annotations": [a for a in gt["annotations"] if a["category_id"] in (1, 5)]}
    sub["categories"] = [c for c in gt["categories"] if c["id"] in (1, 5)]
    assert r.coco == analyze(only, sub).coco


@pytest.mark.parametrize(
    "kwargs",
    [{"iou_threshold": 0.0}, {"iou_threshold": 1.0}, {"max_dets": 0}, {"delta": -0.5}],
)
def test_bad_options(kwargs):
    gt, dets = random_case(14)
    with pytest.raises(UserError):
        analyze(dets, gt, **kwargs)


def test_to_dict_is_the_json_file_entry():
    gt, dets = random_case(15)
    d = analyze(dets, gt, label="m").to_dict()
    assert list(d) == [
        "label",
        "path",
        "n_detections",
        "skipped",
        "coco",
        "lrp",
        "losses",
        "ranking",
        "pr_curve",
        "csv",
    ]
    assert d["csv"] == {"detections": None, "classes": None}
    json.dumps(d)  # plain Python types only


def test_undefined_coco_numbers_reach_training_summaries_as_null(tmp_path):
    # alrp train's evaluation (metrics.jsonl, summaries) goes through analyze(): an
    # undefined number (here APl, ARl: no large boxes) is None, written as null.
    from alrp_cli.detection.engine import evaluate

    gt, dets = random_case(16)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    summary = evaluate(dets, tmp_path / "gt.json")
    assert summary["APl"] is None and summary["ARl"] is None
    assert isinstance(summary["AP"], float)
    record = json.loads(json.dumps(summary))
    assert record["APl"] is None


def test_several_files_parse_the_ground_truth_once(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import analysis.ground_truth as gt_mod
    from alrp_cli.cli.app import app

    gt, dets = random_case(17)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"m{i}.json")
        paths[-1].write_text(json.dumps(dets[i:]))
    calls = []
    for parser in ("_read_typed", "_validate_gt"):  # the fast path, the checked path
        original = getattr(gt_mod, parser)
        monkeypatch.setattr(
            gt_mod, parser, lambda *a, f=original, p=parser: calls.append(p) or f(*a)
        )
    args = ["analyze", *map(str, paths), "--gt", str(tmp_path / "gt.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == ["_read_typed"]  # one parse of the file, for all three
