"""Training data without a usable box is refused before anything starts (exit 2, one line
naming the annotation file and the count of boxes by reason, inputs untouched, no run
folder); when only some boxes are unusable the run trains and says how many and why."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from alrp_cli.detection.data import coco_layout
from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, digest, invoke


@pytest.fixture
def dataset(world: World, tmp_path: Path) -> Path:
    return Path(shutil.copytree(world.data, tmp_path / "coco"))


def _edit(dataset: Path, change: Callable[[dict], None]) -> tuple[Path, int]:
    ann = coco_layout(dataset).train_ann
    assert ann is not None
    data = json.loads(ann.read_text())
    change(data)
    ann.write_text(json.dumps(data))
    return ann, len(data["annotations"])


def _outside(a: dict) -> None:
    a["bbox"] = [200.0, 200.0, 10.0, 10.0]  # the images are 64 x 64


def _crowd(a: dict) -> None:
    a["iscrowd"] = 1


def _thin(a: dict) -> None:
    a["bbox"][2] = 0.5  # under 1 px wide (the official loader drops w < 1)


CASES = {
    "outside": (_outside, "outside the image"),
    "crowd": (_crowd, "crowd"),
    "under-1px": (_thin, "zero area or under 1 px"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_usable_training_box_is_refused_with_counts(
    dataset: Path, tmp_path: Path, case: str
) -> None:
    damage, reason = CASES[case]
    ann, n = _edit(dataset, lambda d: [damage(a) for a in d["annotations"]])
    before = digest(dataset)
    out = tmp_path / "run"
    result = invoke(["train", "--data", dataset, *TINY_CLI_OPTIONS, "--out", out])
    line = assert_refused(result, ann, "nothing to train on", f"{n} boxes, none usable")
    assert f"({n} {reason})" in line
    assert not out.exists() and digest(dataset) == before


def test_annotations_without_any_box_are_refused(dataset: Path, tmp_path: Path) -> None:
    ann, _ = _edit(dataset, lambda d: d.update(annotations=[]))
    before = digest(dataset)
    out = tmp_path / "run"
    result = invoke(["train", "--data", dataset, *TINY_CLI_OPTIONS, "--out", out])
    # every image is left out (the official filter_empty_gt); kept, they still hold no box
    assert_refused(result, ann, "0 training images, no boxes; left out: 8 without annotations")
    result = invoke(
        ["train", "--data", dataset, *TINY_CLI_OPTIONS, "--out", out, "--keep-empty-images"]
    )
    assert_refused(result, ann, "nothing to train on: 8 training images, no boxes")
    assert not out.exists() and digest(dataset) == before


def test_some_unusable_boxes_are_counted_and_the_run_trains(dataset: Path, tmp_path: Path) -> None:
    moved: list[int] = []

    def move_first_of_each_image(data: dict) -> None:
        seen: set[int] = set()
        for a in data["annotations"]:
            if a["image_id"] not in seen:
                seen.add(a["image_id"])
                _outside(a)
                moved.append(a["id"])

    ann, n = _edit(dataset, move_first_of_each_image)
    out = tmp_path / "run"
    result = invoke(["train", "--data", dataset, *TINY_CLI_OPTIONS, "--out", out, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    expected = f"{ann}: {len(moved)} of {n} training boxes are not used: {len(moved)} outside"
    squeeze = "".join  # the console wraps long lines anywhere, the path too
    assert squeeze(expected.split()) in squeeze(result.stderr.split())
    assert (out / "last.pt").is_file()
