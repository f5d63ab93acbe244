"""Figure 7: check-balance trials, Σ positive against Σ negative update magnitudes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.figures.theme import COLUMN_WIDTH, LOSS_COLORS, PALETTE, new_figure, note, themed

LOSS_NAMES = {"alrp": "aLRP", "ap": "AP", "focal": "focal", "bce": "BCE"}
MARKERS = {"alrp": "o", "ap": "s", "focal": "^", "bce": "v"}
SIZES = {"alrp": 12, "ap": 30}
DRAW_ORDER = {"bce": 0, "focal": 1, "ap": 2, "alrp": 3}


@themed
def plot_balance(trials: pd.DataFrame) -> Figure:
    """Figure 7: Σ|g| over positives against Σ|g| over negatives per trial, log-log.

    ``trials`` has columns ``source`` (which check-balance file), ``loss`` (alrp, ap, focal,
    bce or another name), ``sum_pos`` and ``sum_neg``. One panel per source; the diagonal is
    Theorem 2 (balanced). Non-positive sums cannot be drawn on log axes and are counted in
    a note instead.
    """
    sources = list(dict.fromkeys(trials["source"]))
    ncols = min(len(sources), 2)
    nrows = math.ceil(len(sources) / ncols)
    fig = new_figure(COLUMN_WIDTH * ncols, 0.5 + 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    losses = list(dict.fromkeys(trials["loss"]))
    extra = iter(PALETTE[4:])
    palette = {loss: LOSS_COLORS.get(loss) or next(extra) for loss in losses}
    for ax, source in zip(axes.flat, sources, strict=False):
        rows = trials[trials["source"] == source]
        ok = rows[(rows["sum_pos"] > 0) & (rows["sum_neg"] > 0)]
        if ok.empty:
            note(ax, "no trial with positive sums")
            ax.set_title(source)
            continue
        # Unbalanced losses first, the balanced ones on top; aLRP's small circles stay
        # visible inside AP Loss's larger squares where both sit on the diagonal.
        for loss in sorted(losses, key=lambda name: DRAW_ORDER.get(name, -1)):
            part = ok[ok["loss"] == loss]
            ax.scatter(
                part["sum_neg"],
                part["sum_pos"],
                s=SIZES.get(loss, 18),
                marker=MARKERS.get(loss, "D"),
                color=palette[loss],
                alpha=0.85,
                linewidths=0.3,
                edgecolors="white",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo = float(np.min(ok[["sum_pos", "sum_neg"]].to_numpy())) / 2
        hi = float(np.max(ok[["sum_pos", "sum_neg"]].to_numpy())) * 2
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--", zorder=0)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("Σ |update| over negatives")
        ax.set_ylabel("Σ |update| over positives")
        if len(sources) > 1:
            ax.set_title(source)
        dropped = len(rows) - len(ok)
        if dropped:
            ax.text(
                0.98,
                0.02,
                f"{dropped} trial(s) with a zero sum not shown",
                ha="right",
                va="bottom",
                transform=ax.transAxes,
                fontsize=6,
                color="0.4",
            )
    for ax in list(axes.flat)[len(sources) :]:
        ax.set_visible(False)
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker=MARKERS.get(loss, "D"),
            color=palette[loss],
            label=LOSS_NAMES.get(loss, loss),
        )
        for loss in losses
    ]
    handles.append(Line2D([], [], color="0.3", lw=0.8, ls="--", label="Σpos = Σneg"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
    fig.suptitle("Update balance per trial")
    return fig
