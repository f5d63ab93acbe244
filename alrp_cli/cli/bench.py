"""`alrp bench`: time the O(N log P) losses against the loop formulation and one sort."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from alrp_cli import registry
from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.cli.progress import progress_bar
from alrp_cli.device import DEVICE_HELP, resolve_device
from alrp_cli.errors import UserError
from alrp_cli.limits import LOSS_BYTES_PER_EXAMPLE, SEED_MAX, check_fits, check_per_core
from alrp_cli.outputs import Outputs, write_json_output

if TYPE_CHECKING:
    from alrp_cli.bench import BenchRow

MAX_REPEATS = 1000  # a median of more says nothing new, and a typo's 10^12 never ends
#: The logits dtypes --dtype takes: names of torch dtypes.
DTYPES = ("float32", "float64", "float16", "bfloat16")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.1f}"


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f}"


def _ratio(x: float) -> str:
    """A speed-up with two significant digits: 0.13×, 4.2×, 49×, 1,200×."""
    rounded = float(f"{x:.2g}")
    return f"{rounded:,.0f}×" if rounded >= 10 else f"{rounded:g}×"


def _table(rows: list[BenchRow], threads: int) -> Table:
    table = Table(
        title=f"Forward + backward, median ms ({rows[0].device}, {rows[0].dtype}, "
        f"{threads} threads)",
        caption="speed-up = loop / fast; fast/sort ≤ 1 means faster than one torch.sort of "
        "the logits; peak = extra memory above the inputs (MiB)",
        box=box.SIMPLE_HEAD,
    )
    for name in (
        "loss",
        "P",
        "N",
        "fast",
        "loop",
        "speed-up",
        "sort",
        "fast/sort",
        "peak fast",
        "peak loop",
    ):
        table.add_column(name, justify="left" if name == "loss" else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            r.loss,
            f"{r.positives:,}",
            f"{r.examples:,}",
            _ms(r.fast_s),
            _ms(r.reference_s),
            "-" if r.speedup is None else _ratio(r.speedup),
            _ms(r.sort_s),
            f"{r.fast_over_sort:.2f}",
            _mb(r.fast_peak_bytes),
            _mb(r.reference_peak_bytes),
        )
    return table


def bench(
    size: list[str] | None = typer.Option(
        None,
        "--size",
        help="A grid cell PxN (repeatable), e.g. 1000x2M. Default: 100x200k, 1000x2M.",
    ),
    loss: list[str] | None = typer.Option(
        None,
        "--loss",
        help=f"Loss to time (repeatable): {', '.join(registry.names('bench'))}. Default: all.",
    ),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    dtype: str = typer.Option("float32", help="Logits dtype: " + ", ".join(DTYPES) + "."),
    repeats: int = typer.Option(
        5, help="Timed runs of the fast kernels and of the sort (at most 1000)."
    ),
    reference_repeats: int = typer.Option(
        1, help="Timed runs of the loop formulation (slow; at most 1000); 0 skips it."
    ),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed of the random inputs."),
    threads: int | None = typer.Option(
        None, min=1, help="torch intra-op threads (default: torch's choice)."
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Write every figure as JSON here." + JSON_HELP
    ),
) -> None:
    """Time the ranking losses (forward + backward) against their loop formulation and a sort.

    Example: alrp bench --size 1000x2M --repeats 5 --json bench.json
    """
    import torch

    from alrp_cli.bench import DEFAULT_GRID, LOSSES, parse_size, run_bench

    grid = [parse_size(s) for s in size] if size else list(DEFAULT_GRID)
    losses = tuple(loss) if loss else LOSSES
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    logits_dtype = getattr(torch, dtype)
    dev = resolve_device(device)
    for name, value, least in (
        ("--repeats", repeats, 1),
        ("--reference-repeats", reference_repeats, 0),
    ):
        if not least <= value <= MAX_REPEATS:
            raise UserError(f"{name} must be {least} to {MAX_REPEATS}, got {value}")
    if threads is not None:
        check_per_core(threads, "--threads", what="threads")
    for positives, examples in grid:  # the inputs, the gradients and the sort's buffers
        check_fits(
            examples * LOSS_BYTES_PER_EXAMPLE * logits_dtype.itemsize / 4,
            "--size",
            what=f"{positives}x{examples} ({examples:,} examples)",
            device=dev,
        )
    json_path = Outputs().file(json_path, "--json", stdout=True)
    if threads is not None:
        torch.set_num_threads(threads)
    console = Console(stderr=True)
    total = len(grid) * len(losses)
    with progress_bar(console) as progress:
        task = progress.add_task("timing", total=total)
        rows = run_bench(
            grid,
            losses=losses,
            device=dev,
            dtype=logits_dtype,
            repeats=repeats,
            reference_repeats=reference_repeats,
            seed=seed,
            progress=lambda what: progress.update(task, advance=1, description=what),
        )
    out = table_console(json_path, pipe_width=120)
    out.print(_table(rows, torch.get_num_threads()))
    if json_path is not None:
        write_json_output(
            json_path,
            {
                "version": 1,
                "device": str(dev),
                "dtype": dtype,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rows": [r.to_dict() for r in rows],
            },
        )
