"""Make the report: tidy the inputs, draw each figure that has data, save it atomically.

A figure whose data no input provides is skipped with the reason, which the index shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from alrp_cli.atomic import atomic_path
from alrp_cli.errors import UserError
from analysis import figures
from analysis.figures.theme import THEME
from analysis.report.inputs import ReportInputs

FORMATS = ("png", "svg", "pdf")

#: (key, title, caption: what a reader should look for).
FIGURES = [
    (
        "score_vs_iou",
        "Score against IoU of true positives",
        "The true positives of each model, binned by IoU with their ground truth (x) and "
        "score (y); darker cells hold more detections. A loss that ties the score to "
        "localisation quality, as aLRP Loss does, tilts the mass towards the top right: the "
        "better a box overlaps, the higher its score. The legend gives the pooled Spearman "
        "correlation of score and IoU; higher is better.",
    ),
    (
        "iou_by_score_decile",
        "IoU by score decile",
        "True positives split into ten equal groups by score (1 = lowest scores). Look for "
        "the IoU to climb from left to right: if higher-scored detections are better "
        "localised, the median IoU rises with the decile. A flat profile means the score says "
        "nothing about localisation quality.",
    ),
    (
        "per_class_spearman",
        "Per-class Spearman ρ of score and IoU",
        "Spearman ρ of score and IoU among each class's true positives (classes with at least "
        "5 TPs; the subtitle says how many of all classes that is, the right axis gives each "
        "class's TPs), best classes on top. Points right of zero: the class ranks better-localised "
        "boxes higher. Look for a model whose points sit consistently right of the others', "
        "and for classes where every model is negative.",
    ),
    (
        "olrp_components",
        "moLRP and its components",
        "moLRP (lower is better) and its components at each class's LRP-optimal threshold, "
        "averaged over classes: localisation error, mean 1 − IoU of the TPs; FP rate; FN "
        "rate. Look at which component separates the models: a ranking loss that couples "
        "score and localisation should lower the localisation component first.",
    ),
    (
        "pr_curve",
        "Precision–recall at IoU 0.5",
        "COCO's 101-point interpolated precision against recall at IoU 0.5, over all classes; "
        "the dot marks the highest recall reached. Look for the curve that stays high for "
        "longest; the legend gives AP50, the area under it.",
    ),
    (
        "training_curves",
        "Training curves",
        "From each run's metrics.jsonl: thin lines per logged step, dots per epoch and per "
        "evaluation. Look for L_cls and L_loc falling steadily, the self-balance weight "
        "settling after the first epochs (aLRP runs only), the learning rate following its "
        "schedule, and AP rising from one evaluation to the next.",
    ),
    (
        "balance",
        "Balance of positive and negative updates",
        "One point per trial: the summed magnitude of the updates to the positives (y) "
        "against that to the negatives (x), log-log over the same decades on both axes (at "
        "most ten; a sum below them is drawn as an open marker on the edge and counted). "
        "Theorem 2 of the aLRP paper puts aLRP and AP Loss on the dashed diagonal to "
        "rounding; focal loss and BCE have no such guarantee and usually lie off it (their "
        "ratio is the imbalance).",
    ),
    (
        "comparison",
        "Model comparison",
        "All models' headline numbers on one page: COCO AP, oLRP and its components, the loss "
        "values of the ranked detections, and the ranking-vs-localisation correlations; the "
        "best value of each column of the table is bold.",
    ),
]


@dataclass
class FigureResult:
    """One figure of the report: the files written, or why it was skipped."""

    number: int
    key: str
    title: str
    caption: str
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    #: Width and height in inches (the PNG is this times the dpi).
    size: tuple[float, float] | None = None
    #: A variant laid out for narrow screens (index.html shows it below 600 px), by format.
    narrow: dict[str, Path] = field(default_factory=dict)
    narrow_size: tuple[float, float] | None = None
    narrow_draw: Callable[[], Figure] | None = field(default=None, repr=False)


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"png,svg"`` -> ``("png", "svg")``; raises UserError for an unknown format."""
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = tuple(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(
            f"--format: {', '.join(unknown) or 'nothing given'}: choose among {', '.join(FORMATS)}"
        )
    return formats


def headline_row(record: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one analysis record (``AnalysisResult.to_dict()``): COCO
    AP, AP50, AP75, oLRP components, mean losses, pooled ranking statistics."""
    row: dict[str, Any] = {}
    for key in ("AP", "AP50", "AP75"):
        row[key] = record["coco"].get(key)
    for key in ("moLRP", "moLRP_loc", "moLRP_FP", "moLRP_FN"):
        row[key] = record["lrp"].get(key)
    row.update((record.get("losses") or {}).get("mean") or {})
    pooled = record["ranking"].get("pooled") or {}
    for key in ("spearman", "kendall", "concordant_share", "n_tp"):
        row[key] = pooled.get(key)
    row["n_detections"] = record.get("n_detections")
    return row


def headline_table(inputs: ReportInputs) -> pd.DataFrame:
    """One row per model (index: label): COCO AP, oLRP components, losses, ranking stats."""
    rows = {model.label: headline_row(model.record) for model in inputs.models}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.apply(pd.to_numeric, errors="coerce")


def _records(inputs: ReportInputs, block: str, key: str) -> pd.DataFrame:
    frames = []
    for model in inputs.models:
        rows = (model.record.get(block) or {}).get(key) or []
        if rows:
            frames.append(pd.DataFrame(rows).assign(label=model.label))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tps(inputs: ReportInputs) -> pd.DataFrame:
    frames = [m.tps.assign(label=m.label) for m in inputs.models if m.tps is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _pr(inputs: ReportInputs) -> pd.DataFrame:
    frames = []
    for model in inputs.models:
        pr = model.record["pr_curve"]
        recall, precision = pr.get("recall") or [], pr.get("precision") or []
        if len(recall) != len(precision):
            raise UserError(
                f"{model.source}: {model.label}: pr_curve recall and precision differ in length"
            )
        frames.append(
            pd.DataFrame({"recall": recall, "precision": precision}, dtype=float).assign(
                label=model.label
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


Draw = Callable[[], Figure]
Colors = dict[str, Any]


def _score_vs_iou(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    models = inputs.models
    without_csv = [m.label for m in models if m.tps is None]
    if len(without_csv) == len(models):
        result.skipped = "no per-detection CSV (csv.detections) for any model"
        return None
    tps = _tps(inputs)
    if tps.empty:
        result.skipped = "the per-detection CSVs hold no true positive"
        return None
    if without_csv:
        result.notes.append(f"Left out for lack of a per-detection CSV: {', '.join(without_csv)}.")
    none = [m.label for m in models if m.tps is not None and m.tps.empty]
    if none:
        result.notes.append(f"No true positive to draw for: {', '.join(none)}.")
    limit = 50_000
    big = [m.label for m in models if m.tps is not None and len(m.tps) > limit]
    if big:
        result.notes.append(f"Binned a random {limit:,} TPs of: {', '.join(big)}.")
    spearman = {
        m.label: _finite((m.record["ranking"].get("pooled") or {}).get("spearman")) for m in models
    }
    iou = min(m.iou_threshold for m in models)
    return lambda: figures.plot_score_vs_iou(
        tps, spearman, colors=colors, iou_threshold=iou, max_points=limit
    )


def _iou_by_score_decile(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    without_csv = [m.label for m in inputs.models if m.tps is None]
    tps = _tps(inputs)
    if not without_csv and not tps.empty:
        return lambda: figures.plot_iou_by_score_decile(tps, colors=colors)
    # Some model lacks the per-TP table: every model gets the JSON's per-decile means.
    deciles = _records(inputs, "ranking", "iou_by_score_decile")
    if deciles.empty or pd.to_numeric(deciles["mean_iou"], errors="coerce").isna().all():
        result.skipped = "no true positive in the inputs"
        return None
    deciles["mean_iou"] = pd.to_numeric(deciles["mean_iou"], errors="coerce")
    why = (
        f"these models have no per-detection CSV: {', '.join(without_csv)}"
        if without_csv
        else "the per-detection CSVs hold no true positive"
    )
    result.notes.append(f"Mean IoU per decile from the analysis JSON, because {why}.")
    result.title = "Mean IoU by score decile"
    return lambda: figures.plot_iou_by_score_decile(deciles=deciles, colors=colors)


def _per_class_spearman(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    per_class = _records(inputs, "ranking", "per_class")
    if per_class.empty or "spearman" not in per_class:
        result.skipped = "the analysis JSON has no per-class ranking statistics"
        return None
    per_class["spearman"] = pd.to_numeric(per_class["spearman"], errors="coerce")
    return lambda: figures.plot_per_class_spearman(per_class, colors=colors)


def _olrp_components(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    lrp = headline_table(inputs)[["moLRP", "moLRP_loc", "moLRP_FP", "moLRP_FN"]]
    return lambda: figures.plot_olrp_components(lrp, colors=colors)


def _pr_curve(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    curves = _pr(inputs)
    ap50 = {m.label: _finite(m.record["coco"].get("AP50")) for m in inputs.models}
    iou = _finite(inputs.models[0].record["pr_curve"].get("iou")) or 0.5
    result.title = f"Precision–recall at IoU {iou:g}"
    return lambda: figures.plot_pr_curves(curves, ap50, colors=colors, iou=iou)


def _training_curves(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    if not inputs.runs:
        result.skipped = "no run directory among the inputs"
        return None
    metrics = pd.concat([r.metrics.assign(label=r.label) for r in inputs.runs], ignore_index=True)
    result.narrow_draw = lambda: figures.plot_training_curves(metrics, colors=colors, ncols=2)
    return lambda: figures.plot_training_curves(metrics, colors=colors)


def _balance(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    if not inputs.balances:
        result.skipped = "no check-balance JSON among the inputs"
        return None
    trials = pd.concat(
        [b.trials.assign(source=b.label) for b in inputs.balances], ignore_index=True
    )
    if trials.empty:
        result.skipped = "the check-balance JSON has no trials"
        return None
    return lambda: figures.plot_balance(trials)


def _comparison(inputs: ReportInputs, result: FigureResult, colors: Colors) -> Draw | None:
    if len(inputs.models) < 2:
        result.skipped = f"needs two or more models; the inputs hold {len(inputs.models)}"
        return None
    headline = headline_table(inputs)
    return lambda: figures.plot_comparison(headline, colors=colors)


#: How each figure gets its data from the inputs (None: skipped, reason in the result).
_PREPARE: dict[str, Callable[[ReportInputs, FigureResult, Colors], Draw | None]] = {
    "score_vs_iou": _score_vs_iou,
    "iou_by_score_decile": _iou_by_score_decile,
    "per_class_spearman": _per_class_spearman,
    "olrp_components": _olrp_components,
    "pr_curve": _pr_curve,
    "training_curves": _training_curves,
    "balance": _balance,
    "comparison": _comparison,
}
_FROM_ANALYSIS = {"score_vs_iou", "iou_by_score_decile", "per_class_spearman"}
_FROM_ANALYSIS |= {"olrp_components", "pr_curve"}


def _figure_data(inputs: ReportInputs, result: FigureResult) -> Draw | None:
    """A thunk drawing figure ``result.key``, or None after setting ``result.skipped``."""
    if result.key in _FROM_ANALYSIS and not inputs.models:
        result.skipped = "no analysis JSON among the inputs"
        return None
    # One colour per label across all figures: a run named like a model shares its colour.
    colors = figures.model_colors([m.label for m in inputs.models] + [r.label for r in inputs.runs])
    return _PREPARE[result.key](inputs, result, colors)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _inches(fig: Figure) -> tuple[float, float]:
    width, height = fig.get_size_inches()
    return float(width), float(height)


def save_figure(fig: Figure, stem: Path, formats: Sequence[str], *, dpi: int) -> dict[str, Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format, each file atomically."""
    written = {}
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
        # Inside the theme: font embedding (TrueType, not Type 3) is read when saving.
        with atomic_path(target) as tmp, rc_context(THEME):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata[fmt])
        written[fmt] = target
    return written


def make_figures(
    inputs: ReportInputs,
    out: Path,
    *,
    formats: Sequence[str] = ("png",),
    dpi: int = 200,
    on_figure: Callable[[FigureResult], None] | None = None,
) -> list[FigureResult]:
    """Draw and save every figure with data under ``out/figures``; return all eight results.

    All data is gathered (and checked) before the first file is written, so bad input
    leaves the output folder as it was.
    """
    results = [
        FigureResult(number=number, key=key, title=title, caption=caption)
        for number, (key, title, caption) in enumerate(FIGURES, start=1)
    ]
    draws = [_figure_data(inputs, result) for result in results]
    # The narrow variant is only for the HTML page, in the format the page embeds.
    shown = [f for f in ("png", "svg") if f in formats][:1]
    for result, draw in zip(results, draws, strict=True):
        stem = out / "figures" / f"{result.number:02d}_{result.key}"
        narrow_stem = stem.with_name(f"{stem.name}-narrow")
        if draw is not None:
            fig = draw()
            result.size = _inches(fig)
            result.files = save_figure(fig, stem, formats, dpi=dpi)
            if result.narrow_draw is not None and shown:
                fig = result.narrow_draw()
                result.narrow_size = _inches(fig)
                result.narrow = save_figure(fig, narrow_stem, shown, dpi=dpi)
        # A figure or format this run did not write must not linger from an earlier run.
        for fmt in FORMATS:
            if fmt not in result.files:
                stem.with_suffix(f".{fmt}").unlink(missing_ok=True)
            if fmt not in result.narrow:
                narrow_stem.with_suffix(f".{fmt}").unlink(missing_ok=True)
        if on_figure is not None:
            on_figure(result)
    return results
