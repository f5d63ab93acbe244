"""benchmarks/compare_losses.py: the plan of runs, the choice of the shared arm's rate, the
tables and figure 8 with error bars, on made-up results (training is not run here; the
``slow`` smoke test runs the whole command on a tiny set)."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location(
        "compare_losses", ROOT / "benchmarks" / "compare_losses.py"
    )
    module = importlib.util.module_from_spec(spec)
    # Spawned workers import it by this name, from the parent's sys.path.
    sys.modules["compare_losses"] = module
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.append(str(ROOT / "benchmarks"))
    spec.loader.exec_module(module)
    return module


compare = _load()


def _args(tmp_path: Path, *extra: str):
    return compare.parse(["--out", str(tmp_path), *extra])


def _result(run: dict, ap: float) -> dict:
    return {
        **{k: run[k] for k in ("name", "table", "loss", "seed", "lr")},
        "AP": ap,
        "AP50": ap + 0.2,
        "AP75": ap - 0.1,
        "moLRP": 1 - ap,
        "spearman": 0.3,
        "sb_weight_used": [50.0, 20.0] if run["loss"] == "alrp" else [None, None],
        "train_seconds": 10.0,
        "headline": {"AP": ap, "AP50": ap + 0.2, "moLRP": 1 - ap, "spearman": 0.3},
    }


def test_plan_is_twelve_own_runs_and_the_grid_then_the_best_rate_on_the_other_seeds(
    tmp_path: Path,
) -> None:
    args = _args(tmp_path)
    first = compare.plan(args, {})
    own = [r for r in first if r["table"] == "own"]
    grid = [r for r in first if r["table"] == "shared"]
    assert len(own) == 12 and len(grid) == 12 and {r["seed"] for r in grid} == {0}
    # The own recipes keep the official ratio aLRP : AP : RS : focal = 0.008 : 0.002 :
    # 0.016 : 0.02 at batch 32 (RS-ATSS: 0.008 at 16).
    lr = {r["loss"]: r["lr"] for r in own}
    assert lr["alrp"] == pytest.approx(0.04) and lr["rs"] == pytest.approx(0.08)
    assert lr["ap"] == pytest.approx(0.01) and lr["focal"] == pytest.approx(0.1)
    rs = next(r["options"] for r in own if r["loss"] == "rs")
    assert (rs["group_norm"], rs["p6_from"], rs["anchor_scales_per_octave"]) == (True, "p5", 3)
    # Finish the grid with a known best rate per loss: only then do seeds 1 and 2 appear.
    best = {"alrp": 0.08, "ap": 0.02, "rs": 0.02, "focal": 0.04}
    done = {r["name"]: _result(r, 0.5 if r["lr"] == best[r["loss"]] else 0.1) for r in grid}
    extra = [r for r in compare.plan(args, done) if r["name"] not in {g["name"] for g in first}]
    assert sorted((r["loss"], r["seed"], r["lr"]) for r in extra) == sorted(
        (loss, seed, lr) for loss, lr in best.items() for seed in (1, 2)
    )


def test_arms_and_losses_select_the_runs(tmp_path: Path) -> None:
    args = _args(tmp_path, "--losses", "rs", "--arms", "shared", "--seeds", "0,1,2")
    grid = compare.plan(args, {})
    assert [(r["table"], r["loss"], r["lr"]) for r in grid] == [
        ("shared", "rs", lr) for lr in (0.02, 0.04, 0.08)
    ]
    done = {r["name"]: _result(r, 0.5 if r["lr"] == 0.04 else 0.1) for r in grid}
    rest = [r for r in compare.plan(args, done) if r["name"] not in done]
    assert [(r["table"], r["seed"], r["lr"]) for r in rest] == [
        ("shared", 1, 0.04),
        ("shared", 2, 0.04),
    ]
    own = compare.plan(_args(tmp_path, "--losses", "rs,ap", "--arms", "own"), {})
    assert {(r["table"], r["loss"]) for r in own} == {("own", "rs"), ("own", "ap")}
    for bad in (["--arms", "mine"], ["--arms", ""], ["--arms", "own", "--ablation"]):
        with pytest.raises(SystemExit):
            _args(tmp_path, *bad)


def test_ablation_runs_at_alrps_best_shared_rate_once_the_grid_is_done(tmp_path: Path) -> None:
    args = _args(tmp_path, "--ablation", "--epochs", "4")
    grid = [r for r in compare.plan(args, {}) if r["table"] == "shared"]
    assert not [r for r in compare.plan(args, {}) if r["table"] == "ablation"]
    done = {r["name"]: _result(r, 0.5 if r["lr"] == 0.08 else 0.1) for r in grid}
    ablation = [r for r in compare.plan(args, done) if r["table"] == "ablation"]
    assert {r["variant"]: r["options"] for r in ablation} == {
        "sb-fixed-10": {"lr": 0.08, "sb_fixed": True, "sb_init": 10.0},
        "no-groupnorm": {"lr": 0.08, "group_norm": False},
        "epochs-x2": {"lr": 0.08, "epochs": 8},
    }
    assert {(r["loss"], r["seed"]) for r in ablation} == {("alrp", 0)}
    results = list(done.values()) + [{**_result(r, 0.2), "variant": r["variant"]} for r in ablation]
    text = compare.tables(results, args)
    assert "## Ablation: aLRP, shared recipe at lr 0.08, seed 0" in text
    assert "| baseline (self-balance, GroupNorm) | 0.500 |" in text
    assert "| sb-fixed-10 | 0.200 |" in text and "50.0 → 20.0" in text


def test_best_runs_prefers_the_rate_with_the_most_seeds_then_the_mean_ap() -> None:
    runs = [
        {"lr": 0.02, "AP": 0.9},  # the best single run, but one seed only
        {"lr": 0.04, "AP": 0.3},
        {"lr": 0.04, "AP": 0.5},
    ]
    assert [r["AP"] for r in compare.best_runs(runs)] == [0.3, 0.5]
    assert compare.best_runs([*runs[:1], {"lr": 0.08, "AP": 0.2}])[0]["lr"] == 0.02
    assert compare.best_runs([]) == []


def test_tables_and_figure_show_mean_and_std_over_seeds(tmp_path: Path) -> None:
    args = _args(tmp_path, "--seeds", "0,1", "--losses", "alrp,focal", "--lr-grid", "0.04")
    aps = {("alrp", 0): 0.30, ("alrp", 1): 0.34, ("focal", 0): 0.20, ("focal", 1): 0.26}
    results = []
    for run in compare.plan(args, {}):
        results.append(_result(run, aps[run["loss"], run["seed"]]))
    done = {r["name"]: r for r in results}
    results += [
        _result(r, aps[r["loss"], r["seed"]])
        for r in compare.plan(args, done)
        if r["name"] not in done
    ]
    text = compare.tables(results, args)
    alrp = statistics.mean([0.30, 0.34]), statistics.stdev([0.30, 0.34])
    row = next(line for line in text.splitlines() if line.startswith("| alrp | 0.04 | 2 |"))
    assert f"{alrp[0]:.3f} ± {alrp[1]:.3f}" in row
    assert "- own-alrp-s0: 50.00, 20.00" in text
    compare.figure(results, args)
    assert (tmp_path / "figure8.png").stat().st_size > 10_000
    assert (tmp_path / "figure8.pdf").read_bytes().startswith(b"%PDF")


def test_a_diverged_run_is_counted_and_loses_the_rate_choice(tmp_path: Path) -> None:
    args = _args(tmp_path, "--seeds", "0", "--losses", "focal", "--lr-grid", "0.04,0.08")
    runs = compare.plan(args, {})
    results = [_result(r, 0.2) for r in runs]
    for r in results:
        if r["lr"] == 0.08 or r["table"] == "own":
            r.update(dict.fromkeys(compare.METRICS), diverged="non-finite loss at epoch 2")
    assert compare.best_runs([r for r in results if r["table"] == "shared"])[0]["lr"] == 0.04
    text = compare.tables(results, args)
    assert "| focal | 0.1 | 1 (1 diverged) | - | - | - | - | - |" in text
    assert "focal lr 0.04 AP 0.200, focal lr 0.08 diverged" in text


def test_bad_options_are_refused(tmp_path: Path) -> None:
    for bad in (["--jobs", "0"], ["--losses", "alrp,giou"], ["--num-train", "0"]):
        with pytest.raises(SystemExit) as info:
            _args(tmp_path, *bad)
        assert info.value.code == 2


@pytest.mark.slow
def test_smoke_run_trains_every_arm_in_two_processes_and_resumes(tmp_path: Path) -> None:
    argv = [
        "--out",
        str(tmp_path),
        "--smoke",
        "--seeds",
        "0,1",
        "--lr-grid",
        "0.02,0.08",
        "--jobs",
        "2",
    ]
    compare.main(argv)
    runs = json.loads((tmp_path / "compare.json").read_text())["runs"]
    # own: 4 losses x 2 seeds; shared: 4 x 2 rates on seed 0, then the best rate on seed 1.
    assert len(runs) == 8 + 8 + 4
    assert all((tmp_path / "runs" / r["name"] / "result.json").is_file() for r in runs)
    stamp = {
        r["name"]: (tmp_path / "runs" / r["name"] / "result.json").stat().st_mtime_ns for r in runs
    }
    compare.main(argv)  # everything done: only the tables are rewritten
    assert stamp == {
        r["name"]: (tmp_path / "runs" / r["name"] / "result.json").stat().st_mtime_ns for r in runs
    }


@pytest.mark.parametrize(
    "case", ["out is the data", "out is a file", "out is read-only", "data not synth"]
)
def test_bad_paths_exit_2_with_one_line_and_inputs_unchanged(
    tmp_path: Path, case: str, capsys
) -> None:
    from alrp_cli.synth_names import MARKER

    data = tmp_path / "hard"
    data.mkdir()
    (data / MARKER).write_text("{}")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    out = {
        "out is the data": data,
        "out is a file": a_file,
        "out is read-only": Path("/proc/alrp-compare"),
        "data not synth": tmp_path / "out",
    }[case]
    given = tmp_path if case == "data not synth" else data
    before = {p: p.read_bytes() for p in (data / MARKER, a_file)}
    with pytest.raises(SystemExit) as info:
        compare.main(["--out", str(out), "--data", str(given)])
    assert info.value.code == 2
    message = capsys.readouterr().err.rstrip("\n")
    assert message.startswith("Error: ") and "\n" not in message
    assert str(out if case != "data not synth" else given) in message
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in data.iterdir()) == [MARKER]
    assert not (tmp_path / "out").exists()
