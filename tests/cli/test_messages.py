"""What a command says is what happened, in the same words everywhere: an overflowing box,
duplicate ground-truth ids, an empty or blank JSON, a file where a folder is expected and a
bad option are each one ``Error:`` line; a command group without arguments shows its help on
stderr and exits 2."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.helpers.world import World, assert_refused, digest, invoke


@pytest.mark.parametrize("box", [[1e308, 1, 1e308, 10], [1, 1, 1e308, 1e308]])
def test_a_box_whose_numbers_overflow_is_a_bad_record(
    world: World, tmp_path: Path, box: list[float]
) -> None:
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": box, "score": 0.5}]))
    args = ["analyze", preds, "--gt", world.val_ann]
    before = digest(preds, world.val_ann)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would end in a traceback
        assert_refused(invoke(args), preds, "record 0", "finite far corner")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]
        lenient = invoke([*args, "--lenient", "--json", tmp_path / "a.json"])
    assert digest(preds, world.val_ann) == before
    assert lenient.exit_code == 0, lenient.output
    assert json.loads((tmp_path / "a.json").read_text())["files"][0]["skipped"] == {"bad_bbox": 1}


def test_a_ground_truth_box_whose_corner_overflows_is_refused(world: World, tmp_path: Path) -> None:
    gt = json.loads(world.val_ann.read_text())
    gt["annotations"][0]["bbox"] = [1e308, 1, 1e308, 1]
    gt["annotations"][0]["area"] = 5.0
    bad = tmp_path / "gt.json"
    bad.write_text(json.dumps(gt))
    before = digest(bad, world.predictions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = invoke(["analyze", world.predictions, "--gt", bad, "--json", tmp_path / "a.json"])
    assert_refused(result, bad, "annotations[0]", "far corner")
    assert digest(bad, world.predictions) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json"]


@pytest.mark.parametrize(("key", "what"), [("images", "image"), ("categories", "category")])
def test_ground_truth_with_duplicate_ids_is_refused(
    world: World, tmp_path: Path, key: str, what: str
) -> None:
    gt = json.loads(world.val_ann.read_text())
    n = len(gt[key])
    gt[key].append(dict(gt[key][0]))
    bad = tmp_path / "gt.json"
    bad.write_text(json.dumps(gt))
    first = gt[key][0]["id"]
    message = f"{key}[{n}]: duplicate {what} id {first} (also {key}[0])"
    before = digest(bad, world.predictions)
    out = tmp_path / "out.json"
    result = invoke(["analyze", world.predictions, "--gt", bad, "--json", out])
    assert_refused(result, bad, message)
    assert_refused(invoke(["data", "info", "--ann", bad, "--json", out]), bad, message)
    assert digest(bad, world.predictions) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json"]


@pytest.mark.parametrize(("content", "said"), [("", "empty file"), (" \n\t\n", "only whitespace")])
def test_one_reader_one_message_for_an_empty_or_blank_json(
    world: World, tmp_path: Path, content: str, said: str
) -> None:
    blank = tmp_path / "blank.json"
    blank.write_text(content)
    before = digest(blank, world.predictions, world.val_ann)
    for args in (
        ["analyze", blank, "--gt", world.val_ann],
        ["analyze", world.predictions, "--gt", blank],
        ["data", "info", "--ann", blank],
        ["report", blank, "--out", tmp_path / "r"],
    ):
        line = assert_refused(invoke(args), blank, said)
        assert "not valid JSON" not in line
    assert digest(blank, world.predictions, world.val_ann) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.json"]


def test_a_file_where_a_folder_is_expected_says_so(world: World, tmp_path: Path) -> None:
    before = digest(world.val_ann, world.predictions)
    result = invoke(["train", "--data", world.val_ann, "--out", tmp_path / "run"])
    assert_refused(result, world.val_ann, "is a file, expected a folder")
    result = invoke(["data", "info", "--data", world.predictions, "--json", tmp_path / "i.json"])
    assert_refused(result, world.predictions, "is a file, expected a folder")
    assert digest(world.val_ann, world.predictions) == before
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("words", [[], ["data"]])
def test_a_group_without_arguments_shows_its_help_on_stderr_and_exits_2(
    words: list[str],
) -> None:
    result = invoke(words)  # Click's convention for no_args_is_help: usage error, exit 2
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"Usage: alrp {' '.join(words)}".strip() in result.stderr
    assert invoke([*words, "--help"]).exit_code == 0  # asked for: exit 0, on stdout


def test_an_empty_json_input_says_empty_file(world: World, tmp_path: Path) -> None:
    empty = tmp_path / "gt.json"
    empty.write_text("")
    assert_refused(invoke(["analyze", world.predictions, "--gt", empty]), empty, "empty file")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["report", "x.json", "--out", "r", "--dpi", "10"], "--dpi"),
        (["bench", "--threads", "0"], "--threads"),
        (["train", "--threads", "0"], "--threads"),
        (["analyze", "x.json"], "--gt"),
    ],
)
def test_option_errors_are_one_line(args: list[str], option: str) -> None:
    assert_refused(invoke(args), option)
