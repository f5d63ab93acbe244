"""Figure 7: check-balance trials, Σ positive against Σ negative update magnitudes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from alrp_cli import registry
from analysis.figures.theme import COLUMN_WIDTH, LOSS_COLORS, PALETTE, new_figure, note, themed

#: The registry's losses: label, marker, size and drawing order (others: their name, a
#: diamond, drawn first).
LOSS_NAMES = {e.name: e.label for e in registry.entries()}
MARKERS = {e.name: e.style.marker for e in registry.entries()}
SIZES = {e.name: e.style.size for e in registry.entries()}
DRAW_ORDER = {e.name: e.style.draw_order for e in registry.entries()}


#: The axes span at most this many decades below the largest sum; smaller sums are drawn
#: on the lower or left edge (open markers) and counted in the panel.
MAX_DECADES = 10


def balance_range(values: np.ndarray, *, max_decades: int = MAX_DECADES) -> tuple[float, float]:
    """Decade-aligned (lo, hi) for the positive ``values``: all of them, or ``max_decades``.

    ``hi`` is the decade above the largest value; ``lo`` the decade below the 5th
    percentile, but never more than ``max_decades`` below ``hi`` — a few trials whose sums
    are ~1e-17 would otherwise stretch the axes over 20 decades and pile the rest up.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    hi = math.ceil(math.log10(values.max()) + 1e-9)
    lo = math.floor(math.log10(np.quantile(values, 0.05, method="lower")))
    lo = min(max(lo, hi - max_decades), hi - 1)
    return 10.0**lo, 10.0**hi


@themed
def plot_balance(trials: pd.DataFrame) -> Figure:
    """Figure 7: Σ|g| over positives against Σ|g| over negatives per trial, log-log.

    ``trials`` has columns ``source`` (which check-balance file), ``loss`` (a registry name
    or another), ``sum_pos`` and ``sum_neg``, and optionally ``rule``: trials of a
    zero-sum part (Rank & Sort's sorting part, which moves no negative) are left out. One
    panel per source; the diagonal is Theorem 2 (balanced). Both axes span the same decades
    (:func:`balance_range`), with the same ticks; a sum below the range is drawn on the
    edge with an open marker and counted in the panel. Non-positive sums cannot be drawn on
    log axes and are counted too.
    """
    if "rule" in trials:
        trials = trials[trials["rule"].fillna(registry.BALANCED) != registry.ZERO_SUM]
    sources = list(dict.fromkeys(trials["source"]))
    ncols = min(len(sources), 2)
    nrows = math.ceil(len(sources) / ncols)
    fig = new_figure(COLUMN_WIDTH * ncols, 0.7 + 3.0 * nrows)
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
        lo, hi = balance_range(ok[["sum_pos", "sum_neg"]].to_numpy())
        x = ok["sum_neg"].clip(lower=lo)
        y = ok["sum_pos"].clip(lower=lo)
        clipped = (ok["sum_neg"] < lo) | (ok["sum_pos"] < lo)
        # Unbalanced losses first, the balanced ones on top; aLRP's small circles stay
        # visible inside AP Loss's larger squares where both sit on the diagonal.
        for loss in sorted(losses, key=lambda name: DRAW_ORDER.get(name, -1)):
            for out_of_range in (False, True):
                part = (ok["loss"] == loss) & (clipped == out_of_range)
                if not part.any():
                    continue
                ax.scatter(
                    x[part],
                    y[part],
                    s=SIZES.get(loss, 18),
                    marker=MARKERS.get(loss, "D"),
                    facecolors="none" if out_of_range else palette[loss],
                    edgecolors=palette[loss] if out_of_range else "white",
                    alpha=0.85,
                    linewidths=0.8 if out_of_range else 0.3,
                    clip_on=False,
                    zorder=3,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--", zorder=2)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        decades = round(math.log10(hi / lo))
        step = max(1, math.ceil(decades / 5))
        ticks = [10.0 ** (math.log10(lo) + k) for k in range(0, decades + 1, step)]
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_minor_locator(NullLocator())
        ax.set_xlabel("Σ |update| over negatives")
        ax.set_ylabel("Σ |update| over positives")
        if len(sources) > 1:
            ax.set_title(source)
        lines = []
        if clipped.any():
            lines.append(
                f"{int(clipped.sum())} trial(s) with a sum < {lo:.0e}:\nopen markers on the edge"
            )
        dropped = len(rows) - len(ok)
        if dropped:
            lines.append(f"{dropped} trial(s) with a zero sum not shown")
        if lines:
            ax.text(  # top left: above the diagonal, where unbalanced losses rarely fall
                0.03,
                0.97,
                "\n".join(lines),
                ha="left",
                va="top",
                transform=ax.transAxes,
                fontsize="x-small",
                color="0.3",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
                zorder=4,
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
    fig.suptitle("Balance of positive and negative updates")
    return fig
