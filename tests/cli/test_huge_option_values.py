"""Option values too large for memory: every integer option of every command, fed 2⁴⁰.

Each is either refused before any work (exit 2, one line naming the option and the limit,
inputs unchanged, nothing written), or costs nothing more than a sensible value would, for
the reason the table gives. The tables must cover every integer option the CLI has, so a
new option cannot skip this test.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from typer.main import get_command

from alrp_cli.cli.app import app
from tests.helpers.commands import commands
from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, digest, invoke

HUGE = 2**40

REFUSED = {
    ("bench", "--repeats"),
    ("bench", "--reference-repeats"),
    ("bench", "--seed"),
    ("bench", "--threads"),
    ("check-balance", "--max-negatives"),
    ("check-balance", "--max-positives"),
    ("check-balance", "--seed"),
    ("check-balance", "--trials"),
    ("data preview", "--cell"),
    ("data synth", "--image-size"),
    ("data synth", "--num-train"),
    ("data synth", "--num-val"),
    ("data synth", "--seed"),
    ("predict", "--workers"),
    ("report", "--dpi"),
    ("train", "--batch-size"),
    ("train", "--head-channels"),
    ("train", "--image-size"),
    ("train", "--nproc"),
    ("train", "--seed"),
    ("train", "--threads"),
    ("train", "--workers"),
}

HARMLESS = {
    ("analyze", "--epoch"): "a lookup among the run's evaluations",
    ("analyze", "--max-dets"): "no image and class holds more detections than the file",
    ("analyze", "--top"): "rows shown: at most the classes there are",
    ("check-balance", "--trial"): "one trial, sized by --max-negatives",
    ("data preview", "--cols"): "at most the images drawn",
    ("data preview", "--num"): "at most the images there are",
    ("predict", "--batch-size"): "a batch holds at most the images there are",
    ("report", "--epoch"): "a lookup among the run's evaluations",
}

TRAIN_HARMLESS = {
    "--epochs": "time, not memory: Ctrl-C saves the run and stops it",
    "--eval-every": "the last epoch is evaluated anyway",
    "--log-every": "fewer step records",
    "--lr-batch": "a number in the learning-rate rule",
    "--max-detections": "at most the boxes there are",
    "--pre-nms-topk": "at most the anchors there are",
    "--record-loss-inputs": "at most the batches there are",
    "--sb-period-epochs": "a number in the self-balance rule",
    "--warmup-iters": "a number in the learning-rate rule",
}


def _is_int(param) -> bool:
    annotation = param.type_descriptor.annotation
    return annotation is int or int in typing.get_args(annotation)


def int_options() -> set[tuple[str, str]]:
    """Every (command, option) of the CLI that takes an integer."""
    found: set[tuple[str, str]] = set()

    def walk(cmd, prefix: str) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{prefix} {name}".strip())
        for p in getattr(cmd, "params", []):
            if _is_int(p) and not getattr(p, "hidden", False) and p.opts[0].startswith("-"):
                found.add((prefix, p.opts[0]))

    walk(get_command(app), "")
    return found


def test_the_tables_cover_every_integer_option() -> None:
    tables = REFUSED | set(HARMLESS) | {("train", o) for o in TRAIN_HARMLESS}
    assert int_options() == tables


def _base(world: World, fresh: Path, name: str) -> tuple[list[object], list[Path]]:
    args, inputs, required = commands(world, fresh)[name]
    if name == "train":
        required = {"--out": fresh / "run"}
    if name == "report":
        args = ["report", world.run]  # --epoch looks the run's evaluations up
    if name == "check-balance":  # random problems: --from would size them by its file
        args, inputs = ["check-balance", "--loss", "alrp", "--trials", "1"], []
    return [*args, *(a for kv in required.items() for a in kv)], inputs


@pytest.mark.parametrize(("name", "option"), sorted(REFUSED))
def test_a_value_beyond_the_machine_is_refused_before_work(
    world: World, tmp_path: Path, name: str, option: str
) -> None:
    fresh = tmp_path / "fresh"
    args, inputs = _base(world, fresh, name)
    before = digest(*inputs)
    line = assert_refused(invoke([*args, option, HUGE]), option)
    assert digest(*inputs) == before
    assert not fresh.exists(), "nothing written"
    assert "Traceback" not in line


def test_bench_size_beyond_memory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    line = assert_refused(invoke(["bench", "--size", f"10x{HUGE}", "--json", out]), "--size")
    assert "of memory, more than this machine's" in line
    assert not out.exists()


@pytest.mark.parametrize(("name", "option"), sorted(HARMLESS))
def test_a_harmless_huge_value_costs_nothing(
    world: World, tmp_path: Path, name: str, option: str
) -> None:
    fresh = tmp_path / "fresh"
    args, inputs = _base(world, fresh, name)
    if name == "analyze" and option == "--epoch":
        args = ["analyze", world.run]
    before = digest(*inputs)
    result = invoke([*args, option, HUGE])
    if option == "--epoch":  # a lookup that finds nothing: one line naming the epoch
        assert_refused(result, f"no evaluation of epoch {HUGE}")
    else:
        assert result.exit_code == 0, result.output
    assert digest(*inputs) == before


def test_max_dets_beyond_every_group_equals_the_largest_group(world: World, tmp_path: Path) -> None:
    args = ["analyze", world.predictions, "--gt", world.val_ann]
    groups = json.loads(world.predictions.read_text())
    largest = len(groups)  # no image and class can hold more detections than the file
    for value, name in ((HUGE, "huge.json"), (largest, "file.json")):
        assert invoke([*args, "--max-dets", value, "--json", tmp_path / name]).exit_code == 0
    huge, file = (json.loads((tmp_path / n).read_text()) for n in ("huge.json", "file.json"))
    assert huge["max_dets"] == HUGE
    huge["max_dets"] = largest
    assert huge == file


def test_train_takes_huge_counts_that_cost_nothing(world: World, tmp_path: Path) -> None:
    huge = [a for option in TRAIN_HARMLESS if option != "--epochs" for a in (option, HUGE)]
    out = tmp_path / "run"
    base = ["train", "--data", world.data, *TINY_CLI_OPTIONS]
    result = invoke([*base, "--epochs", "1", *huge, "--out", out])
    assert result.exit_code == 0, result.output
    assert (out / "eval" / "epoch_001" / "summary.json").is_file()  # the last epoch
    shown = invoke([*base, "--epochs", HUGE, "--print-config"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["optim"]["epochs"] == HUGE


def test_the_limits_say_what_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    from alrp_cli import limits
    from alrp_cli.errors import UserError

    monkeypatch.setattr(limits, "cpu_count", lambda: 2)
    limits.check_per_core(8, "--workers", what="worker processes")
    with pytest.raises(UserError, match=r"^--workers 9: at most 8 worker processes \(4 per CPU"):
        limits.check_per_core(9, "--workers", what="worker processes")
    monkeypatch.setattr(limits, "host_memory", lambda: 3 * 2**30)
    limits.check_fits(3 * 2**30, "--size", what="x")
    with pytest.raises(UserError, match=r"at least 3\.0 GiB of memory, more than this machine's"):
        limits.check_fits(3 * 2**30 + 1, "--size", what="x")
    assert limits.format_bytes(512) == "512 B" and limits.format_bytes(2**62) == "4,096 PiB"
