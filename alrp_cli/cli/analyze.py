"""`alrp analyze`: COCO AP, oLRP, the ranking losses' values and ranking statistics of
predictions.

Thin: parses options, calls :mod:`analysis`, prints Rich tables, writes --json / --csv-dir.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from alrp_cli import registry
from alrp_cli.cli.options import JSON_HELP, table_console
from alrp_cli.cli.progress import progress_bar
from alrp_cli.errors import UserError
from alrp_cli.outputs import Outputs, write_json_output

if TYPE_CHECKING:
    from analysis.pipeline import AnalysisResult


def analyze(
    predictions: list[Path] = typer.Argument(
        ...,
        help="COCO results JSON files: [{image_id, category_id, bbox, score}, ...], or run "
        "directories of alrp train (their best evaluation's predictions).",
    ),
    gt: Path | None = typer.Option(
        None,
        "--gt",
        help="COCO instances JSON (the ground truth). Default for run directories: the one "
        "their evaluation used.",
        show_default=False,
    ),
    epoch: int | None = typer.Option(
        None,
        "--epoch",
        help="Of run directories, analyse the evaluation of this epoch (default: best AP).",
        show_default=False,
    ),
    iou_threshold: float = typer.Option(
        0.5, "--iou-threshold", help="IoU threshold τ for matching, LRP and the loss values."
    ),
    max_dets: int = typer.Option(
        100, "--max-dets", help="Detections kept per image and class (LRP, losses, ranking)."
    ),
    delta: float = typer.Option(
        0.0,
        "--delta",
        help="δ of the losses' smoothed step: 0 = exact ranking; > 0 on logit(score).",
    ),
    classes: list[str] | None = typer.Option(
        None, "--classes", help="Restrict to these classes: names or ids, comma-separated."
    ),
    label: list[str] | None = typer.Option(
        None,
        "--label",
        help="A label per predictions file, in order (default: file stem; a run: its folder).",
    ),
    json_path: Path | None = typer.Option(
        None,
        "--json",
        help="Write every number at full precision to this JSON file." + JSON_HELP,
    ),
    csv_dir: Path | None = typer.Option(
        None, "--csv-dir", help="Write <label>.classes.csv and <label>.detections.csv here."
    ),
    top: int = typer.Option(
        20, "--top", help="Per-class rows shown (most ground truth first); 0 = all."
    ),
    lenient: bool = typer.Option(
        False, "--lenient", help="Skip bad prediction records and report how many of each kind."
    ),
) -> None:
    """Measure detectors' predictions: COCO AP, oLRP, the losses' values, ranking statistics."""
    from analysis.ground_truth import load_gt
    from analysis.io import load_predictions
    from analysis.pipeline import analysis_document, check_options, resolve_classes
    from analysis.pipeline import analyze as run_analysis
    from analysis.rundir import resolve_predictions
    from analysis.tables import safe_label, write_csvs

    given = list(predictions)  # run directories as given: nothing in them may be overwritten
    predictions, gt, names = resolve_predictions(predictions, gt, epoch=epoch)
    labels = _labels(names, label)
    class_list = [c for item in classes or [] for c in item.split(",") if c.strip()] or None
    if top < 0:
        raise UserError(f"--top must be >= 0, got {top}")
    err = Console(stderr=True)

    # Validate everything before any work (and before the progress display starts).
    check_options(iou_threshold=iou_threshold, max_dets=max_dets, delta=delta)
    outputs = Outputs([*given, *predictions, gt])
    json_path = outputs.file(json_path, "--json", stdout=True)
    out = table_console(json_path, pipe_width=120)
    if outputs.folder(csv_dir, "--csv-dir") is not None:
        for lab in labels:
            for kind in ("detections", "classes"):
                outputs.file(csv_dir / f"{safe_label(lab)}.{kind}.csv", "--csv-dir")
    ground_truth = load_gt(gt)
    resolve_classes(ground_truth, class_list)
    loaded = [load_predictions(p, ground_truth, lenient=lenient) for p in predictions]
    results: list[AnalysisResult] = []
    with progress_bar(err) as progress:
        for lab, preds in zip(labels, loaded, strict=True):
            tasks: dict[str, Any] = {}

            def report(phase: str, done: int, total: int, lab: str = lab, tasks=tasks) -> None:
                if phase not in tasks:
                    tasks[phase] = progress.add_task(f"{lab}: {phase}", total=total)
                progress.update(tasks[phase], completed=done, total=total)

            results.append(
                run_analysis(
                    preds,
                    ground_truth,
                    label=lab,
                    iou_threshold=iou_threshold,
                    max_dets=max_dets,
                    delta=delta,
                    classes=class_list,
                    progress=report,
                )
            )

    with outputs.undo_on_error():
        if csv_dir is not None:
            for r in results:
                write_csvs(r, csv_dir)
        if json_path is not None:
            doc = analysis_document(
                results,
                gt_path=str(gt),
                iou_threshold=iou_threshold,
                max_dets=max_dets,
                delta=delta,
                json_dir=json_path.parent,
            )
            write_json_output(json_path, doc)

    for r in results:
        _print_file(out, r, top)
    if len(results) > 1:
        out.print(_comparison(results))
    if json_path is not None and str(json_path) != "-":
        err.print(f"wrote {json_path}")
    if csv_dir is not None:
        err.print(f"wrote CSV tables to {csv_dir}/")


def _labels(names: list[str], given: list[str] | None) -> list[str]:
    from analysis.tables import safe_label

    if given:
        if len(given) != len(names):
            raise UserError(
                f"--label: {len(given)} labels for {len(names)} predictions files "
                "(give one per file, in order)"
            )
        labels = list(given)
    else:
        labels = list(names)
        seen: dict[str, int] = {}
        for i, lab in enumerate(labels):  # same stem in two folders: a/x.json, b/x.json
            seen[lab] = seen.get(lab, 0) + 1
            if seen[lab] > 1:
                labels[i] = f"{lab}-{seen[lab]}"
    if len({safe_label(x) for x in labels}) != len(labels):
        raise UserError(f"--label: labels must be distinct, got {labels}")
    return labels


UNDEFINED_NOTE = (
    "– = undefined: no ground truth in that area range (or none at all) to measure it "
    "against; COCOeval prints -1, the JSON has null"
)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _print_file(out: Console, r: AnalysisResult, top: int) -> None:
    from analysis.tables import class_rows

    head = f"[bold]{r.label}[/bold]  {r.path}  ({r.n_detections} detections"
    if r.skipped:
        head += ", skipped: " + ", ".join(f"{k} {v}" for k, v in r.skipped.items())
    out.print(head + ")")

    summary = Table(title=f"{r.label}: summary", show_header=True)
    for name in ("COCO", "value", "LRP / losses", "value ", "ranking (TPs)", "value  "):
        summary.add_column(name, justify="right" if name.startswith("value") else "left")
    coco_rows = list(r.coco.items())
    lrp_rows = [
        ("moLRP", r.lrp["moLRP"]),
        ("moLRP loc", r.lrp["moLRP_loc"]),
        ("moLRP FP", r.lrp["moLRP_FP"]),
        ("moLRP FN", r.lrp["moLRP_FN"]),
        *[(m.label, r.losses["mean"][m.key]) for m in registry.measures()],
    ]
    pooled = r.ranking["pooled"]
    rank_rows = [
        ("Spearman", pooled["spearman"]),
        ("Kendall", pooled["kendall"]),
        ("concordant", pooled["concordant_share"]),
        ("TPs", pooled["n_tp"]),
    ]
    for i, (k, v) in enumerate(coco_rows):
        a = lrp_rows[i] if i < len(lrp_rows) else ("", "")
        b = rank_rows[i] if i < len(rank_rows) else ("", "")
        summary.add_row(k, _fmt(v), a[0], _fmt(a[1]), b[0], _fmt(b[1]))
    if any(v is None for v in r.coco.values()):
        summary.caption = UNDEFINED_NOTE
    out.print(summary)

    table = sorted(class_rows(r), key=lambda row: (-row["n_gt"], row["category_id"]))
    shown = table if top == 0 else table[:top]
    note = ""
    if len(shown) < len(table):
        note = f" (top {len(shown)} of {len(table)} by ground truth; --top 0 for all)"
    # Two narrow tables rather than one too wide for a terminal.
    quality = [
        ("name", "class"),
        ("n_gt", "GT"),
        ("n_tp", "#TP"),
        ("n_fp", "#FP"),
        ("AP", "AP"),
        ("oLRP", "oLRP"),
        ("oLRP_loc", "loc"),
        ("oLRP_FP", "FP"),
        ("oLRP_FN", "FN"),
        ("threshold", "thr"),
    ]
    ranking = [
        ("name", "class"),
        *[(m.key, m.column) for m in registry.measures()],
        ("spearman", "Spearman"),
        ("kendall", "Kendall"),
        ("concordant_share", "concord."),
    ]
    for cols, what in ((quality, "detection quality"), (ranking, "losses and ranking")):
        t = Table(title=f"{r.label}: per class, {what}{note}")
        for _, name in cols:
            if name == "class":
                t.add_column(name, max_width=16, no_wrap=True, overflow="ellipsis")
            else:
                t.add_column(name, justify="right", no_wrap=True)
        for row in shown:
            t.add_row(*[_fmt(row[c]) for c, _ in cols])
        out.print(t)

    deciles = Table(title=f"{r.label}: mean IoU of TPs per score decile (1 = lowest scores)")
    for name in ("decile", "score min", "score max", "mean IoU", "TPs"):
        deciles.add_column(name, justify="right")
    for d in r.ranking["iou_by_score_decile"]:
        deciles.add_row(
            str(d["decile"]),
            _fmt(d["score_min"]),
            _fmt(d["score_max"]),
            _fmt(d["mean_iou"]),
            str(d["n"]),
        )
    out.print(deciles)


def _comparison(results: list[AnalysisResult]) -> Table:
    from analysis.loss_values import LOSS_KEYS

    table = Table(title="comparison")
    table.add_column("metric")
    for r in results:
        table.add_column(r.label, justify="right")
    rows: list[tuple[str, list[Any]]] = [(k, [r.coco[k] for r in results]) for k in results[0].coco]
    rows += [
        (k, [r.lrp[k] for r in results]) for k in ("moLRP", "moLRP_loc", "moLRP_FP", "moLRP_FN")
    ]
    rows += [(f"loss {k}", [r.losses["mean"][k] for r in results]) for k in LOSS_KEYS]
    rows += [
        (f"rank {k}", [r.ranking["pooled"][k] for r in results])
        for k in ("spearman", "kendall", "concordant_share", "n_tp")
    ]
    for name, values in rows:
        table.add_row(name, *[_fmt(v) for v in values])
    if any(v is None for r in results for v in r.coco.values()):
        table.caption = UNDEFINED_NOTE
    return table
