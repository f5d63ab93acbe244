"""Tables of an analysis as pandas DataFrames, and their CSV files.

``classes_table`` has one row per class with ground truth; ``detections_table`` one row
per detection (the files ``alrp report`` reads; columns documented in docs/analyze.md).
pandas is imported when a table is made: ``alrp analyze`` prints its per-class rows
(:func:`class_rows`) without it unless ``--csv-dir`` asks for the files.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from alrp_cli.atomic import atomic_path
from analysis.matching import CUT, FP, STATUS_NAMES, TP
from analysis.pipeline import LOSS_KEYS, AnalysisResult

if TYPE_CHECKING:
    import pandas as pd

DETECTION_COLUMNS = (
    "image_id",
    "category_id",
    "category",
    "score",
    "rank",
    "gt_id",
    "iou",
    "status",
)
CLASS_COLUMNS = (
    "category_id",
    "name",
    "n_gt",
    "n_det",
    "n_tp",
    "n_fp",
    "n_ignored",
    "AP",
    "AP50",
    "oLRP",
    "oLRP_loc",
    "oLRP_FP",
    "oLRP_FN",
    "threshold",
    *LOSS_KEYS,
    "spearman",
    "kendall",
    "concordant_share",
)


def classes_table(result: AnalysisResult) -> pd.DataFrame:
    """One row per class with ground truth (columns ``CLASS_COLUMNS``), by category id."""
    import pandas as pd

    return pd.DataFrame(class_rows(result), columns=list(CLASS_COLUMNS))


def class_rows(result: AnalysisResult) -> list[dict[str, Any]]:
    """The rows of :func:`classes_table` as dicts (keys ``CLASS_COLUMNS``), by category id."""
    p, m = result.predictions, result.matches
    counts = {}
    if p is not None and m is not None and result.gt is not None:
        k = np.searchsorted(result.gt.cat_ids, p.category_id)
        nk = len(result.gt.cat_ids)
        counts = {
            "n_det": np.bincount(k, minlength=nk),
            "n_ignored": np.bincount(k[(m.status != TP) & (m.status != FP)], minlength=nk),
        }
    rows = []
    losses = {r["category_id"]: r for r in result.losses["per_class"]}
    ranks = {r["category_id"]: r for r in result.ranking["per_class"]}
    for r in result.lrp["per_class"]:
        cid = r["category_id"]
        ap, ap50 = result.per_class_ap.get(cid, (float("nan"), float("nan")))
        j = int(np.searchsorted(result.gt.cat_ids, cid)) if result.gt is not None else -1
        rows.append(
            {
                "category_id": cid,
                "name": r["name"],
                "n_gt": r["n_gt"],
                "n_det": int(counts["n_det"][j]) if counts else r["n_tp"] + r["n_fp"],
                "n_tp": r["n_tp"],
                "n_fp": r["n_fp"],
                "n_ignored": int(counts["n_ignored"][j]) if counts else 0,
                "AP": ap,
                "AP50": ap50,
                **{k: r[k] for k in ("oLRP", "oLRP_loc", "oLRP_FP", "oLRP_FN", "threshold")},
                **{k: losses[cid][k] for k in LOSS_KEYS},
                **{k: ranks[cid][k] for k in ("spearman", "kendall", "concordant_share")},
            }
        )
    return rows


def detections_table(result: AnalysisResult) -> pd.DataFrame:
    """One row per detection (columns ``DETECTION_COLUMNS``), by class then rank.

    ``rank``: 1-based within the class by descending score (ties: image id, then file
    order), over all the class's detections; ``gt_id``: the matched ground truth's id in
    the ground-truth file (empty when none); ``iou``: IoU with it (empty when none);
    ``status``: tp, fp or ignored (matched to a crowd / out-of-range ground truth, or
    beyond max-dets in its image and class).
    """
    import pandas as pd

    p, m, gt = result.predictions, result.matches, result.gt
    if p is None or m is None or gt is None:
        raise ValueError("this AnalysisResult carries no per-detection data")
    cat_idx = np.searchsorted(gt.cat_ids, p.category_id)
    order = np.lexsort((p.index, p.image_id, -p.score, cat_idx))
    c_sorted = cat_idx[order]
    starts = np.searchsorted(c_sorted, c_sorted, side="left")
    rank = np.arange(len(order)) - starts + 1
    gt_row = m.gt[order]
    gt_id = pd.array(np.where(gt_row >= 0, gt.ann_id[np.maximum(gt_row, 0)], 0), dtype="Int64")
    gt_id[gt_row < 0] = pd.NA
    names = np.array([gt.cat_names[int(c)] for c in gt.cat_ids], dtype=object)
    status_names = np.array([STATUS_NAMES[i] for i in range(CUT + 1)], dtype=object)
    return pd.DataFrame(
        {
            "image_id": p.image_id[order],
            "category_id": p.category_id[order],
            "category": names[c_sorted] if len(order) else np.zeros(0, dtype=object),
            "score": p.score[order],
            "rank": rank,
            "gt_id": gt_id,
            "iou": m.iou[order],
            "status": status_names[m.status[order]],
        },
        columns=list(DETECTION_COLUMNS),
    )


def safe_label(label: str) -> str:
    """``label`` made safe as a file name part (other characters become '_')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "predictions"


def write_csvs(result: AnalysisResult, csv_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``<label>.detections.csv`` and ``<label>.classes.csv`` atomically into csv_dir.

    Floats keep full precision; NaN is an empty field. Records the paths in
    ``result.csv`` and returns them.
    """
    base = os.path.join(os.fspath(csv_dir), safe_label(result.label))
    paths = {"detections": f"{base}.detections.csv", "classes": f"{base}.classes.csv"}
    for key, table in (
        ("detections", detections_table(result)),
        ("classes", classes_table(result)),
    ):
        with atomic_path(paths[key]) as tmp:
            table.to_csv(tmp, index=False)
    result.csv.update(paths)
    return paths
