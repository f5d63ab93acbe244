"""A run directory as an input: which evaluation is analysed, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from alrp_cli.errors import UserError
from analysis.rundir import evaluation_gt, pick_evaluation, resolve_predictions, run_evaluations
from tests.helpers.run_dirs import make_run


def test_best_is_the_highest_ap_and_the_earliest_of_equals(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", {1: 0.1, 2: 0.3, 3: None, 4: 0.3, 5: 0.2}, "gt.json")
    assert [e.epoch for e in run_evaluations(run)] == [1, 2, 3, 4, 5]
    best = pick_evaluation(run)
    assert (best.epoch, best.ap) == (2, 0.3)  # as best.pt: only a strictly higher AP wins
    assert best.predictions == run / "eval" / "epoch_002" / "predictions.json"
    assert pick_evaluation(run, 5).epoch == 5
    assert pick_evaluation(make_run(tmp_path / "n", {7: None, 9: None}, "g")).epoch == 7


def test_an_unfinished_evaluation_is_not_a_candidate(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", {1: 0.1}, "gt.json")
    late = run / "eval" / "epoch_002"
    late.mkdir()
    (late / "predictions.json").write_text("[]")  # summary.json not written yet
    assert [e.epoch for e in run_evaluations(run)] == [1]


def test_one_line_errors(tmp_path: Path) -> None:
    bare = make_run(tmp_path / "bare", {}, "gt.json")
    with pytest.raises(UserError, match=r"bare: no evaluation yet \(no eval/epoch_\*"):
        pick_evaluation(bare)
    run = make_run(tmp_path / "r", {4: 0.1, 8: 0.2}, "nowhere/gt.json")
    with pytest.raises(UserError, match=r"r: no evaluation of epoch 5 \(evaluated epochs: 4, 8\)"):
        pick_evaluation(run, 5)
    with pytest.raises(UserError, match=r"summary\.json: ground truth nowhere/gt\.json not found"):
        evaluation_gt(pick_evaluation(run))
    (run / "eval" / "epoch_008" / "summary.json").write_text('{"AP": 0.2}')
    with pytest.raises(
        UserError, match=r"epoch_008/summary\.json: expected a JSON object with 'gt'"
    ):
        run_evaluations(run)


def test_ground_truth_is_found_as_recorded_or_beside_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gt.json").write_text("{}")
    run = make_run(tmp_path / "r", {1: 0.5}, "data/gt.json")
    monkeypatch.chdir(tmp_path)
    assert evaluation_gt(pick_evaluation(run)) == Path("data/gt.json")  # where training ran
    monkeypatch.chdir(run)
    assert evaluation_gt(pick_evaluation(run)) == tmp_path / "data" / "gt.json"  # beside it
    absolute = make_run(tmp_path / "a", {1: 0.5}, str(tmp_path / "data" / "gt.json"))
    assert evaluation_gt(pick_evaluation(absolute)) == tmp_path / "data" / "gt.json"


def test_resolve_predictions_for_analyze(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text("{}")
    a = make_run(tmp_path / "alrp", {1: 0.1, 2: 0.2}, str(gt))
    b = make_run(tmp_path / "focal", {2: 0.3}, str(gt))
    files, found, names = resolve_predictions([a, b], None)
    assert files == [a / "eval/epoch_002/predictions.json", b / "eval/epoch_002/predictions.json"]
    assert (found, names) == (gt, ["alrp", "focal"])
    files, _, _ = resolve_predictions([a], None, epoch=1)
    assert files == [a / "eval/epoch_001/predictions.json"]
    loose = tmp_path / "x.json"
    files, found, names = resolve_predictions([loose, a], gt)
    assert (files[0], found, names) == (loose, gt, ["x", "alrp"])
    with pytest.raises(UserError, match=r"x\.json: a predictions file needs --gt"):
        resolve_predictions([loose], None)
    with pytest.raises(UserError, match=r"--epoch 3: applies to run directories"):
        resolve_predictions([loose], gt, epoch=3)
    with pytest.raises(UserError, match=r"a folder but not a run directory"):
        resolve_predictions([tmp_path], gt)
    other = tmp_path / "other.json"
    other.write_text("{}")
    c = make_run(tmp_path / "c", {1: 0.1}, str(other))
    with pytest.raises(UserError, match=r"c: evaluated against .*other\.json, but .*; give --gt"):
        resolve_predictions([a, c], None)
