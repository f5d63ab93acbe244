"""The report figures: each renders from tiny data to a non-empty image of the expected size,
and draws the data it was given (checked on the artists, against plain computations here)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import imread

from analysis import figures
from analysis.figures.ranking import score_deciles, subsample

DPI = 40
RNG = np.random.default_rng(0)


def _png(fig: Figure) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    buf.seek(0)
    return imread(buf)


def assert_renders(fig: Figure) -> None:
    """A PNG of exactly figsize x dpi pixels that is not a blank canvas."""
    image = _png(fig)
    width, height = fig.get_size_inches()
    assert image.shape[:2] == (round(height * DPI), round(width * DPI))
    assert image[..., :3].std() > 0.05  # something was drawn


def _tps(labels: list[str], n: int) -> pd.DataFrame:
    frames = []
    for label in labels:
        iou = RNG.uniform(0.5, 1.0, n)
        frames.append(
            pd.DataFrame({"label": label, "iou": iou, "score": iou - 0.4 + RNG.uniform(0, 0.3, n)})
        )
    return pd.concat(frames, ignore_index=True)


def test_score_deciles_by_hand() -> None:
    ten = pd.Series([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0])
    assert score_deciles(ten).tolist() == [9, 1, 5, 3, 7, 2, 8, 4, 6, 10]
    twenty = pd.Series(np.arange(20, dtype=float))
    assert score_deciles(twenty).tolist() == [d for d in range(1, 11) for _ in range(2)]
    five = pd.Series([0.5, 0.1, 0.3, 0.2, 0.4])
    assert score_deciles(five).tolist() == [5, 1, 3, 2, 4]
    thirteen = pd.Series(np.arange(13, dtype=float))  # sizes 2, 2, 2, then 1s
    assert score_deciles(thirteen).tolist() == [1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10]
    ties = pd.Series([0.5] * 10)  # ties split by order, every decile gets one
    assert sorted(score_deciles(ties).tolist()) == list(range(1, 11))


def test_score_deciles_group_as_the_analysis_json_does() -> None:
    from analysis.ranking import iou_by_score_decile

    score = np.round(RNG.uniform(0, 1, 57), 2)  # with ties
    iou = RNG.uniform(0.5, 1, 57)
    frame = pd.DataFrame({"score": score, "iou": iou})
    means = frame.groupby(score_deciles(frame["score"]))["iou"].mean()
    summary = iou_by_score_decile(score, iou)
    assert np.allclose(means.to_numpy(), [d["mean_iou"] for d in summary])


def test_subsample_is_bounded_and_deterministic() -> None:
    frame = pd.DataFrame({"x": np.arange(100)})
    a, b = subsample(frame, 10, seed=3), subsample(frame, 10, seed=3)
    assert len(a) == 10 and a.equals(b) and a["x"].is_unique
    assert subsample(frame, 1000).equals(frame)


def test_score_vs_iou_bins_every_tp_and_bounds_points() -> None:
    tps = _tps(["a", "b"], 40)
    fig = figures.plot_score_vs_iou(tps, {"a": 0.5})
    assert_renders(fig)
    hexes = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert [int(h.get_array().sum()) for h in hexes] == [40, 40]
    legends = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    assert legends[0] == "a\nSpearman ρ = 0.50, n = 40"
    # "b" has no number given: its own rows' Spearman, as scipy computes it.
    from scipy.stats import spearmanr

    rows = tps[tps["label"] == "b"]
    assert f"ρ = {spearmanr(rows['score'], rows['iou']).statistic:.2f}" in legends[1]
    small = figures.plot_score_vs_iou(tps, max_points=15)
    hexes = [c for ax in small.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert [int(h.get_array().sum()) for h in hexes] == [15, 15]


def test_iou_by_score_decile_box_and_fallback() -> None:
    fig = figures.plot_iou_by_score_decile(_tps(["a", "b"], 30))
    assert_renders(fig)
    deciles = pd.DataFrame(
        {"label": "a", "decile": range(1, 11), "mean_iou": np.linspace(0.6, 0.9, 10)}
    )
    fig = figures.plot_iou_by_score_decile(deciles=deciles)
    assert_renders(fig)
    line = fig.axes[0].lines[0]
    assert np.allclose(line.get_ydata(), np.linspace(0.6, 0.9, 10))
    with pytest.raises(ValueError, match="give tps or deciles"):
        figures.plot_iou_by_score_decile()


def _per_class(n_tp: list[int]) -> pd.DataFrame:
    """Two models (a, b) x three classes; class car has no Spearman in a."""
    return pd.DataFrame(
        {
            "label": ["a", "a", "a", "b", "b", "b"],
            "name": ["dog", "cat", "car", "dog", "cat", "car"],
            "spearman": [0.8, 0.1, None, 0.6, -0.2, 0.9],
            "n_tp": n_tp,
        }
    )


def test_per_class_spearman_drops_small_and_null_classes() -> None:
    per_class = _per_class([10, 10, 10, 10, 10, 2])
    fig = figures.plot_per_class_spearman(per_class, min_tp=3)
    assert_renders(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dog", "cat"]  # best on top
    drawn = sorted(float(x) for c in ax.collections for x, _ in c.get_offsets())
    assert drawn == [-0.2, 0.1, 0.6, 0.8]
    empty = figures.plot_per_class_spearman(per_class.assign(n_tp=1))
    assert_renders(empty)


def test_olrp_components_bars_carry_the_numbers() -> None:
    lrp = pd.DataFrame(
        {
            "moLRP": [0.7, 0.65],
            "moLRP_loc": [0.2, 0.18],
            "moLRP_FP": [0.3, 0.25],
            "moLRP_FN": [0.4, 0.5],
        },
        index=["a", "b"],
    )
    fig = figures.plot_olrp_components(lrp)
    assert_renders(fig)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches if p.get_height() > 0)
    assert heights == sorted(lrp.to_numpy().ravel().round(6).tolist())


def test_pr_curves_stop_at_the_highest_recall() -> None:
    recall = np.linspace(0, 1, 101)
    precision = np.where(recall <= 0.6, 1 - 0.5 * recall, 0.0)
    curves = pd.DataFrame({"label": "a", "recall": recall, "precision": precision})
    fig = figures.plot_pr_curves(curves, {"a": 0.612})
    assert_renders(fig)
    ax = fig.axes[0]
    x = ax.lines[0].get_xdata()
    assert len(x) == 61 and x[-1] == pytest.approx(0.6)
    assert ax.get_legend().texts[0].get_text() == "a (AP50 0.612)"


def _metrics(label: str, weight: float | None) -> pd.DataFrame:
    rows = []
    for it in range(1, 7):
        rows.append(
            {
                "type": "step",
                "iter": it,
                "cls": 1 / it,
                "loc": 0.5,
                "loss": 1.0,
                "sb_weight": weight,
                "lr": 0.01,
            }
        )
    rows.append(
        {
            "type": "epoch",
            "iter": 6,
            "cls": 0.4,
            "loc": 0.5,
            "loss": 1.0,
            "sb_weight": weight,
            "lr": 0.01,
        }
    )
    rows.append({"type": "eval", "iter": 6, "AP": 0.3})
    return pd.DataFrame(rows).assign(label=label)


def test_training_curves_panels() -> None:
    fig = figures.plot_training_curves(_metrics("focal", None))
    assert_renders(fig)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    assert [t.get_text() for t in by_title["Self-balance weight $w$"].texts] == [
        "no aLRP run (no self-balance)"
    ]
    cls = by_title["Classification loss $L_{cls}$"]
    assert np.allclose(cls.lines[0].get_ydata(), [1 / i for i in range(1, 7)])
    assert by_title["AP per evaluation"].lines[0].get_ydata().tolist() == [0.3]
    both = figures.plot_training_curves(
        pd.concat([_metrics("alrp", 50.0), _metrics("focal", None)])
    )
    assert_renders(both)
    weight = {ax.get_title(): ax for ax in both.axes}["Self-balance weight $w$"]
    assert not weight.texts and len(weight.lines) == 2  # aLRP run only: steps and epochs


def test_balance_log_log_with_diagonal() -> None:
    trials = pd.DataFrame(
        {
            "source": "check",
            "loss": ["alrp", "alrp", "focal", "focal"],
            "sum_pos": [0.5, 0.0, 0.2, 0.3],
            "sum_neg": [0.5, 0.1, 20.0, 40.0],
        }
    )
    fig = figures.plot_balance(trials)
    assert_renders(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(map(tuple, points.tolist())) == [(0.5, 0.5), (20.0, 0.2), (40.0, 0.3)]
    diagonal = ax.lines[0]
    assert np.allclose(diagonal.get_xdata(), diagonal.get_ydata())
    assert any("1 trial(s) with a zero sum" in t.get_text() for t in ax.texts)


def test_comparison_page_bolds_the_best() -> None:
    headline = pd.DataFrame(
        {"AP": [0.40, 0.42], "moLRP": [0.70, 0.69], "alrp": [0.8, 0.9], "spearman": [0.5, np.nan]},
        index=["a", "b"],
    )
    fig = figures.plot_comparison(headline)
    assert_renders(fig)
    table = fig.axes[0].tables[0]
    cells = table.get_celld()
    header = {cells[0, j].get_text().get_text(): j for j in range(4)}
    bold = {
        (cells[i, j].get_text().get_text(), name)
        for name, j in header.items()
        for i in (1, 2)
        if cells[i, j].get_text().get_fontweight() == "bold"
    }
    assert bold == {("0.420", "AP"), ("0.690", "moLRP"), ("0.800", "aLRP loss")}
    assert cells[2, header["Spearman ρ"]].get_text().get_text() == "–"


def test_comparison_page_error_bars_span_mean_plus_minus_std() -> None:
    from matplotlib.container import ErrorbarContainer

    headline = pd.DataFrame(
        {"AP": [0.40, 0.30], "AP50": [0.60, np.nan], "moLRP": [0.70, 0.75]}, index=["a", "b"]
    )
    errors = pd.DataFrame(
        {"AP": [0.02, 0.05], "AP50": [0.01, np.nan], "moLRP": [np.nan, 0.03]}, index=["a", "b"]
    )
    fig = figures.plot_comparison(headline, errors=errors)
    assert_renders(fig)
    cells = fig.axes[0].tables[0].get_celld()
    row = {cells[i, -1].get_text().get_text(): i for i in (1, 2)}
    texts = {cells[row["a"], j].get_text().get_text() for j in range(3)}
    assert texts == {"0.400\n± 0.020", "0.600\n± 0.010", "0.700"}
    ap_panel = fig.axes[1]
    spans = []
    for container in ap_panel.containers:
        if isinstance(container, ErrorbarContainer):
            segment = container.lines[2][0].get_segments()[0]
            spans.append(
                (round(segment[0][0], 6), round(segment[0][1], 6), round(segment[1][1], 6))
            )
    # AP: a 0.40 ± 0.02, b 0.30 ± 0.05; AP50: a 0.60 ± 0.01; b has no AP50 bar.
    bars = {
        round(p.get_height(), 6): p
        for c in ap_panel.containers
        if hasattr(c, "patches")
        for p in c.patches
    }
    expected = {
        (round(bars[h].get_x() + bars[h].get_width() / 2, 6), round(h - e, 6), round(h + e, 6))
        for h, e in ((0.4, 0.02), (0.3, 0.05), (0.6, 0.01))
    }
    assert set(spans) == expected
    # Each error bar sits on its own bar: the x of a's AP bar differs from b's.
    assert len({x for x, _, _ in spans}) == 3


def test_model_colors_are_stable_and_colour_blind_safe() -> None:
    import seaborn as sns

    colors = figures.model_colors(["x", "y", "x", "z"])
    assert list(colors) == ["x", "y", "z"]
    assert list(colors.values()) == sns.color_palette("colorblind", 3)


def _inside(ax, xs: np.ndarray, ys: np.ndarray) -> bool:
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    return bool((xs >= x0).all() and (xs <= x1).all() and (ys >= y0).all() and (ys <= y1).all())


def test_score_vs_iou_hexagons_are_not_cut_at_the_edges() -> None:
    # TPs on every corner of the extent: IoU 0.5 and 1.0, score 0 and 1.
    tps = pd.DataFrame(
        {"label": "a", "iou": [0.5, 1.0, 0.5, 1.0, 0.75], "score": [0, 0, 1, 1, 0.5]}
    )
    fig = figures.plot_score_vs_iou(tps)
    ax = fig.axes[0]
    hexes = next(c for c in ax.collections if isinstance(c, PolyCollection))
    shape = hexes.get_paths()[0].vertices
    drawn = hexes.get_offsets()[np.asarray(hexes.get_array()) > 0]
    corners = drawn[:, None, :] + shape[None, :, :]
    assert len(drawn) == 5 and _inside(ax, corners[..., 0].ravel(), corners[..., 1].ravel())


def test_pr_curve_end_dot_at_recall_one_is_whole_and_undefined_ap50_is_a_dash() -> None:
    recall = np.linspace(0, 1, 101)
    curves = pd.DataFrame({"label": "a", "recall": recall, "precision": 1 - 0.3 * recall})
    fig = figures.plot_pr_curves(curves, {"a": None})
    ax = fig.axes[0]
    dot = ax.lines[1]
    assert dot.get_xdata()[0] == 1.0
    # The dot's radius (3 pt at 72 pt/inch) in data units fits inside the padded axes.
    radius = 1.5 / 72 * fig.dpi
    x, y = ax.transData.transform((1.0, dot.get_ydata()[0]))
    box = ax.get_window_extent()
    assert x + radius < box.x1 and y + radius < box.y1
    assert ax.get_legend().texts[0].get_text() == "a (AP50 –)"


def test_per_class_spearman_shows_each_class_tps_and_how_many_classes() -> None:
    per_class = _per_class([10, 12, 10, 11, 13, 2])
    fig = figures.plot_per_class_spearman(per_class, min_tp=3)
    ax = fig.axes[0]
    assert ax.get_title() == "2 of 3 classes drawn (≥ 3 TPs)\nright: TPs per model"
    right = next(c for c in ax.child_axes)
    assert [t.get_text() for t in right.get_yticklabels()] == ["10 · 11", "12 · 13"]


def test_balance_axes_share_decades_and_far_outliers_sit_on_the_edge() -> None:
    sums = np.logspace(-3, 2, 40)
    trials = pd.DataFrame(
        {
            "source": "check",
            "loss": ["alrp"] * 40 + ["focal", "focal"],
            "sum_pos": [*sums, 1e-17, 0.1],
            "sum_neg": [*sums, 3.0, 1e-19],
        }
    )
    fig = figures.plot_balance(trials)
    assert_renders(fig)
    ax = fig.axes[0]
    assert fig._suptitle.get_text() == "Balance of positive and negative updates"
    assert ax.get_xlim() == ax.get_ylim() == pytest.approx((1e-3, 1e3))
    assert list(ax.get_xticks()) == list(ax.get_yticks())
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(points) == 42 and points.min() == pytest.approx(1e-3)  # clipped to the edge
    note = " ".join(t.get_text() for t in ax.texts)
    assert "2 trial(s) with a sum < 1e-03" in note
    # Without outliers the axes cover every point, over at most MAX_DECADES decades.
    from analysis.figures.balance import MAX_DECADES, balance_range

    assert balance_range(np.array([0.02, 5.0])) == (1e-2, 1e1)
    lo, hi = balance_range(np.r_[np.full(99, 1.0), 1e-30])
    assert np.log10(hi / lo) <= MAX_DECADES


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0075, 0.02), (0.01, 0.01), (1e-4, 1e-2), (0.009, 0.0101)]
)
def test_learning_rate_axis_labels_at_least_two_ticks(lo: float, hi: float) -> None:
    metrics = _metrics("alrp", 50.0)
    metrics["lr"] = np.geomspace(lo, hi, len(metrics))
    fig = figures.plot_training_curves(metrics)
    ax = {a.get_title(): a for a in fig.axes}["Learning rate"]
    fig.canvas.draw()
    y0, y1 = ax.get_ylim()
    labelled = [
        t for t in ax.yaxis.get_major_ticks() if y0 <= t.get_loc() <= y1 and t.label1.get_text()
    ]
    assert len(labelled) >= 2, [t.label1.get_text() for t in labelled]
    assert all("10^" not in t.label1.get_text() for t in labelled)  # plain numbers


def test_training_curves_narrow_layout() -> None:
    from analysis.figures.theme import COLUMN_WIDTH

    fig = figures.plot_training_curves(_metrics("alrp", 50.0), ncols=2)
    assert_renders(fig)
    assert fig.get_size_inches()[0] == COLUMN_WIDTH
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 6
    assert len({round(ax.get_position().x0, 3) for ax in panels}) == 2  # two columns
    with pytest.raises(ValueError, match="ncols must be 1, 2 or 3"):
        figures.plot_training_curves(_metrics("alrp", 50.0), ncols=4)
