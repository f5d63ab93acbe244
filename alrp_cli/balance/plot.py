"""The balance figure: Σpos against Σneg per trial, one hue per loss, log–log, with the
diagonal Σpos = Σneg on which every balanced loss lies."""

from __future__ import annotations

import math
import os
from pathlib import Path

from alrp_cli.atomic import atomic_path
from alrp_cli.balance.check import BalanceReport
from alrp_cli.errors import UserError

PLOT_FORMATS = ("png", "pdf", "svg")


def check_plot_path(path: str | os.PathLike[str]) -> str:
    """The image format of ``path`` from its suffix; UserError for an unsupported one."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise UserError(f"{path}: --plot must end in .png, .pdf or .svg")
    return fmt


def plot_balance(report: BalanceReport, path: str | os.PathLike[str]) -> int:
    """Write the figure to ``path`` (atomically); return the number of points drawn.

    Trials where a sum is 0 or not finite cannot sit on log axes and are left out (the
    title says how many are drawn).
    """
    fmt = check_plot_path(path)
    # Imported here: plotting is optional work and matplotlib is slow to import.
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    rows = [
        {"loss": t.loss, "Σ|g| positives": t.sum_pos, "Σ|g| negatives": t.sum_neg}
        for t in report.trials
        if t.sum_pos > 0 and t.sum_neg > 0 and math.isfinite(t.sum_pos + t.sum_neg)
    ]
    df = pd.DataFrame(rows, columns=["loss", "Σ|g| positives", "Σ|g| negatives"])
    fig = Figure(figsize=(6, 5.5), layout="constrained")
    ax = fig.add_subplot()
    if len(df):
        sns.scatterplot(
            data=df,
            x="Σ|g| negatives",
            y="Σ|g| positives",
            hue="loss",
            style="loss",
            hue_order=[s.name for s in report.losses],
            alpha=0.7,
            ax=ax,
        )
        lo = float(min(df["Σ|g| positives"].min(), df["Σ|g| negatives"].min()))
        hi = float(max(df["Σ|g| positives"].max(), df["Σ|g| negatives"].max()))
        ax.plot([lo / 2, hi * 2], [lo / 2, hi * 2], color="0.4", lw=1, ls="--", label="Σpos = Σneg")
        ax.legend(loc="best", fontsize="small")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(f"Update magnitudes per trial ({len(df)} of {len(report.trials)} drawn)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120)
    return len(df)
