"""Figure 6: training curves from a run directory's metrics.jsonl."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.figures.theme import TEXT_WIDTH, colors_for, new_figure, note, themed

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
) -> Figure:
    """Figure 6: L_cls, L_loc, total loss, self-balance weight, learning rate and AP per run.

    ``metrics`` is the union of runs' metrics.jsonl records with a ``label`` column (the run)
    and the records' fields: ``type`` (step, epoch or eval), ``iter`` and the values. Step
    records draw thin lines (at most ``max_points`` per run), epoch records dots joined by
    lines, eval records give the AP panel. A panel no run has values for says so.
    """
    labels = list(dict.fromkeys(metrics["label"]))
    palette = colors_for(labels, colors)
    fig = new_figure(TEXT_WIDTH, 4.8)
    axes = fig.subplots(2, 3, sharex=True)
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
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if not drawn:
            reason = "no aLRP run (no self-balance)" if field == "sb_weight" else "no values"
            note(ax, reason)
        elif field == "lr" and (metrics[field] > 0).any():
            # Log scale: warm-up and step decays read as lines and steps, no offset label.
            ax.set_yscale("log")
    for ax in axes[1]:
        ax.set_xlabel("iteration")
    handles = [Line2D([], [], color=palette[label], label=label) for label in labels]
    handles += [
        Line2D([], [], color="0.3", lw=0.8, alpha=0.45, label="per step"),
        Line2D([], [], color="0.3", marker="o", markersize=3, label="per epoch / evaluation"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5))
    fig.suptitle("Training curves")
    return fig
