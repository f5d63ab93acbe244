"""Figures of the headline metrics: oLRP components, precision-recall, model comparison."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from alrp_cli import registry
from analysis.figures.theme import COLUMN_WIDTH, TEXT_WIDTH, colors_for, new_figure, themed

#: Component columns of the analysis JSON's "lrp" block and how the figures name them.
LRP_COMPONENTS = {
    "moLRP": "moLRP",
    "moLRP_loc": "localisation\n(1 − IoU)",
    "moLRP_FP": "FP rate",
    "moLRP_FN": "FN rate",
}

#: Headline columns of the comparison page: (column, short name, higher is better).
HEADLINE = [
    ("AP", "AP", True),
    ("AP50", "AP50", True),
    ("AP75", "AP75", True),
    ("moLRP", "moLRP", False),
    ("moLRP_loc", "oLRP loc", False),
    ("moLRP_FP", "oLRP FP", False),
    ("moLRP_FN", "oLRP FN", False),
    *[(m.key, m.headline, False) for m in registry.measures() if m.headline],
    ("spearman", "Spearman ρ", True),
]

#: Panels of the comparison page: (title, [(column, tick label)]).
PANELS = [
    ("COCO AP (higher is better)", [("AP", "AP"), ("AP50", "AP50"), ("AP75", "AP75")]),
    (
        "oLRP (lower is better)",
        [("moLRP", "moLRP"), ("moLRP_loc", "loc"), ("moLRP_FP", "FP"), ("moLRP_FN", "FN")],
    ),
    (
        "Loss of the ranked detections (lower is better)",
        [(m.key, m.figure) for m in registry.measures()],
    ),
    (
        "Ranking vs localisation (higher is better)",
        [("spearman", "Spearman"), ("kendall", "Kendall"), ("concordant_share", "concordant")],
    ),
]


def _bars(
    ax: Any,
    frame: pd.DataFrame,
    columns: list[tuple[str, str]],
    palette: Mapping[str, Any],
    *,
    annotate: bool,
    errors: pd.DataFrame | None = None,
) -> None:
    """Grouped bars: x = metric, hue = model; missing values left out.

    ``errors`` (same index and columns as ``frame``) draws a ± error bar on each bar.
    """
    present = [(c, name) for c, name in columns if c in frame.columns]
    long = (
        frame[[c for c, _ in present]]
        .rename(columns=dict(present))
        .rename_axis("label")
        .reset_index()
        .melt(id_vars="label", var_name="metric", value_name="value")
        .dropna(subset=["value"])
    )
    if long.empty:
        return
    sns.barplot(
        data=long,
        x="metric",
        y="value",
        hue="label",
        order=[name for _, name in present],
        hue_order=list(palette),
        palette=palette,
        legend=False,
        saturation=1.0,
        ax=ax,
    )
    if errors is not None:
        _error_bars(ax, frame, errors, [c for c, _ in present], list(palette))
    if annotate:
        for container in ax.containers:
            if hasattr(container, "patches"):  # bar containers only, not error bars
                ax.bar_label(container, fmt="%.3f", fontsize=6.5, padding=1)
    ax.set_xlabel("")
    ax.set_ylabel("")


def _error_bars(
    ax: Any, frame: pd.DataFrame, errors: pd.DataFrame, columns: list[str], labels: list[str]
) -> None:
    """± ``errors`` on each bar seaborn drew: its containers are per model (hue), in
    ``labels`` order, and hold one bar per metric that model has a value for."""
    containers = [c for c in ax.containers if hasattr(c, "patches")]
    for label, container in zip(labels, containers, strict=False):
        shown = [c for c in columns if pd.notna(frame.at[label, c])]
        for column, patch in zip(shown, container.patches, strict=False):
            err = errors.at[label, column] if column in errors.columns else np.nan
            if pd.isna(err):
                continue
            ax.errorbar(
                patch.get_x() + patch.get_width() / 2,
                patch.get_height(),
                yerr=float(err),
                color="0.15",
                linewidth=0.9,
                capsize=2.0,
            )


@themed
def plot_olrp_components(
    lrp: pd.DataFrame,
    *,
    colors: Mapping[str, Any] | None = None,
) -> Figure:
    """Figure 4: moLRP and its localisation, FP and FN components per model.

    ``lrp`` is indexed by model label with columns ``moLRP``, ``moLRP_loc``, ``moLRP_FP``,
    ``moLRP_FN`` (floats in [0, 1]; NaN where undefined).
    """
    palette = colors_for(lrp.index, colors)
    fig = new_figure(COLUMN_WIDTH if len(palette) <= 2 else TEXT_WIDTH, 2.8)
    ax = fig.subplots()
    _bars(ax, lrp, list(LRP_COMPONENTS.items()), palette, annotate=len(palette) <= 3)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("value (lower is better)")
    fig.suptitle("moLRP and its components")
    _figure_legend(fig, palette)
    return fig


def _figure_legend(fig: Figure, palette: Mapping[str, Any]) -> None:
    handles = [Patch(color=color, label=label) for label, color in palette.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))


@themed
def plot_pr_curves(
    curves: pd.DataFrame,
    ap50: Mapping[str, float | None] | None = None,
    *,
    colors: Mapping[str, Any] | None = None,
    iou: float = 0.5,
) -> Figure:
    """Figure 5: COCO's 101-point interpolated precision-recall curve per model.

    ``curves`` has columns ``label``, ``recall``, ``precision`` (101 rows per model, COCO's
    recall grid). Precision 0 past the highest reached recall is not drawn; a dot marks the
    end of each curve. ``ap50`` adds each model's AP50 to the legend.
    """
    labels = list(dict.fromkeys(curves["label"]))
    palette = colors_for(labels, colors)
    fig = new_figure(COLUMN_WIDTH, 3.0)
    ax = fig.subplots()
    for label in labels:
        rows = curves[curves["label"] == label].dropna(subset=["precision"])
        recall = rows["recall"].to_numpy(dtype=float)
        precision = rows["precision"].to_numpy(dtype=float)
        reached = np.flatnonzero(precision > 0)
        end = int(reached[-1]) + 1 if len(reached) else 0
        name = f"{label} (AP50 {_cell((ap50 or {}).get(label))})" if ap50 is not None else label
        ax.plot(recall[:end], precision[:end], color=palette[label], linewidth=1.3, label=name)
        if end:
            ax.plot(recall[end - 1], precision[end - 1], "o", color=palette[label], markersize=3)
    # Padded, so a curve reaching recall 1 or precision 1 shows its end dot whole.
    ax.set_xlim(-0.02, 1.03)
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated)")
    ax.set_title(f"Precision–recall at IoU {iou:g}")
    ax.legend(loc="best")
    return fig


def _headline_table(ax: Any, frame: pd.DataFrame, errors: pd.DataFrame | None = None) -> None:
    columns = [(c, name, up) for c, name, up in HEADLINE if c in frame.columns]

    def spread(label: str, column: str) -> Any:
        if errors is None or column not in errors.columns or label not in errors.index:
            return None
        return errors.at[label, column]

    cells = [
        [_cell(frame.at[label, c], spread(label, c)) for c, _, _ in columns]
        for label in frame.index
    ]
    table = ax.table(
        cellText=cells,
        rowLabels=list(frame.index),
        colLabels=[name for _, name, _ in columns],
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.35 if errors is None else 2.5)
    table.auto_set_column_width(list(range(-1, len(columns))))
    for j, (c, _, up) in enumerate(columns):
        values = pd.to_numeric(frame[c], errors="coerce")
        if values.notna().sum() < 2:
            continue
        best = values.idxmax() if up else values.idxmin()
        for i, label in enumerate(frame.index):
            if label == best:
                table[i + 1, j].get_text().set_fontweight("bold")
    ax.axis("off")
    ax.set_title("Headline numbers (best in bold)")


def _cell(value: Any, error: Any = None) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(number):
        return "–"
    try:
        spread = float(error)
    except (TypeError, ValueError):
        spread = math.nan
    # Two lines, so that ten columns of "mean ± std" still fit the page's width.
    return f"{number:.3f}\n± {spread:.3f}" if math.isfinite(spread) else f"{number:.3f}"


@themed
def plot_comparison(
    headline: pd.DataFrame,
    *,
    colors: Mapping[str, Any] | None = None,
    errors: pd.DataFrame | None = None,
) -> Figure:
    """Figure 8: one page comparing models: a table of headline numbers and four bar panels.

    ``headline`` is indexed by model label; columns among ``AP``, ``AP50``, ``AP75``,
    ``moLRP``, ``moLRP_loc``, ``moLRP_FP``, ``moLRP_FN``, ``alrp_cls``, ``alrp_loc``,
    ``alrp``, ``ap_loss``, ``spearman``, ``kendall``, ``concordant_share`` (NaN allowed).
    ``errors``, indexed and labelled like ``headline`` (e.g. the standard deviation over
    seeds when ``headline`` holds means), adds ± error bars and "mean ± std" table cells.
    """
    palette = colors_for(headline.index, colors)
    n = len(headline)
    rows = 0.22 if errors is None else 0.48  # two-line cells with errors
    fig = new_figure(TEXT_WIDTH, 7.0 + (0.2 if errors is None else 0.5) * n)
    grid = fig.add_gridspec(3, 2, height_ratios=[0.5 + rows * n, 2.2, 2.2])
    _headline_table(fig.add_subplot(grid[0, :]), headline, errors)
    for k, (title, columns) in enumerate(PANELS):
        ax = fig.add_subplot(grid[1 + k // 2, k % 2])
        _bars(ax, headline, columns, palette, annotate=n <= 2 and errors is None, errors=errors)
        ax.set_title(title)
        top = ax.get_ylim()[1]
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), max(top * 1.12, 0.05))
    fig.suptitle("Model comparison")
    _figure_legend(fig, palette)
    return fig
