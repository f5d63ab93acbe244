"""`alrp analyze` through the CLI: outputs, the JSON / CSV contract, and the bad-input matrix."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from alrp_cli.cli.app import app
from tests.helpers.coco_cases import pycoco_eval, random_case

runner = CliRunner()

FILE_KEYS = {
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
}
COCO_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


@pytest.fixture
def case(tmp_path):
    gt, dets = random_case(7, n_images=20)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "model.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    return gt, dets, gt_path, dt_path


def _ok(args):
    result = runner.invoke(app, ["analyze", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_json_and_csv_contract(case, tmp_path):
    gt, dets, gt_path, dt_path = case
    out, csv_dir = tmp_path / "out" / "a.json", tmp_path / "csv"
    _ok([dt_path, "--gt", gt_path, "--json", out, "--csv-dir", csv_dir])
    doc = json.loads(out.read_text())
    assert doc["version"] == 1 and doc["gt"] == str(gt_path)
    assert (doc["iou_threshold"], doc["max_dets"], doc["delta"]) == (0.5, 100, 0.0)
    (f,) = doc["files"]
    assert set(f) == FILE_KEYS
    assert f["label"] == "model" and f["n_detections"] == len(dets) and f["skipped"] == {}
    assert list(f["coco"]) == COCO_KEYS
    e = pycoco_eval(gt, dets)
    # COCOeval's -1 ("undefined": no ground truth in that area range) is null in the JSON
    expected = [None if v == -1 else v for v in e.stats]
    assert [f["coco"][k] for k in COCO_KEYS] == pytest.approx(expected, abs=1e-12)
    lrp_row = {"category_id", "name", "n_gt", "n_tp", "n_fp", "oLRP", "oLRP_loc", "oLRP_FP"}
    assert lrp_row | {"oLRP_FN", "threshold"} == set(f["lrp"]["per_class"][0])
    assert {"moLRP", "moLRP_loc", "moLRP_FP", "moLRP_FN", "per_class"} == set(f["lrp"])
    assert set(f["losses"]["mean"]) == {
        *("alrp_cls", "alrp_loc", "alrp", "ap_loss"),
        *("rs_ranking", "rs_sorting", "rs"),
    }
    assert set(f["losses"]["per_class"][0]) == {
        "category_id",
        "name",
        "alrp_cls",
        "alrp_loc",
        "alrp",
        "ap_loss",
        "rs_ranking",
        "rs_sorting",
        "rs",
    }
    assert set(f["ranking"]) == {"pooled", "per_class", "iou_by_score_decile"}
    assert set(f["ranking"]["pooled"]) == {"spearman", "kendall", "concordant_share", "n_tp"}
    assert [d["decile"] for d in f["ranking"]["iou_by_score_decile"]] == list(range(1, 11))
    assert set(f["ranking"]["iou_by_score_decile"][0]) == {
        "decile",
        "score_min",
        "score_max",
        "mean_iou",
        "n",
    }
    assert f["pr_curve"]["iou"] == 0.5
    assert len(f["pr_curve"]["recall"]) == len(f["pr_curve"]["precision"]) == 101
    # CSV paths are relative to the JSON's folder, so the two can move together.
    assert f["csv"] == {
        "detections": "../csv/model.detections.csv",
        "classes": "../csv/model.classes.csv",
    }
    det = pd.read_csv(out.parent / f["csv"]["detections"])
    assert list(det.columns) == [
        "image_id",
        "category_id",
        "category",
        "score",
        "rank",
        "gt_id",
        "iou",
        "status",
    ]
    assert len(det) == len(dets)
    assert set(det["status"]) <= {"tp", "fp", "ignored"}
    assert det.loc[det["status"] == "fp", "iou"].isna().all()
    assert (det.loc[det["status"] == "tp", "iou"] >= 0.5).all()
    assert int((det["status"] == "tp").sum()) == f["ranking"]["pooled"]["n_tp"]
    for _, g in det.groupby("category_id"):  # rank: 1.. by descending score within class
        assert g["rank"].tolist() == list(range(1, len(g) + 1))
        assert g["score"].is_monotonic_decreasing
    classes = pd.read_csv(out.parent / f["csv"]["classes"])
    assert classes["category_id"].tolist() == [r["category_id"] for r in f["lrp"]["per_class"]]
    assert classes["oLRP"].tolist() == pytest.approx([r["oLRP"] for r in f["lrp"]["per_class"]])


def test_full_precision_and_null_for_nan(tmp_path):
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "seen"}, {"id": 2, "name": "missed"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 10], "area": 100},
        ],
    }
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9.1], "score": 0.7}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "d.json").write_text(json.dumps(dets))
    out = tmp_path / "a.json"
    _ok([tmp_path / "d.json", "--gt", tmp_path / "gt.json", "--json", out])
    text = out.read_text()
    assert "NaN" not in text
    rows = json.loads(text)["files"][0]["lrp"]["per_class"]
    missed = rows[1]
    assert missed["oLRP"] == 1.0 and missed["threshold"] is None and missed["oLRP_loc"] is None
    assert rows[0]["oLRP_loc"] == 1 - 91 / 100  # full precision, not the terminal's rounding


def test_real_data_several_files_side_by_side(shared_coco, tmp_path):
    gt = shared_coco / "instances_val2014_100.json"
    dt = shared_coco / "detections_fakebbox100.json"
    half = tmp_path / "half.json"
    half.write_text(json.dumps(json.loads(dt.read_text())[::2]))
    out = tmp_path / "cmp.json"
    result = _ok([dt, half, "--gt", gt, "--label", "full", "--label", "half", "--json", out])
    assert "comparison" in result.stdout
    assert "0.505" in result.stdout
    doc = json.loads(out.read_text())
    assert [f["label"] for f in doc["files"]] == ["full", "half"]
    assert round(doc["files"][0]["coco"]["AP"], 3) == 0.505
    assert doc["files"][1]["n_detections"] == 367


def test_empty_predictions(case, tmp_path):
    _, _, gt_path, _ = case
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    out = tmp_path / "e.json"
    _ok([empty, "--gt", gt_path, "--json", out])
    f = json.loads(out.read_text())["files"][0]
    assert f["coco"]["AP"] == 0.0 and f["lrp"]["moLRP"] == 1.0


def test_classes_option(case, tmp_path):
    _, _, gt_path, dt_path = case
    out = tmp_path / "c.json"
    _ok([dt_path, "--gt", gt_path, "--classes", "c1,3", "--json", out])
    rows = json.loads(out.read_text())["files"][0]["lrp"]["per_class"]
    assert {r["category_id"] for r in rows} == {1, 3}  # "c1" by name, 3 by id


def test_lenient_counts_skipped_records(case, tmp_path):
    _, dets, gt_path, _ = case
    bad = [*dets, {"image_id": 99999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]
    bad += [{"image_id": 10, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}, 3, {}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert runner.invoke(app, ["analyze", str(path), "--gt", str(gt_path)]).exit_code == 2
    out = tmp_path / "l.json"
    result = _ok([path, "--gt", gt_path, "--lenient", "--json", out])
    f = json.loads(out.read_text())["files"][0]
    assert f["skipped"] == {"unknown_image": 1, "bad_bbox": 1, "not_an_object": 1, "missing_key": 1}
    assert f["n_detections"] == len(dets)
    assert "skipped" in result.stdout


def _rec(**kw):
    base = {"image_id": 10, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()

BAD_PREDICTIONS = [
    ("not json", b"{not json", "not valid JSON"),
    ("binary", b"\xff\xfe\x00", "not a JSON file"),
    ("object", json.dumps({"a": 1}).encode(), "top level is an object"),
    ("number", b"3", "top level is a number"),
    ("record not object", json.dumps([_rec(), [1, 2]]).encode(), "record 1: is a list"),
    ("missing score", json.dumps([_rec(score=_DROP)]).encode(), "record 0: missing key 'score'"),
    ("string id", json.dumps([_rec(image_id="10")]).encode(), "record 0: 'image_id' is a string"),
    ("float id", json.dumps([_rec(category_id=1.5)]).encode(), "record 0: 'category_id'"),
    ("bool score", json.dumps([_rec(), _rec(score=True)]).encode(), "record 1: 'score'"),
    ("bbox 3", json.dumps([_rec(bbox=[1, 2, 3])]).encode(), "record 0: 'bbox' must be a list"),
    ("bbox str", json.dumps([_rec(bbox=[1, 2, "3", 4])]).encode(), "record 0: 'bbox'"),
    ("bbox zero w", json.dumps([_rec(bbox=[1, 2, 0, 4])]).encode(), "positive width"),
    ("bbox neg h", json.dumps([_rec(), _rec(bbox=[1, 2, 3, -4])]).encode(), "record 1: 'bbox'"),
    (
        "bbox inf",
        b'[{"image_id": 10, "category_id": 1, "bbox": [1, 2, Infinity, 4], "score": 0.5}]',
        "record 0: 'bbox'",
    ),
    (
        "score nan",
        b'[{"image_id": 10, "category_id": 1, "bbox": [1, 2, 3, 4], "score": NaN}]',
        "record 0: 'score'",
    ),
    ("score 1.5", json.dumps([_rec(score=1.5)]).encode(), "must be a finite number in [0, 1]"),
    ("score neg", json.dumps([_rec(score=-0.1)]).encode(), "record 0: 'score'"),
    ("unknown image", json.dumps([_rec(image_id=4)]).encode(), "image_id 4 is not in the ground"),
    ("unknown cat", json.dumps([_rec(category_id=2)]).encode(), "category_id 2 is not in the"),
    ("gt as predictions", None, "is a COCO instances (ground truth) file"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_PREDICTIONS, ids=lambda x: str(x))
def test_bad_predictions_exit_2_one_line(case, tmp_path, name, content, message):
    _, _, gt_path, _ = case
    path = tmp_path / "bad.json"
    path.write_bytes(gt_path.read_bytes() if content is None else content)
    out = tmp_path / "never.json"
    result = runner.invoke(app, ["analyze", str(path), "--gt", str(gt_path), "--json", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {path}: "), lines[0]
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".never.json*"))  # no temporary left behind either


BAD_GT = [
    ("list", json.dumps([]), "not a COCO instances file: top level is a list"),
    ("no images", json.dumps({"annotations": [], "categories": []}), "no 'images' key"),
    ("images not list", json.dumps({"images": 1, "annotations": [], "categories": []}), "'images'"),
    (
        "ann without bbox",
        json.dumps(
            {
                "images": [{"id": 1}],
                "categories": [{"id": 1, "name": "a"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1}],
            }
        ),
        "annotations[0]: missing 'bbox'",
    ),
    (
        "ann unknown image",
        json.dumps(
            {
                "images": [{"id": 1}],
                "categories": [{"id": 1, "name": "a"}],
                "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}],
            }
        ),
        "image_id 2 is not in 'images'",
    ),
    ("missing", None, "no such file"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_GT, ids=lambda x: str(x))
def test_bad_ground_truth_exit_2_one_line(case, tmp_path, name, content, message):
    _, _, _, dt_path = case
    gt_path = tmp_path / "gtbad.json"
    if content is not None:
        gt_path.write_text(content)
    result = runner.invoke(app, ["analyze", str(dt_path), "--gt", str(gt_path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {gt_path}: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "a", "--label", "b"], "--label"),
        (["--classes", "nosuchclass"], "--classes"),
        (["--iou-threshold", "1.5"], "--iou-threshold"),
        (["--max-dets", "0"], "--max-dets"),
        (["--delta", "-1"], "--delta"),
        (["--top", "-1"], "--top"),
    ],
)
def test_bad_options_exit_2(case, args, message):
    _, _, gt_path, dt_path = case
    result = runner.invoke(app, ["analyze", str(dt_path), "--gt", str(gt_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_second_file_bad_fails_before_any_output(case, tmp_path):
    _, _, gt_path, dt_path = case
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    out = tmp_path / "x.json"
    result = runner.invoke(
        app, ["analyze", str(dt_path), str(bad), "--gt", str(gt_path), "--json", str(out)]
    )
    assert result.exit_code == 2 and not out.exists()


def test_undefined_numbers_show_as_dash_with_a_note(case):
    _, _, gt_path, dt_path = case  # boxes under 40 x 40: APl and ARl are undefined
    result = _ok([dt_path, "--gt", gt_path])
    line = next(x for x in result.stdout.splitlines() if " APl " in f" {x} ")
    assert "–" in line and "-1" not in line
    assert "undefined" in result.stdout
