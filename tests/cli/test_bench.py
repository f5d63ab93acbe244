"""`alrp bench` through the CLI, and the bench library's parsing and measurements."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from alrp_cli.bench import make_inputs, parse_size, peak_extra_bytes, run_bench
from alrp_cli.cli.app import app
from alrp_cli.errors import UserError

runner = CliRunner()


def test_bench_writes_json_with_ratios(tmp_path) -> None:
    out = tmp_path / "bench.json"
    result = runner.invoke(
        app, ["bench", "--size", "20x2k", "--repeats", "2", "--threads", "1", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "speed-up" in result.stdout
    data = json.loads(out.read_text())
    assert data["version"] == 1 and data["device"] == "cpu"
    rows = data["rows"]
    assert [r["loss"] for r in rows] == ["alrp", "ap", "rs"]
    for r in rows:
        assert (r["positives"], r["examples"]) == (20, 2000)
        assert r["fast_s"] > 0 and r["sort_s"] > 0 and r["reference_s"] > 0
        assert r["speedup"] == pytest.approx(r["reference_s"] / r["fast_s"])
        assert r["fast_over_sort"] == pytest.approx(r["fast_s"] / r["sort_s"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "10x5"], "cannot exceed"),
        (["--size", "abc"], "expected PxN"),
        (["--dtype", "int8"], "--dtype"),
        (["--loss", "focal"], "--loss"),
        (["--repeats", "0"], "--repeats"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_user_error() -> None:
    result = runner.invoke(app, ["bench", "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA device" in result.stderr


def test_parse_size_accepts_suffixes() -> None:
    assert parse_size("1000x2M") == (1000, 2_000_000)
    assert parse_size("1kx200_000") == (1000, 200_000)
    with pytest.raises(UserError):
        parse_size("0x10")


def test_inputs_have_the_requested_positives() -> None:
    logits, targets, e = make_inputs(7, 100, device=torch.device("cpu"), dtype=torch.float64)
    assert logits.dtype == torch.float64 and int((targets == 1).sum()) == 7 and e.shape == (7,)


def test_peak_memory_sees_a_large_allocation() -> None:
    peak = peak_extra_bytes(lambda: torch.ones(50_000_000, dtype=torch.uint8), torch.device("cpu"))
    if peak is None:
        pytest.skip("peak RSS is not measurable on this platform")
    assert peak >= 40_000_000


def test_run_bench_without_reference() -> None:
    rows = run_bench([(5, 500)], losses=("ap",), repeats=1, reference=False)
    assert len(rows) == 1 and rows[0].reference_s is None and rows[0].speedup is None


@pytest.mark.parametrize(
    ("ratio", "shown"),
    [
        (0.1349, "0.13×"),
        (4.24, "4.2×"),
        (49.4, "49×"),
        (1234.0, "1,200×"),
        (99.6, "100×"),
        (0.0012, "0.0012×"),
    ],
)
def test_speedups_show_two_significant_digits(ratio: float, shown: str) -> None:
    from alrp_cli.cli.bench import _ratio

    assert _ratio(ratio) == shown


def test_rank_and_sort_is_timed_on_iou_targets() -> None:
    from alrp_cli.bench import loss_targets
    from alrp_cli.losses import rs_loss

    logits, targets, e = make_inputs(40, 4000, device=torch.device("cpu"), dtype=torch.float64)
    t = loss_targets("rs", targets, e)
    pos = targets == 1
    assert torch.equal(t[pos], 1 - e) and bool((t[pos] > 0).all() and (t[pos] <= 1).all())
    assert bool((t[~pos] == 0).all())
    assert float(rs_loss(logits, t).sorting) > 0  # integer targets would leave it at 0
    assert loss_targets("alrp", targets, e) is targets
    (row,) = run_bench([(40, 4000)], losses=("rs",), repeats=1)
    assert row.loss == "rs" and row.reference_s is not None and row.fast_s > 0
