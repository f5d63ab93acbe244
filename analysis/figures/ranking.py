"""Figures of ranking against localisation: do higher-scored true positives overlap better?

Inputs are tidy pandas frames (one row per true positive or per class and model), so the
functions serve the report and any notebook alike. Each returns a Figure and draws nothing
on screen.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LinearSegmentedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter
from scipy import stats

from analysis.figures.theme import COLUMN_WIDTH, TEXT_WIDTH, colors_for, new_figure, note, themed


def subsample(frame: pd.DataFrame, max_rows: int, *, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``frame``, drawn without replacement (deterministic)."""
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()


def score_deciles(scores: pd.Series) -> pd.Series:
    """Decile 1..10 of each score within its series, 1 = lowest scores.

    The grouping of :func:`analysis.ranking.iou_by_score_decile` (the analysis JSON's
    deciles): scores sorted ascending (stable, so ties keep their order) and cut by
    ``numpy.array_split`` into ten groups whose sizes differ by at most one; with fewer
    than ten scores the top deciles stay empty.
    """
    order = np.argsort(scores.to_numpy(), kind="stable")
    decile = np.zeros(len(order), dtype=int)
    for d, part in enumerate(np.array_split(order, 10), start=1):
        decile[part] = d
    return pd.Series(decile, index=scores.index)


def _blend(color: Any, amount: float) -> tuple[float, float, float]:
    """``color`` mixed with white (``amount`` < 1) or darkened towards black (> 1)."""
    rgb = np.asarray(to_rgb(color))
    mixed = 1 - amount * (1 - rgb) if amount <= 1 else rgb / amount
    return tuple(float(v) for v in np.clip(mixed, 0.0, 1.0))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


#: Hexagons across (IoU) and up (score) in figure 1.
GRID = (24, 14)


@themed
def plot_score_vs_iou(
    tps: pd.DataFrame,
    spearman: Mapping[str, float | None] | None = None,
    *,
    colors: Mapping[str, Any] | None = None,
    iou_threshold: float = 0.5,
    max_points: int = 50_000,
    seed: int = 0,
) -> Figure:
    """Figure 1: hexbin of score against IoU of the true positives, one panel per model.

    ``tps`` has columns ``label`` (model), ``score`` and ``iou`` (floats in [0, 1]), one row
    per true positive. ``spearman`` maps a label to its pooled Spearman correlation (the
    analysis JSON's number); a label it lacks gets the correlation of its rows. At most
    ``max_points`` rows per model are binned (a seeded subsample).
    """
    labels = list(dict.fromkeys(tps["label"]))
    if not labels:
        raise ValueError("plot_score_vs_iou: no true positives to plot")
    palette = colors_for(labels, colors)
    ncols = min(len(labels), 3)
    nrows = math.ceil(len(labels) / ncols)
    width = COLUMN_WIDTH if ncols == 1 else TEXT_WIDTH
    fig = new_figure(width, 0.4 + 2.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    x_lo = min(iou_threshold, float(tps["iou"].min()))
    # Scores are usually probabilities; other detectors' scores keep their own range.
    y_lo, y_hi = min(0.0, float(tps["score"].min())), max(1.0, float(tps["score"].max()))
    for ax, label in zip(axes.flat, labels, strict=False):
        rows = tps[tps["label"] == label]
        rho = (spearman or {}).get(label)
        if rho is None and len(rows) > 2:
            rho = float(stats.spearmanr(rows["score"], rows["iou"]).statistic)
        shown = subsample(rows, max_points, seed=seed)
        # From a visible tint (single TPs must show) to the model's colour, darkened.
        cmap = LinearSegmentedColormap.from_list(
            label, [_blend(palette[label], 0.25), palette[label], _blend(palette[label], 1.6)]
        )
        counts = np.histogram2d(shown["iou"], shown["score"], bins=GRID)[0].max()
        art = ax.hexbin(
            shown["iou"],
            shown["score"],
            gridsize=GRID,  # about regular hexagons on a near-square panel
            extent=(x_lo, 1.0, y_lo, y_hi),
            mincnt=1,
            bins="log" if counts > 20 else None,
            cmap=cmap,
            linewidths=0.2,
        )
        bar = fig.colorbar(art, ax=ax, label="TPs per cell", pad=0.02, aspect=30)
        bar.ax.yaxis.set_major_formatter(ScalarFormatter())
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        if counts <= 20:
            bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        # Hexagons are centred on the extent's edges: pad by a little over half a hexagon
        # (matplotlib's are sx/2 wide and sy/3 high either side of the centre) so none is cut.
        pad_x, pad_y = 1.1 * (1.0 - x_lo) / GRID[0] / 2, 1.1 * (y_hi - y_lo) / GRID[1] / 3
        ax.set_xlim(x_lo - pad_x, 1.0 + pad_x)
        ax.set_ylim(y_lo - pad_y, y_hi + pad_y)
        ax.set_xlabel("IoU with matched ground truth")
        ax.set_ylabel("score" if ax.get_subplotspec().is_first_col() else "")
        text = f"{label}\nSpearman ρ = {_fmt(rho)}, n = {len(rows)}"
        entry = Patch(color=palette[label], label=text)
        # Above the axes, so the legend never hides a bin.
        ax.legend(handles=[entry], loc="lower left", bbox_to_anchor=(0.0, 1.0), borderaxespad=0.2)
    for ax in list(axes.flat)[len(labels) :]:
        ax.set_visible(False)
    fig.suptitle("Score against IoU of true positives")
    return fig


@themed
def plot_iou_by_score_decile(
    tps: pd.DataFrame | None = None,
    deciles: pd.DataFrame | None = None,
    *,
    colors: Mapping[str, Any] | None = None,
) -> Figure:
    """Figure 2: IoU of true positives by score decile (1 = lowest scores), one hue per model.

    With ``tps`` (columns ``label``, ``score``, ``iou``) draws box plots of the IoU in each
    decile of the model's TP scores. Without it, falls back to ``deciles`` (columns
    ``label``, ``decile``, ``mean_iou``; the analysis JSON's summary) and draws the mean IoU.
    """
    if tps is not None:
        data = tps.assign(decile=tps.groupby("label")["score"].transform(score_deciles))
        labels = list(dict.fromkeys(data["label"]))
    elif deciles is not None:
        data = deciles.dropna(subset=["mean_iou"])
        labels = list(dict.fromkeys(deciles["label"]))
    else:
        raise ValueError("plot_iou_by_score_decile: give tps or deciles")
    if not labels:
        raise ValueError("plot_iou_by_score_decile: no data to plot")
    palette = colors_for(labels, colors)
    width = COLUMN_WIDTH if len(labels) == 1 else TEXT_WIDTH
    fig = new_figure(width, 2.9)
    ax = fig.subplots()
    order = list(range(1, 11))
    if tps is not None:
        # seaborn 0.13 still passes matplotlib's deprecated ``vert``; not ours to act on.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="vert: bool", category=DeprecationWarning)
            sns.boxplot(
                data=data,
                x="decile",
                y="iou",
                hue="label",
                order=order,
                hue_order=labels,
                palette=palette,
                showfliers=False,
                saturation=1.0,
                linewidth=0.7,
                width=0.8,
                ax=ax,
            )
        ax.set_ylabel("IoU of true positives")
        ax.set_title("IoU by score decile")
    else:
        sns.pointplot(
            data=data,
            x="decile",
            y="mean_iou",
            hue="label",
            order=order,
            hue_order=labels,
            palette=palette,
            markersize=4,
            linewidth=1.2,
            dodge=0.3 if len(labels) > 1 else False,
            ax=ax,
        )
        ax.set_ylabel("mean IoU of true positives")
        ax.set_title("Mean IoU by score decile")
    ax.set_xlabel("score decile of the TPs (1 = lowest)")
    handles, names = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 4))
    return fig


@themed
def plot_per_class_spearman(
    per_class: pd.DataFrame,
    *,
    colors: Mapping[str, Any] | None = None,
    min_tp: int = 5,
) -> Figure:
    """Figure 3: per-class Spearman correlation of score and IoU, models side by side.

    ``per_class`` has columns ``label`` (model), ``name`` (class), ``spearman`` and ``n_tp``.
    Points with fewer than ``min_tp`` true positives or no correlation are left out; classes
    are sorted by their mean correlation over models, best on top. The right axis gives each
    drawn class's number of TPs per model (in legend order), the subtitle how many of the
    classes are drawn.
    """
    data = per_class.dropna(subset=["spearman"])
    data = data[data["n_tp"] >= min_tp]
    labels = list(dict.fromkeys(per_class["label"]))
    palette = colors_for(labels, colors)
    classes = list(data.groupby("name")["spearman"].mean().sort_values(ascending=False).index)
    total = per_class["name"].nunique()
    fig = new_figure(COLUMN_WIDTH, max(2.4, 1.1 + 0.17 * len(classes)))
    ax = fig.subplots()
    fig.suptitle("Per-class Spearman ρ of score and IoU")
    ax.set_title(
        f"{len(classes)} of {total} classes drawn (≥ {min_tp} TPs)\nright: TPs"
        + (" per model" if len(labels) > 1 else ""),
        fontsize="medium",
        fontweight="normal",
    )
    if not classes:
        note(ax, f"no class has {min_tp} or more true positives")
        return fig
    position = {name: i for i, name in enumerate(classes)}
    step = 0.6 / max(len(labels), 1)
    for k, label in enumerate(labels):
        rows = data[data["label"] == label]
        offset = (k - (len(labels) - 1) / 2) * step if len(labels) > 1 else 0.0
        ax.scatter(
            rows["spearman"],
            [position[n] + offset for n in rows["name"]],
            s=14,
            color=palette[label],
            label=label,
            edgecolor="white",
            linewidth=0.3,
            zorder=3,
        )
    ax.axvline(0.0, color="0.3", linewidth=0.8, zorder=2)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_ylim(len(classes) - 0.5, -0.5)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Spearman ρ of score and IoU")
    ax.grid(axis="y", linewidth=0.3)
    n_tp = per_class.pivot_table(index="name", columns="label", values="n_tp", aggfunc="sum")
    right = ax.secondary_yaxis("right")
    right.set_yticks(
        range(len(classes)),
        [
            " · ".join(_count(n_tp.at[c, lb]) if lb in n_tp else "–" for lb in labels)
            for c in classes
        ],
    )
    right.tick_params(length=0, labelsize="small", labelcolor="0.35")
    fig.legend(loc="outside lower center", ncols=min(len(labels), 3))
    return fig


def _count(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{int(value)}"
