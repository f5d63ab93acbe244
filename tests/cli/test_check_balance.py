"""`alrp check-balance` through the CLI: exit codes, JSON schema, --from, reproduction."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from alrp_cli.balance import check_balance, make_problem, resolve_losses
from alrp_cli.cli.app import app
from alrp_cli.loss_inputs_file import save_loss_inputs
from tests.helpers.paths import REPO

runner = CliRunner()
SMALL = ["--trials", "12", "--max-positives", "50", "--max-negatives", "3000"]


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["check-balance", *args])


def _doc_schema() -> dict:
    """The example report in docs/check-balance.md (the block after '<!-- schema -->')."""
    text = (REPO / "docs" / "check-balance.md").read_text()
    block = re.search(r"<!-- schema -->\s*```json\n(.*?)```", text, re.S)
    assert block, "docs/check-balance.md lacks the schema example"
    return json.loads(block.group(1))


def _types(obj: object) -> object:
    """The structure of a JSON value: keys and value types (numbers as 'number')."""
    if isinstance(obj, dict):
        return {k: _types(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_types(obj[0])] if obj else []
    if isinstance(obj, bool) or obj is None:
        return type(obj).__name__
    if isinstance(obj, int | float):
        return "number"
    return type(obj).__name__


def test_run_json_schema_and_determinism(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    first = _run(*SMALL, "--seed", "3", "--json", str(a))
    assert first.exit_code == 0, first.output
    assert "holds" in first.stdout and "contrast" in first.stdout
    assert _run(*SMALL, "--seed", "3", "--json", str(b)).exit_code == 0
    report, again = json.loads(a.read_text()), json.loads(b.read_text())
    assert (report["config"].pop("json"), again["config"].pop("json")) == (str(a), str(b))
    assert report == again  # same seed, same report
    report["config"]["json"] = str(a)

    assert report["version"] == 1
    assert report["config"]["seed"] == 3 and report["config"]["tolerance"] == 1e-5
    names = [(entry["name"], entry["part"], entry["rule"]) for entry in report["losses"]]
    assert names == [
        ("alrp", None, "balanced"),
        ("ap", None, "balanced"),
        ("rs", "ranking", "balanced"),
        ("rs", "sorting", "zero_sum"),
        ("focal", None, "balanced"),
        ("bce", None, "balanced"),
    ]
    for entry in report["losses"]:
        checked = entry["name"] in ("alrp", "ap", "rs")
        assert entry["checked"] is checked
        assert entry["passed"] is (True if checked else None)
        assert entry["trials"] == 12
    assert len(report["trials"]) == 6 * 12
    rows = [t for t in report["trials"] if t["loss"] == "alrp"]
    assert [t["trial"] for t in rows] == list(range(12))
    sorting = [t for t in report["trials"] if t["part"] == "sorting"]
    assert len(sorting) == 12 and all(t["sum_neg"] == 0 for t in sorting)
    assert any(t["sum_pos"] > 0 for t in sorting)  # the sorting part moved positives
    assert "rs sorting" in first.stdout and "Σg = 0 over the positives holds" in first.stdout
    # The JSON holds exactly the documented keys, with the documented value kinds (a null
    # may stand for a number: NaN or an uncomputed reference deviation).
    documented = _types(_doc_schema())
    got = _types(report)
    assert got.keys() == documented.keys()  # type: ignore[union-attr]
    for section in ("config", "losses", "trials"):
        want, have = documented[section], got[section]  # type: ignore[index]
        want, have = (want[0], have[0]) if section != "config" else (want, have)
        assert want.keys() == have.keys(), section
        for key in want:
            assert have[key] == want[key] or "NoneType" in (have[key], want[key]), key


def test_failure_names_trial_and_seed_and_reproduces(tmp_path: Path) -> None:
    # A tolerance below float32 rounding makes some trial fail; the message must say which
    # and give a command that reproduces exactly that trial.
    out = tmp_path / "fail.json"
    res = _run(*SMALL, "--loss", "alrp", "--tolerance", "1e-30", "--json", str(out))
    assert res.exit_code == 1
    message = res.stderr.strip()
    assert message.count("\n") == 0 and "Traceback" not in res.output
    m = re.search(
        r"alrp: trial (\d+) \(seed (\d+), .*gap (\S+) .*reproduce with `([^`]*)`", message
    )
    assert m, message
    trial, seed, gap = int(m.group(1)), int(m.group(2)), m.group(3)
    report = json.loads(out.read_text())  # the report is still written
    row = report["trials"][trial]
    assert row["seed"] == seed and f"{row['rel_gap']:.3g}" == gap
    assert all(t["rel_gap"] == 0 for t in report["trials"][:trial])

    args = shlex.split(m.group(4))
    assert args[:2] == ["alrp", "check-balance"] and "--trial" in args
    again = runner.invoke(app, args[1:])
    assert again.exit_code == 1
    assert f"alrp: trial {trial} (seed {seed}," in again.stderr and f"gap {gap} " in again.stderr


def test_from_round_trips(tmp_path: Path) -> None:
    problems = [
        make_problem(5, t, max_positives=40, max_negatives=2000, deltas=(0.5,)) for t in range(4)
    ]
    path = tmp_path / "inputs.pt"
    save_loss_inputs(path, problems, {"delta": 0.5})  # type: ignore[arg-type]
    out = tmp_path / "from.json"
    res = _run("--from", str(path), "--json", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["config"]["from"] == str(path) and report["config"]["deltas"] == [0.5]
    direct = check_balance(problems, resolve_losses(None), tolerance=1e-5)
    assert len(report["trials"]) == len(direct.trials) == 6 * 4  # rs: two parts
    for got, want in zip(report["trials"], direct.trials, strict=True):
        assert (got["loss"], got["part"], got["P"], got["N"], got["delta"]) == (
            want.loss,
            want.part,
            want.P,
            want.N,
            want.delta,
        )
        assert got["seed"] == -1
        assert got["sum_pos"] == want.sum_pos and got["sum_neg"] == want.sum_neg


def test_from_a_file_without_ious_says_what_rank_and_sort_takes(tmp_path: Path) -> None:
    problems = [
        make_problem(5, t, max_positives=30, max_negatives=500, deltas=(0.5,)) for t in (0, 1)
    ]
    path = tmp_path / "inputs.pt"
    save_loss_inputs(path, [{**p.__dict__, "ious": None} for p in problems])
    out = tmp_path / "from.json"
    res = _run("--from", str(path), "--loss", "rs", "--json", str(out))
    assert res.exit_code == 0, res.output
    note = f"Note: rs: {path} holds no 'ious' in 2 of 2 batch(es)"
    assert note in " ".join(res.stdout.split())
    report = json.loads(out.read_text())
    assert len(report["notes"]) == 1 and "(1 + GIoU) / 2" in report["notes"][0]
    assert [e["passed"] for e in report["losses"]] == [True, True]


def test_from_compares_every_recorded_batch_with_the_reference(tmp_path: Path) -> None:
    # 400 positives: above the random trials' reference cap, within the recorded one.
    problem = make_problem(2, 0, max_positives=1, max_negatives=1000, deltas=(1.0,))
    gen = torch.Generator().manual_seed(0)
    logits = torch.cat([problem.logits, torch.randn(400, generator=gen)])
    targets = torch.cat([problem.targets, torch.ones(400, dtype=torch.int64)])
    batch = {"logits": logits, "targets": targets, "loc_errors": torch.rand(401, generator=gen)}
    path, out = tmp_path / "big.pt", tmp_path / "big.json"
    save_loss_inputs(path, [batch])
    res = _run("--from", str(path), "--loss", "alrp", "--loss", "ap", "--json", str(out))
    assert res.exit_code == 0, res.output
    for entry in json.loads(out.read_text())["losses"]:
        assert entry["ref_trials"] == 1 and entry["worst_ref_dev"] < 1e-5


def test_from_with_several_deltas(tmp_path: Path) -> None:
    path = tmp_path / "inputs.pt"
    problem = make_problem(1, 0, max_positives=10, max_negatives=100, deltas=(1.0,))
    save_loss_inputs(path, [problem])  # type: ignore[list-item]
    out = tmp_path / "o.json"
    res = _run(
        "--from", str(path), "--delta", "0", "--delta", "2", "--loss", "ap", "--json", str(out)
    )
    assert res.exit_code == 0, res.output
    assert [t["delta"] for t in json.loads(out.read_text())["trials"]] == [0.0, 2.0]


BAD_OPTIONS = [
    (["--trials", "0"], "--trials must be 1 to 1,000,000, got 0"),
    (["--max-positives", "0"], "--max-positives must be at least 1"),
    (["--max-negatives", "-5"], "--max-negatives must be at least 1"),
    (["--delta", "-1"], "--delta must be finite and 0 or more"),
    (["--delta", "nan"], "'--delta': nan is not a finite number"),
    (["--dtype", "float16"], "--dtype must be float32 or float64"),
    (["--tolerance", "0"], "--tolerance must be a positive number"),
    (["--loss", "hinge"], "--loss: unknown loss 'hinge'"),
    (["--device", "gpu7"], "--device 'gpu7': not a device"),
    (["--plot", "figure.gif"], "--plot must end in .png, .pdf or .svg"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS)
def test_bad_options_exit_2_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "never.json"
    res = _run(*args, "--json", str(out))
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: ") and message in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_bad_input() -> None:
    res = _run("--device", "cuda")
    assert res.exit_code == 2 and "no CUDA device is available" in res.stderr


@pytest.mark.parametrize(
    "content",
    [b"", b"not a torch file", None],
    ids=["empty", "text", "missing"],
)
def test_bad_from_file_exit_2_no_traceback(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "inputs.pt"
    if content is not None:
        path.write_bytes(content)
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    res = _run("--from", str(path), "--json", str(out), "--plot", str(plot))
    assert res.exit_code == 2
    assert res.stderr.startswith(f"Error: {path}: ") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not out.exists() and not plot.exists()
    assert list(tmp_path.iterdir()) == ([path] if content is not None else [])


def test_malformed_from_file_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "inputs.pt"
    torch.save(
        {"version": 1, "batches": [{"logits": torch.zeros(3), "targets": torch.zeros(2)}]}, path
    )
    res = _run("--from", str(path))
    assert res.exit_code == 2
    assert res.stderr == f"Error: {path}: batch 0: missing 'loc_errors'\n"


def test_plot_is_written(tmp_path: Path) -> None:
    plot = tmp_path / "fig" / "balance.png"
    res = _run("--trials", "4", "--max-negatives", "500", "--plot", str(plot))
    assert res.exit_code == 0, res.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in plot.parent.iterdir()] == ["balance.png"]  # no temporary left
