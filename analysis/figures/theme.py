"""One look for every report figure: seaborn theme, colour-blind-safe colours, figure sizes.

Figures are built on :class:`matplotlib.figure.Figure` with an explicit Agg canvas, never
through pyplot: no GUI backend is touched, no global figure registry grows, and a plot
function can run in a worker or a test without side effects. The theme is applied with an
``rc_context`` around each plot function, so importing this module changes no global state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

import seaborn as sns
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from alrp_cli import registry

#: Width of one column of a two-column paper (inches); the text width is twice that.
COLUMN_WIDTH = 3.5
TEXT_WIDTH = 7.0

#: seaborn "paper" context keeps fonts 8-10 pt at these widths: readable once printed.
THEME: dict[str, Any] = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.0),
    "axes.titlesize": 9.0,
    "axes.titleweight": "bold",
    "figure.titlesize": 10.0,
    "figure.titleweight": "bold",
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "font.family": "DejaVu Sans",
    # Reproducible vector output: no random ids, no timestamps.
    "svg.hashsalt": "alrp-report",
    # Embed TrueType (Type 42) fonts in PDF / PS, as publishers ask; not Type 3.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}

#: Okabe-Ito-derived, the palette seaborn calls "colorblind".
PALETTE = sns.color_palette("colorblind")

#: Fixed colours of the losses in check-balance figures (balanced ones cool, others warm).
LOSS_COLORS = {
    e.name: PALETTE[e.style.color] for e in registry.entries() if e.style.color is not None
}

P = ParamSpec("P")
R = TypeVar("R")


def themed(func: Callable[P, R]) -> Callable[P, R]:
    """Run a plot function inside the report theme."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with rc_context(THEME):
            return func(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout Figure of exactly ``width`` x ``height`` inches on an Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def model_colors(labels: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per label, in order; the same label keeps its colour in every figure."""
    unique = list(dict.fromkeys(labels))
    colors = sns.color_palette("colorblind", n_colors=max(len(unique), 1))
    return {label: colors[i % len(colors)] for i, label in enumerate(unique)}


def colors_for(labels: Iterable[str], colors: Mapping[str, Any] | None) -> dict[str, Any]:
    """``colors`` restricted to ``labels``, filling in any label it lacks."""
    labels = list(dict.fromkeys(labels))
    fallback = model_colors(labels)
    return {label: (colors or {}).get(label, fallback[label]) for label in labels}


def note(ax: Any, text: str) -> None:
    """Write a centred grey note in an axes that has nothing to show."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
