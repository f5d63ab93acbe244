"""`alrp check-balance`: verify Theorem 2 (balanced updates) numerically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from alrp_cli import registry
from alrp_cli.atomic import atomic_path
from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.cli.progress import progress_bar
from alrp_cli.device import DEVICE_HELP
from alrp_cli.errors import CheckFailed, UserError
from alrp_cli.limits import SEED_MAX
from alrp_cli.outputs import Outputs, write_json_output
from alrp_cli.registry import BALANCED, ZERO_SUM

if TYPE_CHECKING:
    from alrp_cli.balance import BalanceReport

PLOT_FORMATS = ("png", "pdf", "svg")


def _check_plot_path(path: Path) -> str:
    """The image format of ``path`` from its suffix; UserError for an unsupported one."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise UserError(f"{path}: --plot must end in .png, .pdf or .svg")
    return fmt


def _write_plot(report: BalanceReport, path: Path) -> None:
    """Figure 7 of `alrp report` (one source for the figure), written atomically."""
    # Imported here: plotting is optional and matplotlib is slow to import.
    import pandas as pd

    from analysis.figures import plot_balance

    trials = pd.DataFrame(
        [{"source": "check-balance", **t.to_json()} for t in report.trials],
        columns=["source", "loss", "rule", "sum_pos", "sum_neg"],
    )
    fig = plot_balance(trials)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=_check_plot_path(path), dpi=150)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.1e}" if x != 0 else "0"


def _table(report: BalanceReport) -> Table:
    ref_trials = max((s.ref_trials for s in report.losses), default=0)
    table = Table(
        title=f"Theorem 2: Σ|g| positives = Σ|g| negatives (tol {report.tolerance:g})",
        caption=f"gap = |Σpos − Σneg| / Σpos{_zero_sum_caption(report)}; sign, bound: trials "
        f"with a violation; ref dev: on the {ref_trials} trials small enough for the loop "
        "reference",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
    )
    headers = ("loss", "result", "trials", "worst gap", "median gap", "Σpos/Σneg")
    for name in (*headers, "sign", "bound", "ref dev"):
        justify = "left" if name in ("loss", "result") else "right"
        table.add_column(name.replace(" ", "\n"), justify=justify, no_wrap=True)
    for s in report.losses:
        result = {True: "[green]holds[/]", False: "[red]FAILS[/]", None: "contrast"}[s.passed]
        table.add_row(
            s.label,
            result,
            str(s.trials),
            _fmt(s.worst_rel_gap),
            _fmt(s.median_rel_gap),
            f"{s.median_ratio:.3g}" if math.isfinite(s.median_ratio) else "-",
            str(s.sign_violations),
            str(s.bound_violations),
            _fmt(s.worst_ref_dev),
        )
    return table


def _zero_sum_caption(report: BalanceReport) -> str:
    zero_sum = [s.label for s in report.losses if s.rule == ZERO_SUM]
    if not zero_sum:
        return ""
    return f" ({', '.join(zero_sum)}: |Σg| / Σ|g| over the positives)"


def _held(report: BalanceReport) -> list[str]:
    """The closing lines: which checked parts held, one line per rule."""
    by_rule = {
        BALANCED: "Theorem 2 holds for",
        ZERO_SUM: "Σg = 0 over the positives holds for",
    }
    lines = []
    for rule, words in by_rule.items():
        held = [s.label for s in report.losses if s.passed and s.rule == rule]
        if held:
            lines.append(f"{words} {', '.join(held)} on every trial.")
    return lines


def check_balance_command(
    loss: list[str] | None = typer.Option(
        None,
        "--loss",
        help=f"Loss to check: {', '.join(registry.names('balance'))} (repeatable; default all).",
    ),
    trials: int = typer.Option(
        200, "--trials", help="Number of random problems (at most 1,000,000)."
    ),
    trial: int | None = typer.Option(
        None, "--trial", help="Run only this trial index (reproduces one failure)."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=SEED_MAX, help="Run seed; trial i uses a seed derived from it."
    ),
    max_positives: int = typer.Option(2000, "--max-positives", help="Most positives per trial."),
    max_negatives: int = typer.Option(
        1_000_000,
        "--max-negatives",
        help="Most negatives per trial (every 50th trial has this many).",
    ),
    delta: list[float] | None = typer.Option(
        None,
        "--delta",
        help="δ of the smoothed step (repeatable; default 0, 0.5, 1, 2; with --from: "
        "the recorded meta's delta or 1).",
    ),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    tolerance: float | None = typer.Option(
        None,
        "--tolerance",
        help="Largest relative gap / reference deviation allowed (default 1e-5 float32, "
        "1e-9 float64).",
    ),
    from_file: Path | None = typer.Option(
        None, "--from", help="Check recorded inputs (alrp train --record-loss-inputs) instead."
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Write the JSON report here." + JSON_HELP
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write Σpos against Σneg per trial (.png, .pdf, .svg)."
    ),
) -> None:
    """Verify Theorem 2 (Σ|g| positives = Σ|g| negatives) for the ranking losses.

    aLRP and AP Loss: their update is balanced. Rank & Sort Loss: its ranking part is
    balanced and its sorting part sums to zero over the positives (each checked).

    Exit 0 when all hold on every trial, 1 when one does not (naming the trial), 2 on bad
    input. Focal loss and BCE are shown for contrast (their Σpos/Σneg ratio) and never fail.
    """
    from alrp_cli.balance import BalanceConfig, failure_message, run_balance_check

    config = BalanceConfig(
        losses=tuple(loss or ()) or BalanceConfig.losses,
        trials=trials,
        trial=trial,
        seed=seed,
        max_positives=max_positives,
        max_negatives=max_negatives,
        deltas=tuple(delta) if delta else None,
        dtype=dtype,
        device=device,
        tolerance=tolerance,
        from_file=str(from_file) if from_file is not None else None,
    )
    config.validate()
    outputs = Outputs([from_file])
    json_path = outputs.file(json_path, "--json", stdout=True)
    if outputs.file(plot, "--plot") is not None:
        _check_plot_path(plot)

    err = Console(stderr=True)
    with progress_bar(err) as progress:
        task = progress.add_task("checking", total=None)
        report = run_balance_check(
            config,
            on_start=lambda total: progress.update(task, total=total),
            on_problem=lambda _problem: progress.advance(task),
        )

    report.config["json"] = str(json_path) if json_path is not None else None
    report.config["plot"] = str(plot) if plot is not None else None
    out = table_console(json_path, pipe_width=100)
    out.print(_table(report))
    for note in report.notes:
        out.print(f"Note: {note}", highlight=False, soft_wrap=True)
    with outputs.undo_on_error():
        if json_path is not None:
            write_json_output(json_path, report.to_json())
        if plot is not None:
            _write_plot(report, plot)
    failed = [s for s in report.losses if s.passed is False]
    if failed:
        raise CheckFailed(" | ".join(failure_message(config, s) for s in failed))
    for line in _held(report):
        out.print(line)
