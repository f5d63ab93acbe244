"""Validation of predictions and ground truth in the library (the CLI matrix is in tests/cli)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from pycocotools.coco import COCO

from alrp_cli.errors import UserError
from analysis import analyze, load_gt, load_predictions
from analysis import io as io_mod
from analysis.io import SKIP_KINDS

GT = {
    "images": [{"id": 1}, {"id": 2}],
    "categories": [{"id": 3, "name": "cat"}],
    "annotations": [
        {"id": 0, "image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10]},  # id 0, no area
        {"id": 5, "image_id": 2, "category_id": 3, "bbox": [0, 0, 10, 10], "iscrowd": 0},
    ],
}


def _rec(**kw):
    r = {"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.5}
    r.update(kw)
    return r


def test_lenient_counts_every_kind_and_keeps_record_indices():
    records = [
        _rec(),
        7,  # not_an_object
        {"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.1},  # missing_key
        _rec(image_id=1.0),  # bad_type
        _rec(bbox=[0, 0, 1]),  # bad_type
        _rec(bbox=[0, 0, 1, float("nan")]),  # bad_bbox
        _rec(score=float("inf")),  # bad_score
        _rec(image_id=5),  # unknown_image
        _rec(category_id=4),  # unknown_category
        _rec(image_id=2, score=1.0),
    ]
    p = load_predictions(records, GT, lenient=True)
    assert p.skipped == {
        "not_an_object": 1,
        "missing_key": 1,
        "bad_type": 2,
        "bad_bbox": 1,
        "bad_score": 1,
        "unknown_image": 1,
        "unknown_category": 1,
    }
    assert set(p.skipped) == set(SKIP_KINDS)
    assert p.index.tolist() == [0, 9] and p.image_id.tolist() == [1, 2]
    assert p.n_records == len(records)
    with pytest.raises(UserError, match=r"^<predictions>: record 1: is a number"):
        load_predictions(records, GT)


def test_first_bad_record_is_reported_even_when_later_kinds_come_first_in_order():
    # record 0 has an unknown category (a late check), record 1 a missing key (early check)
    records = [_rec(category_id=9), {"score": 0.2}]
    with pytest.raises(UserError, match=r"record 0: category_id 9 is not in the ground truth"):
        load_predictions(records, GT)


def test_numpy_values_are_accepted():
    rec = {
        "image_id": np.int64(1),
        "category_id": np.int32(3),
        "bbox": np.array([0.0, 0.0, 10.0, 10.0]),
        "score": np.float32(0.25),
    }
    p = load_predictions([rec], GT)
    assert p.score.tolist() == [0.25] and p.bbox.tolist() == [[0, 0, 10, 10]]


def test_ground_truth_forms_and_defaults():
    g = load_gt(GT)
    assert g.area.tolist() == [100.0, 100.0]  # area defaults to w*h
    assert g.ann_id.tolist() == [0, 5]  # the file's ids are kept for reporting
    coco = COCO()
    coco.dataset = {k: list(v) for k, v in GT.items()}
    coco.createIndex()
    assert load_gt(coco).image_ids.tolist() == [1, 2]
    # annotation id 0 (COCOeval's "unmatched" marker) still evaluates correctly: both hit
    r = analyze([_rec(), _rec(image_id=2)], GT)
    assert r.coco["AP"] == pytest.approx(1.0) and r.molrp == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("gt", "message"),
    [
        ({"images": [{"id": "1"}], "annotations": [], "categories": []}, r"images\[0\]"),
        ({"images": [], "annotations": [], "categories": []}, "'categories' is empty"),
        (
            {**GT, "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0]}]},
            r"annotations\[0\]: 'bbox' must be a list of 4 numbers",
        ),
        (
            {
                **GT,
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "iscrowd": 2}
                ],
            },
            "'iscrowd' must be 0 or 1",
        ),
    ],
)
def test_bad_ground_truth(gt, message):
    with pytest.raises(UserError, match=message):
        load_gt(gt)


def test_duplicate_annotation_ids_are_refused(tmp_path):
    anns = [
        {"id": i, "image_id": 1, "category_id": 3, "bbox": [i, 0, 10, 10]} for i in (4, 9, 4, 9)
    ]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({**GT, "annotations": anns}))
    with pytest.raises(
        UserError,
        match=rf"^{re.escape(str(path))}: annotations\[2\]: duplicate annotation id 4 "
        r"\(also annotations\[0\]\)",
    ):
        load_gt(path)


def test_duplicate_ids_would_change_pycocotools_ap():
    # Why they are refused: pycocotools evaluates the last box of an id in place of the
    # first, so two perfect detections score AP 0.5 instead of 1 (unique ids: AP 1).
    from tests.helpers.coco_cases import pycoco_eval

    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 3,
            "bbox": [0, 0, 10, 10],
            "area": 100,
            "iscrowd": 0,
        },
        {
            "id": 1,
            "image_id": 2,
            "category_id": 3,
            "bbox": [50, 50, 10, 10],
            "area": 100,
            "iscrowd": 0,
        },
    ]
    dets = [_rec(), _rec(image_id=2, bbox=[50, 50, 10, 10])]
    dup = {**GT, "annotations": anns}
    assert pycoco_eval(dup, dets).stats[1] < 1.0  # AP50 with the duplicate: wrong
    unique = {**GT, "annotations": [anns[0], {**anns[1], "id": 2}]}
    assert pycoco_eval(unique, dets).stats[1] == pytest.approx(1.0)
    assert analyze(dets, unique).coco["AP50"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="duplicate annotation id 1"):
        load_gt(dup)


def test_unreadable_paths(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        load_gt(tmp_path)
    with pytest.raises(UserError, match="no such file"):
        load_predictions(tmp_path / "none.json", GT)


def _columns(p):
    return {
        k: getattr(p, k).tolist() for k in ("image_id", "category_id", "bbox", "score", "index")
    }


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("block", [7, 64, 1 << 22])
def test_streamed_file_equals_the_in_memory_list(tmp_path, monkeypatch, indent, block):
    # Blocks smaller than a record, cuts next to "}," inside strings and nested objects,
    # other keys, ints for floats: the columns equal those of the parsed list.
    records = []
    for i in range(40):
        r = _rec(image_id=1 + i % 2, bbox=[i, 0.5, 1 + i, 2.25], score=round(i / 40, 3))
        if i % 5 == 0:
            r["note"] = 'tricky }, {"score": 1} ]'
        if i % 7 == 0:
            r["extra"] = {"nested": {"a": [1, {"b": 2}]}, "s": "},"}
        records.append(r)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(records, indent=indent))
    monkeypatch.setattr(io_mod, "BLOCK_BYTES", block)

    def no_whole_file_read(*args, **kwargs):
        raise AssertionError("fell back to reading the whole file")

    if indent is None and block > 64:  # a plain file in one block never needs the fallback
        monkeypatch.setattr(io_mod, "read_json", no_whole_file_read)
    streamed = load_predictions(path, GT)
    assert _columns(streamed) == _columns(load_predictions(records, GT))
    assert streamed.n_records == 40 and streamed.path == str(path)


def test_streaming_reads_in_blocks_without_falling_back(tmp_path, monkeypatch):
    records = [_rec(score=i / 100) for i in range(100)]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(records))
    monkeypatch.setattr(io_mod, "BLOCK_BYTES", 100)  # about one record per block
    monkeypatch.setattr(io_mod, "read_json", lambda *a, **k: pytest.fail("whole-file read"))
    assert load_predictions(path, GT).score.tolist() == [i / 100 for i in range(100)]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_rec(score=True), r"record 57: 'score' is a boolean"),
        (_rec(image_id=9), r"record 57: image_id 9 is not in the ground truth"),
        (_rec(bbox=[0, 0, 0, 1]), r"record 57: 'bbox' \[0, 0, 0, 1\] must be finite"),
        ({"image_id": 1}, r"record 57: missing keys 'category_id', 'bbox', 'score'"),
        (_rec(score=float("nan")), r"record 57: 'score' nan must be a finite number"),
    ],
)
def test_bad_record_in_a_late_block_is_named_by_its_file_index(tmp_path, monkeypatch, bad, message):
    records = [_rec() for _ in range(80)]
    records[57] = bad
    records[70] = _rec(category_id=4)  # a later bad record is not the one reported
    path = tmp_path / "p.json"
    path.write_text(json.dumps(records))  # NaN is written as the literal NaN
    monkeypatch.setattr(io_mod, "BLOCK_BYTES", 256)
    with pytest.raises(UserError, match=f"^{re.escape(str(path))}: {message}"):
        load_predictions(path, GT)
    p = load_predictions(path, GT, lenient=True)
    q = load_predictions(json.loads(path.read_text()), GT, lenient=True)
    assert _columns(p) == _columns(q) and p.skipped == q.skipped and len(p) == 78


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("[", "not valid JSON"),
        ('[{"image_id": 1}] x', "not valid JSON"),
        ('{"images": [], "annotations": []}', "is a COCO instances (ground truth) file"),
        ("  7 ", "top level is a number"),
    ],
)
def test_malformed_files_give_the_whole_file_messages(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(UserError, match=re.escape(message)):
        load_predictions(path, GT)


def test_ids_beyond_int64_are_unknown_not_a_crash(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([_rec(), _rec(image_id=2**70)]))
    with pytest.raises(UserError, match=r"record 1: image_id 1180591620717411303424 is not in"):
        load_predictions(path, GT)
    assert load_predictions(path, GT, lenient=True).skipped == {"unknown_image": 1}


def test_empty_list_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(" [ \n ] \n")
    p = load_predictions(path, GT)
    assert len(p) == 0 and p.bbox.shape == (0, 4) and p.n_records == 0


def test_ground_truth_file_fast_path_equals_the_checked_path(tmp_path, monkeypatch):
    from analysis import ground_truth as gt_mod
    from tests.helpers.coco_cases import coco_case

    gt, _ = coco_case(3)
    for i, a in enumerate(gt["annotations"]):
        a["segmentation"] = [[0, 0, 1, 1, 2, 2]]  # skipped by the decoder
        if i % 3 == 0:
            del a["area"]  # defaults to w * h
    gt["categories"][0].pop("name")
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    monkeypatch.setattr(gt_mod, "read_json", lambda *a, **k: pytest.fail("plain path used"))
    fast = load_gt(path)
    slow = load_gt(gt)
    for key in ("image_ids", "cat_ids", "ann_id", "image_id", "category_id", "bbox", "area"):
        np.testing.assert_array_equal(getattr(fast, key), getattr(slow, key))
    assert fast.iscrowd.tolist() == slow.iscrowd.tolist()
    assert fast.cat_names == slow.cat_names and fast.images == slow.images
