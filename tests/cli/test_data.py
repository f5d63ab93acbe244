"""`alrp data synth` and `alrp data preview` through the CLI runner."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from PIL import Image
from pycocotools.coco import COCO
from typer.testing import CliRunner

from alrp_cli.cli.app import app

runner = CliRunner()


def _coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _synth(out: Path, *extra: str):
    args = ["data", "synth", "--out", str(out), "--num-train", "6", "--num-val", "3"]
    return runner.invoke(app, [*args, "--image-size", "48", *extra])


def test_synth_writes_the_coco_layout_and_a_summary(tmp_path: Path) -> None:
    result = _synth(tmp_path / "ds", "--seed", "4", "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    root = tmp_path / "ds"
    for split, count in (("train", 6), ("val", 3)):
        coco = _coco(root / "annotations" / f"instances_{split}2017.json")
        assert len(coco.imgs) == count
        assert len(list((root / f"{split}2017").glob("*.png"))) == count
        for img in coco.imgs.values():
            with Image.open(root / f"{split}2017" / img["file_name"]) as im:
                assert im.size == (48, 48) and im.mode == "RGB"
    summary = json.loads((tmp_path / "s.json").read_text())
    train = _coco(root / "annotations" / "instances_train2017.json")
    assert summary["params"]["seed"] == 4 and summary["params"]["image_size"] == 48
    assert summary["splits"]["train"]["images"] == 6
    assert summary["splits"]["train"]["boxes"] == len(train.anns)
    assert sum(summary["splits"]["train"]["boxes_per_category"].values()) == len(train.anns)
    assert "train" in result.stdout and "circle" in result.stdout  # the table


def test_synth_same_seed_same_files(tmp_path: Path) -> None:
    assert _synth(tmp_path / "a", "--seed", "9").exit_code == 0
    assert _synth(tmp_path / "b", "--seed", "9").exit_code == 0
    for name in ("annotations/instances_val2017.json", "val2017/000002.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_synth_classes_option(tmp_path: Path) -> None:
    result = _synth(tmp_path / "ds", "--classes", "triangle, square")
    assert result.exit_code == 0, result.output
    coco = _coco(tmp_path / "ds" / "annotations" / "instances_train2017.json")
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["triangle", "square"]


def test_synth_hard_preset(tmp_path: Path) -> None:
    from alrp_cli.detection.data import HARD_CLASSES

    result = _synth(tmp_path / "hard", "--preset", "hard", "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    coco = _coco(tmp_path / "hard" / "annotations" / "instances_val2017.json")
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(HARD_CLASSES)
    assert json.loads((tmp_path / "s.json").read_text())["params"]["preset"] == "hard"
    _assert_user_error(_synth(tmp_path / "x", "--preset", "hard", "--classes", "ring"), "--preset")
    _assert_user_error(_synth(tmp_path / "y", "--preset", "harder"), "--preset")


def _assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_synth_bad_input_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "thesis.tex").write_text("precious")
    _assert_user_error(_synth(taken), str(taken), "not empty")
    assert [p.name for p in taken.iterdir()] == ["thesis.tex"]
    _assert_user_error(_synth(tmp_path / "x", "--classes", "circle,hexagon"), "--classes")
    _assert_user_error(_synth(tmp_path / "x", "--image-size", "8"), "--image-size")
    _assert_user_error(_synth(tmp_path / "x", "--num-val", "0"), "--num-val")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_preview_draws_a_grid(tmp_path: Path) -> None:
    assert _synth(tmp_path / "ds").exit_code == 0
    out = tmp_path / "grid.png"
    args = ["data", "preview", "--data", str(tmp_path / "ds"), "--split", "train"]
    result = runner.invoke(app, [*args, "-o", str(out), "--num", "5", "--cols", "3"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.size == (3 * 256 + 4 * 4, 2 * 256 + 3 * 4)
    explicit = [
        "data", "preview", "-o", str(out), "--cell", "64",
        "--ann", str(tmp_path / "ds" / "annotations" / "instances_val2017.json"),
        "--images", str(tmp_path / "ds" / "val2017"),
    ]  # fmt: skip
    assert runner.invoke(app, explicit).exit_code == 0
    old_spelling = runner.invoke(app, [*explicit[:2], "--out", *explicit[3:]])
    assert old_spelling.exit_code == 2 and "No such option: --out" in old_spelling.stderr
    with Image.open(out) as im:
        assert im.size == (3 * 64 + 4 * 4, 64 + 2 * 4)  # 3 val images: one row of 3, not 4


def test_preview_bad_input_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    missing = tmp_path / "missing"
    base = ["data", "preview", "--output", str(out)]
    _assert_user_error(runner.invoke(app, [*base, "--data", str(missing)]), str(missing))
    _assert_user_error(runner.invoke(app, base), "--data")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    result = runner.invoke(app, [*base, "--ann", str(bad), "--images", str(tmp_path)])
    _assert_user_error(result, str(bad), "not valid JSON")
    assert not out.exists()


def test_info_counts_match_pycocotools(tmp_path: Path, shared_coco: Path) -> None:
    assert _synth(tmp_path / "ds").exit_code == 0
    real = shared_coco / "instances_val2014_100.json"
    out = tmp_path / "info.json"
    args = ["data", "info", "--data", str(tmp_path / "ds"), "--ann", str(real), "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert list(doc["counts"]) == ["train", "val", real.name]
    for name, path in doc["files"].items():
        coco = _coco(Path(path))
        counts = doc["counts"][name]
        crowd = sum(a["iscrowd"] for a in coco.anns.values())
        assert counts["images"] == len(coco.imgs)
        assert (counts["boxes"], counts["crowd_boxes"]) == (len(coco.anns) - crowd, crowd)
        for cat in coco.cats.values():
            ids = coco.getAnnIds(catIds=[cat["id"]], iscrowd=False)
            assert counts["boxes_per_category"][cat["name"]] == len(ids)
    assert doc["counts"][real.name]["crowd_boxes"] > 0  # the real file has crowd boxes
    _assert_user_error(runner.invoke(app, ["data", "info"]), "--data")
