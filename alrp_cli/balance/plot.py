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

    One log–log panel per loss with the diagonal Σpos = Σneg. Trials where a sum is 0 or
    not finite cannot sit on log axes and are left out (each panel's title says how many
    are drawn).
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
    names = [s.name for s in report.losses] or ["loss"]
    palette = dict(zip(names, sns.color_palette(n_colors=len(names)), strict=True))
    # One panel per loss (aLRP and AP lie on the same diagonal and would hide each other),
    # shared log axes so the panels compare.
    fig = Figure(figsize=(3.2 * len(names) + 0.4, 3.8), layout="constrained")
    axes = fig.subplots(1, len(names), sharex=True, sharey=True, squeeze=False)[0]
    if len(df):
        lo = float(min(df["Σ|g| positives"].min(), df["Σ|g| negatives"].min())) / 2
        hi = float(max(df["Σ|g| positives"].max(), df["Σ|g| negatives"].max())) * 2
    else:
        lo, hi = 1e-3, 1e1
    for ax, name in zip(axes, names, strict=True):
        part = df[df["loss"] == name]
        sns.scatterplot(
            data=part,
            x="Σ|g| negatives",
            y="Σ|g| positives",
            color=palette[name],
            alpha=0.6,
            s=14,
            edgecolor="none",
            ax=ax,
        )
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="Σpos = Σneg")
        ax.set_xscale("log")
        ax.set_yscale("log")
        total = sum(t.loss == name for t in report.trials)
        ax.set_title(f"{name} ({len(part)} of {total} trials)")
    axes[0].legend(loc="upper left", fontsize="small")
    fig.suptitle("Update magnitudes per trial: positives against negatives")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120)
    return len(df)
