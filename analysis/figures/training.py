"""Figure 6: training curves from a run directory's metrics.jsonl."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.figures.theme import COLUMN_WIDTH, TEXT_WIDTH, colors_for, new_figure, note, themed

#: Panel titles of the narrow layout (ncols < 3), short enough for a 1.6-inch panel.
SHORT_TITLES = {
    "cls": "$L_{cls}$",
    "loc": "$L_{loc}$",
    "loss": "Total loss",
    "sb_weight": "Self-balance $w$",
    "lr": "Learning rate",
    "AP": "COCO AP",
}

#: Panels: (metrics.jsonl field, panel title, y label).
PANELS = [
    ("cls", "Classification loss $L_{cls}$", "loss"),
    ("loc", "Localisation loss $L_{loc}$", "loss"),
    ("loss", "Total loss", "loss"),
    ("sb_weight", "Self-balance weight $w$", "weight"),
    ("lr", "Learning rate", "learning rate"),
    ("AP", "AP per evaluation", "COCO AP"),
]


def _thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """Every k-th row so at most ``max_points`` remain (the last row is kept)."""
    if len(frame) <= max_points:
        return frame
    keep = np.unique(np.r_[np.linspace(0, len(frame) - 1, max_points).astype(int), len(frame) - 1])
    return frame.iloc[keep]


@themed
def plot_training_curves(
    metrics: pd.DataFrame,
    *,
    colors: Mapping[str, Any] | None = None,
    max_points: int = 2000,
    ncols: int = 3,
) -> Figure:
    """Figure 6: L_cls, L_loc, total loss, self-balance weight, learning rate and AP per run.

    ``metrics`` is the union of runs' metrics.jsonl records with a ``label`` column (the run)
    and the records' fields: ``type`` (step, epoch or eval), ``iter`` and the values. Step
    records draw thin lines (at most ``max_points`` per run), epoch records dots joined by
    lines, eval records give the AP panel. A panel no run has values for says so.
    ``ncols`` 3: two rows at the text width; 2: three rows at the column width (for
    narrow screens); 1: six rows at the column width.
    """
    if ncols not in (1, 2, 3):
        raise ValueError(f"plot_training_curves: ncols must be 1, 2 or 3, got {ncols}")
    labels = list(dict.fromkeys(metrics["label"]))
    palette = colors_for(labels, colors)
    nrows = len(PANELS) // ncols
    width = TEXT_WIDTH if ncols == 3 else COLUMN_WIDTH
    fig = new_figure(width, 0.9 + 1.95 * nrows)
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    for ax, (field, title, ylabel) in zip(axes.flat, PANELS, strict=True):
        drawn = False
        for label in labels:
            run = metrics[metrics["label"] == label]
            if field not in run.columns:
                continue
            if field == "AP":
                evals = run[run["type"] == "eval"].dropna(subset=[field])
                if len(evals):
                    ax.plot(evals["iter"], evals[field], "o-", color=palette[label], markersize=3)
                    drawn = True
                continue
            steps = run[run["type"] == "step"].dropna(subset=[field])
            epochs = run[run["type"] == "epoch"].dropna(subset=[field])
            if len(steps):
                steps = _thin(steps, max_points)
                alpha = 0.45 if len(epochs) and field != "lr" else 1.0
                ax.plot(steps["iter"], steps[field], color=palette[label], lw=0.8, alpha=alpha)
                drawn = True
            if field == "lr" and len(steps):
                continue  # the schedule is per step; an epoch's lr is only its last value
            if len(epochs):
                ax.plot(epochs["iter"], epochs[field], "o-", color=palette[label], markersize=3)
                drawn = True
        if ncols == 3:
            ax.set_title(title)
            ax.set_ylabel(ylabel)
        else:  # narrow: short titles say it all; y labels would squeeze the panels
            ax.set_title(SHORT_TITLES[field])
        if not drawn:
            reason = "no aLRP run (no self-balance)" if field == "sb_weight" else "no values"
            note(ax, reason)
        elif field == "lr" and (metrics[field] > 0).any():
            _log_lr_axis(ax)
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    handles = [Line2D([], [], color=palette[label], label=label) for label in labels]
    handles += [
        Line2D([], [], color="0.3", lw=0.8, alpha=0.45, label="per step"),
        Line2D([], [], color="0.3", marker="o", markersize=3, label="per epoch / evaluation"),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), ncols + 1 + (ncols == 3)),
    )
    fig.suptitle("Training curves")
    return fig


def _log_lr_axis(ax: Any) -> None:
    """Log scale (warm-up and step decays read as lines and steps) with enough labels.

    Ticks at 1, 2 and 5 per decade, or at every integer multiple when that leaves fewer
    than two in range, each labelled in plain numbers (0.005, 0.01), never a lone decade.
    """
    lines = [np.asarray(line.get_ydata(), dtype=float) for line in ax.lines]
    values = np.concatenate(lines) if lines else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return
    ax.set_yscale("log")
    lo, hi = float(values.min()), float(values.max())
    decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
    ticks = np.outer(10.0**decades, (1.0, 2.0, 5.0)).ravel()
    in_range = ((ticks >= lo * 0.999) & (ticks <= hi * 1.001)).sum()
    subs = (1.0, 2.0, 5.0) if in_range >= 2 else tuple(float(k) for k in range(1, 10))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if hi / lo < 1.5:  # a constant rate: show a little around it
        ax.set_ylim(lo / 1.5, hi * 1.5)
