"""``analyze()``: every number of ``alrp analyze`` for one predictions file.

Pipeline: load + validate into columns (analysis.io) -> one COCOeval-exact matching pass
for the 40 COCO settings and τ (analysis.matching) -> the 12 COCO numbers from it
(analysis.coco) -> per class: oLRP (analysis.lrp), loss values (analysis.loss_values),
ranking statistics (analysis.ranking).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alrp_cli.errors import UserError
from analysis import coco as coco_mod
from analysis.ground_truth import GroundTruth, load_gt
from analysis.io import Predictions, load_predictions
from analysis.loss_values import LOSS_KEYS, check_delta, class_losses, single_thread
from analysis.lrp import ClassLRP, class_olrp, mean_defined
from analysis.matching import CUT, FP, TP, Matches, match_all
from analysis.ranking import iou_by_score_decile, rank_correlations

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: called as each phase advances (for a progress bar)."""

RANK_KEYS = ("spearman", "kendall", "concordant_share", "n_tp")


@dataclass
class AnalysisResult:
    """The analysis of one predictions file. ``to_dict()`` is its JSON form."""

    label: str
    path: str
    n_detections: int
    skipped: dict[str, int]
    coco: dict[str, float]
    molrp: float
    lrp: dict[str, Any]
    losses: dict[str, Any]
    ranking: dict[str, Any]
    pr_curve: dict[str, Any]
    per_class_ap: dict[int, tuple[float, float]] = field(repr=False, default_factory=dict)
    csv: dict[str, str | None] = field(
        default_factory=lambda: {"detections": None, "classes": None}
    )
    # Inputs kept for the per-detection table.
    gt: GroundTruth | None = field(repr=False, default=None)
    predictions: Predictions | None = field(repr=False, default=None)
    matches: Matches | None = field(repr=False, default=None)

    def to_dict(self) -> dict[str, Any]:
        """The file's entry of the analysis JSON (schema in docs/analyze.md)."""
        return {
            "label": self.label,
            "path": self.path,
            "n_detections": self.n_detections,
            "skipped": dict(self.skipped),
            "coco": dict(self.coco),
            "lrp": self.lrp,
            "losses": self.losses,
            "ranking": self.ranking,
            "pr_curve": self.pr_curve,
            "csv": dict(self.csv),
        }


def _noop(phase: str, done: int, total: int) -> None:
    return None


def resolve_classes(gt: GroundTruth, classes: Sequence[str | int] | None) -> np.ndarray | None:
    """Category ids named by ``classes`` (names or ids), or None for all.

    Raises UserError naming an unknown class.
    """
    if classes is None:
        return None
    by_name = {name: cid for cid, name in gt.cat_names.items()}
    ids = []
    for c in classes:
        if isinstance(c, str):
            c = c.strip()
            if c in by_name:
                ids.append(by_name[c])
                continue
            if c.lstrip("-").isdigit() and int(c) in gt.cat_names:
                ids.append(int(c))
                continue
        elif isinstance(c, int) and c in gt.cat_names:
            ids.append(c)
            continue
        raise UserError(f"--classes: {c!r} is neither a category name nor an id in {gt.path}")
    if not ids:
        raise UserError("--classes: no class given")
    return np.unique(np.array(ids, dtype=np.int64))


def restrict_gt(gt: GroundTruth, cat_ids: np.ndarray) -> GroundTruth:
    """The ground truth restricted to categories ``cat_ids`` (all images kept)."""
    keep = np.isin(gt.category_id, cat_ids)
    return GroundTruth(
        path=gt.path,
        image_ids=gt.image_ids,
        cat_ids=np.asarray(cat_ids, dtype=np.int64),
        cat_names={int(c): gt.cat_names[int(c)] for c in cat_ids},
        ann_id=gt.ann_id[keep],
        image_id=gt.image_id[keep],
        category_id=gt.category_id[keep],
        bbox=gt.bbox[keep],
        area=gt.area[keep],
        iscrowd=gt.iscrowd[keep],
        images=gt.images,
    )


def _restrict_predictions(p: Predictions, cat_ids: np.ndarray) -> Predictions:
    keep = np.isin(p.category_id, cat_ids)
    return Predictions(
        path=p.path,
        image_id=p.image_id[keep],
        category_id=p.category_id[keep],
        bbox=p.bbox[keep],
        score=p.score[keep],
        index=p.index[keep],
        n_records=p.n_records,
        skipped=p.skipped,
    )


def check_options(*, iou_threshold: float, max_dets: int, delta: float) -> float:
    """Validate analyze()'s numeric options (UserError naming the option); returns δ as float."""
    if not (isinstance(iou_threshold, int | float) and 0.0 < iou_threshold < 1.0):
        raise UserError(f"--iou-threshold must be in (0, 1), got {iou_threshold}")
    if isinstance(max_dets, bool) or not (isinstance(max_dets, int) and max_dets >= 1):
        raise UserError(f"--max-dets must be a positive integer, got {max_dets}")
    try:
        return check_delta(delta)
    except ValueError as err:
        raise UserError(f"--delta: {err}") from None


def analyze(
    predictions: Any,
    gt: Any,
    *,
    label: str | None = None,
    iou_threshold: float = 0.5,
    max_dets: int = 100,
    delta: float = 0.0,
    classes: Sequence[str | int] | None = None,
    progress: Progress | None = None,
    lenient: bool = False,
) -> AnalysisResult:
    """Analyse one detector's predictions against COCO ground truth.

    ``predictions``: a COCO results path, a list of ``{image_id, category_id, bbox,
    score}`` dicts, or validated :class:`~analysis.io.Predictions`. ``gt``: a COCO
    instances path, dict, ``COCO`` object or :class:`~analysis.io.GroundTruth`.
    ``iou_threshold`` τ for matching, LRP and the loss values (COCO numbers always use
    COCO's 0.5:0.95); ``max_dets`` per image and class for LRP, losses and ranking;
    ``delta`` δ ≥ 0 of the losses' smoothed step (0: exact ranking; > 0 on logit(score));
    ``classes`` names or ids to restrict to; ``progress(phase, done, total)`` callback.
    Raises UserError on bad input (see :func:`analysis.io.load_predictions`).
    """
    delta = check_options(iou_threshold=iou_threshold, max_dets=max_dets, delta=delta)
    progress = progress or _noop
    progress("loading", 0, 1)
    gt = load_gt(gt)
    if isinstance(predictions, Predictions):
        preds = predictions
    else:
        preds = load_predictions(predictions, gt, lenient=lenient)
    path = preds.path
    if label is None:  # the file's stem, when there is a file
        label = "predictions" if path.startswith("<") else Path(path).stem
    cat_sel = resolve_classes(gt, classes)
    if cat_sel is not None:
        gt = restrict_gt(gt, cat_sel)
        preds = _restrict_predictions(preds, cat_sel)
    progress("loading", 1, 1)

    progress("matching", 0, 1)
    mp = match_all(preds, gt, iou_threshold=iou_threshold, max_dets=max_dets)
    m = mp.matches
    progress("matching", 1, 1)

    progress("COCO evaluation", 0, 1)
    ce = coco_mod.coco_eval(preds, gt, mp)
    order = mp.pooled[m.status[mp.pooled] != CUT]  # the detections LRP evaluates
    del mp  # the per-setting codes are not needed any more
    ap, ap50 = coco_mod.per_class_ap(ce["precision"])
    progress("COCO evaluation", 1, 1)

    cat_idx = np.searchsorted(gt.cat_ids, preds.category_id[order])
    bounds = np.searchsorted(cat_idx, np.arange(len(gt.cat_ids) + 1))
    lrp_rows, loss_rows, rank_rows = [], [], []
    tp_scores, tp_ious = [], []
    n_classes = len(gt.cat_ids)
    with single_thread():
        for k, cid in enumerate(gt.cat_ids.tolist()):
            progress("per-class metrics", k, n_classes)
            n_gt = int(m.n_gt[k])
            if n_gt == 0:
                continue  # a class without ground truth is skipped
            idx = order[bounds[k] : bounds[k + 1]]
            st, iou, sc = m.status[idx], m.iou[idx], preds.score[idx]
            name = gt.cat_names[cid]
            c = class_olrp(st, iou, sc, n_gt, iou_threshold=iou_threshold)
            lrp_rows.append(_lrp_row(cid, name, c, int((st == TP).sum()), int((st == FP).sum())))
            lv = class_losses(st, iou, sc, iou_threshold=iou_threshold, delta=delta)
            loss_rows.append({"category_id": cid, "name": name, **lv})
            tp = st == TP
            rank_rows.append(
                {"category_id": cid, "name": name, **rank_correlations(sc[tp], iou[tp])}
            )
            tp_scores.append(sc[tp])
            tp_ious.append(iou[tp])
    progress("per-class metrics", n_classes, n_classes)

    all_s = np.concatenate(tp_scores) if tp_scores else np.zeros(0)
    all_i = np.concatenate(tp_ious) if tp_ious else np.zeros(0)
    lrp = {
        "moLRP": mean_defined([r["oLRP"] for r in lrp_rows]),
        "moLRP_loc": mean_defined([r["oLRP_loc"] for r in lrp_rows]),
        "moLRP_FP": mean_defined([r["oLRP_FP"] for r in lrp_rows]),
        "moLRP_FN": mean_defined([r["oLRP_FN"] for r in lrp_rows]),
        "per_class": lrp_rows,
    }
    losses = {
        "mean": {k: mean_defined([r[k] for r in loss_rows]) for k in LOSS_KEYS},
        "per_class": loss_rows,
    }
    ranking = {
        "pooled": rank_correlations(all_s, all_i),
        "per_class": rank_rows,
        "iou_by_score_decile": iou_by_score_decile(all_s, all_i),
    }
    return AnalysisResult(
        label=label,
        path=str(path),
        n_detections=len(preds),
        skipped=dict(preds.skipped),
        coco=ce["coco"],
        molrp=lrp["moLRP"],
        lrp=lrp,
        losses=losses,
        ranking=ranking,
        pr_curve=coco_mod.pr_curve(ce["precision"]),
        per_class_ap={
            int(c): (float(a), float(b)) for c, a, b in zip(gt.cat_ids, ap, ap50, strict=True)
        },
        gt=gt,
        predictions=preds,
        matches=m,
    )


def _lrp_row(cid: int, name: str, c: ClassLRP, n_tp: int, n_fp: int) -> dict[str, Any]:
    # n_tp / n_fp: all evaluated detections of the class (not only above the threshold).
    return {
        "category_id": cid,
        "name": name,
        "n_gt": c.n_gt,
        "n_tp": n_tp,
        "n_fp": n_fp,
        "oLRP": c.olrp,
        "oLRP_loc": c.loc,
        "oLRP_FP": c.fp,
        "oLRP_FN": c.fn,
        "threshold": c.threshold,
    }


def analysis_document(
    results: Sequence[AnalysisResult],
    *,
    gt_path: str,
    iou_threshold: float,
    max_dets: int,
    delta: float,
    json_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The analysis JSON (version 1) for several files; schema in docs/analyze.md.

    With ``json_dir`` (the folder the JSON is written to), CSV paths are written relative
    to it, so the JSON and its tables can move together.
    """
    files = [r.to_dict() for r in results]
    if json_dir is not None:
        for entry in files:
            entry["csv"] = {
                k: None if v is None else os.path.relpath(v, json_dir)
                for k, v in entry["csv"].items()
            }
    return {
        "version": 1,
        "gt": str(gt_path),
        "iou_threshold": float(iou_threshold),
        "max_dets": int(max_dets),
        "delta": float(delta),
        "files": files,
    }
