"""Read and validate COCO results files (predictions) against their ground truth.

Validation runs before any work and is column-wise (a few C-level passes over the
records, no per-record Python checks), so half a million detections validate in about
a second. A bad record gives a one-line :class:`~alrp_cli.errors.UserError` naming the
file, the record index and the problem; with ``lenient=True`` bad records are dropped
and counted per kind instead.

The ground truth side lives in :mod:`analysis.ground_truth`; ``load_gt``,
``GroundTruth`` and ``read_json`` are re-exported here for callers of this module.
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alrp_cli.errors import UserError
from analysis.ground_truth import GroundTruth, load_gt
from analysis.jsonio import is_int, is_num, json_type, read_json

__all__ = [
    "PREDICTION_KEYS",
    "SKIP_KINDS",
    "GroundTruth",
    "Predictions",
    "load_gt",
    "load_predictions",
    "predictions_from_arrays",
    "read_json",
]

PREDICTION_KEYS = ("image_id", "category_id", "bbox", "score")

# Kinds of bad prediction records, in the order they are checked; the names are the
# keys of ``Predictions.skipped`` and of the JSON ``skipped`` object.
SKIP_KINDS = (
    "not_an_object",
    "missing_key",
    "bad_type",
    "bad_bbox",
    "bad_score",
    "unknown_image",
    "unknown_category",
)

_MISSING = object()


@dataclass
class Predictions:
    """Validated detections as columns, in file order (bad records removed when lenient)."""

    path: str
    image_id: np.ndarray  # int64 (D,)
    category_id: np.ndarray  # int64 (D,)
    bbox: np.ndarray  # float64 (D, 4) x, y, w, h
    score: np.ndarray  # float64 (D,)
    index: np.ndarray  # int64 (D,): each detection's record index in the file
    n_records: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    # The parsed records of a file this module read itself (so they are ours to reuse as
    # the COCO evaluator's annotation dicts, saving a second dict per detection); None
    # for caller-owned lists.
    records: list[dict] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.score)


def load_predictions(
    predictions: Any,
    gt: GroundTruth | Any,
    *,
    lenient: bool = False,
    name: str | None = None,
) -> Predictions:
    """Load and validate a COCO results file against its ground truth.

    ``predictions`` is a path or an already-loaded list of dicts ``{image_id,
    category_id, bbox [x, y, w, h], score}``. Checked: the file parses, the top level is
    a list, every record is an object with those keys and types, bbox finite with
    positive width and height, score finite in [0, 1], image and category ids present in
    the ground truth. An empty list is valid.

    Raises UserError("<file>: record <i>: <problem>") on the first bad record; with
    ``lenient=True`` drops bad records and counts them in ``.skipped`` by kind
    (see ``SKIP_KINDS``). Top-level problems are errors even when lenient.
    """
    gt = load_gt(gt)
    if isinstance(predictions, str | os.PathLike):
        name = name or str(predictions)
        records = read_json(predictions, "COCO results")
    else:
        name = name or "<predictions>"
        records = predictions
    if isinstance(records, dict) and "annotations" in records and "images" in records:
        raise UserError(
            f"{name}: is a COCO instances (ground truth) file, expected a results list "
            "[{image_id, category_id, bbox, score}, ...]"
        )
    if not isinstance(records, list):
        raise UserError(
            f"{name}: top level is {json_type(records)}, expected a list of "
            "{image_id, category_id, bbox, score} objects"
        )
    preds = _validate_records(name, records, gt, lenient)
    if isinstance(predictions, str | os.PathLike):
        preds.records = records
    return preds


def _validate_records(name: str, records: list, gt: GroundTruth, lenient: bool) -> Predictions:
    n = len(records)
    original = records
    # kind[i] = 1 + index into SKIP_KINDS of the first failed check, 0 when the record is good.
    kind = np.zeros(n, dtype=np.int8)

    def flag(bad: np.ndarray, k: str) -> None:
        kind[(kind == 0) & bad] = SKIP_KINDS.index(k) + 1

    is_dict = np.fromiter((type(r) is dict for r in records), dtype=bool, count=n)
    if not is_dict.all():
        flag(~is_dict, "not_an_object")
        records = [r if type(r) is dict else {} for r in records]
    cols = {k: [r.get(k, _MISSING) for r in records] for k in PREDICTION_KEYS}
    for k in PREDICTION_KEYS:
        col = cols[k]
        flag(
            np.fromiter(map(operator.is_, col, itertools.repeat(_MISSING)), bool, n), "missing_key"
        )

    # Types: image_id / category_id integers, score a number, bbox a list of 4 numbers.
    good_types: dict[str, np.ndarray] = {}
    for k, allowed, check in (
        ("image_id", {int}, is_int),
        ("category_id", {int}, is_int),
        ("score", {int, float}, is_num),
    ):
        col = cols[k]
        if set(map(type, col)) <= allowed:
            good_types[k] = np.ones(n, dtype=bool)
        else:
            good_types[k] = np.fromiter(map(check, col), dtype=bool, count=n)
    bcol = cols["bbox"]
    if set(map(type, bcol)) <= {list} and set(map(len, bcol)) <= {4}:
        elem_types = set(map(type, itertools.chain.from_iterable(bcol)))
        bbox_ok = (
            np.ones(n, dtype=bool)
            if elem_types <= {int, float}
            else np.fromiter((_is_box(b) for b in bcol), dtype=bool, count=n)
        )
    else:
        bbox_ok = np.fromiter((_is_box(b) for b in bcol), dtype=bool, count=n)
    bbox_ok &= kind == 0
    flag(~(good_types["image_id"] & good_types["category_id"] & good_types["score"]), "bad_type")
    flag(~bbox_ok, "bad_type")
    ok = kind == 0

    # Values, on the records whose types are right (others get placeholders).
    if ok.all():
        img = np.array(cols["image_id"], dtype=np.int64) if n else np.zeros(0, np.int64)
        cat = np.array(cols["category_id"], dtype=np.int64) if n else np.zeros(0, np.int64)
        score = np.array(cols["score"], dtype=np.float64) if n else np.zeros(0)
        bbox = np.array(bcol, dtype=np.float64).reshape(n, 4)
    else:
        img = np.array(
            [v if g else 0 for v, g in zip(cols["image_id"], ok, strict=True)], dtype=np.int64
        )
        cat = np.array(
            [v if g else 0 for v, g in zip(cols["category_id"], ok, strict=True)], dtype=np.int64
        )
        score = np.array(
            [v if g else 0.0 for v, g in zip(cols["score"], ok, strict=True)], dtype=np.float64
        )
        bbox = np.array(
            [b if g else (0.0, 0.0, 1.0, 1.0) for b, g in zip(bcol, ok, strict=True)],
            dtype=np.float64,
        ).reshape(n, 4)
    with np.errstate(invalid="ignore"):
        flag(~(np.isfinite(bbox).all(axis=1) & (bbox[:, 2] > 0) & (bbox[:, 3] > 0)), "bad_bbox")
        flag(~(np.isfinite(score) & (score >= 0) & (score <= 1)), "bad_score")
    flag(~np.isin(img, gt.image_ids), "unknown_image")
    flag(~np.isin(cat, gt.cat_ids), "unknown_category")

    bad = np.flatnonzero(kind)
    skipped: dict[str, int] = {}
    if len(bad):
        if not lenient:
            i = int(bad[0])
            k = SKIP_KINDS[kind[i] - 1]
            raise UserError(f"{name}: record {i}: {_explain(k, original[i], gt)}")
        counts = np.bincount(kind[bad], minlength=len(SKIP_KINDS) + 1)
        skipped = {k: int(counts[j + 1]) for j, k in enumerate(SKIP_KINDS) if counts[j + 1]}
    keep = kind == 0
    return Predictions(
        path=name,
        image_id=img[keep],
        category_id=cat[keep],
        bbox=bbox[keep],
        score=score[keep],
        index=np.flatnonzero(keep).astype(np.int64),
        n_records=n,
        skipped=skipped,
    )


def _is_box(b: Any) -> bool:
    return isinstance(b, list | tuple | np.ndarray) and len(b) == 4 and all(map(is_num, b))


def _explain(kind: str, rec: Any, gt: GroundTruth) -> str:
    """The one-line reason a record failed check ``kind``."""
    if kind == "not_an_object":
        return f"is {json_type(rec)}, expected an object {{image_id, category_id, bbox, score}}"
    if kind == "missing_key":
        missing = [k for k in PREDICTION_KEYS if k not in rec]
        return f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
    if kind == "bad_type":
        for k in ("image_id", "category_id"):
            if not is_int(rec[k]):
                return f"'{k}' is {json_type(rec[k])} ({rec[k]!r:.40}), expected an integer"
        if not is_num(rec["score"]):
            return f"'score' is {json_type(rec['score'])}, expected a number"
        return f"'bbox' must be a list of 4 numbers [x, y, w, h], got {rec['bbox']!r:.60}"
    if kind == "bad_bbox":
        return f"'bbox' {rec['bbox']} must be finite with positive width and height"
    if kind == "bad_score":
        return f"'score' {rec['score']!r} must be a finite number in [0, 1]"
    if kind == "unknown_image":
        return f"image_id {rec['image_id']} is not in the ground truth ({gt.path})"
    if kind == "unknown_category":
        return f"category_id {rec['category_id']} is not in the ground truth ({gt.path})"
    raise AssertionError(kind)  # pragma: no cover


def predictions_from_arrays(
    image_id: Sequence[int] | np.ndarray,
    category_id: Sequence[int] | np.ndarray,
    bbox: Sequence[Sequence[float]] | np.ndarray,
    score: Sequence[float] | np.ndarray,
    *,
    name: str = "<predictions>",
) -> Predictions:
    """Wrap already-valid columns (e.g. from a model) as Predictions, without re-checking."""
    score = np.asarray(score, dtype=np.float64)
    return Predictions(
        path=name,
        image_id=np.asarray(image_id, dtype=np.int64),
        category_id=np.asarray(category_id, dtype=np.int64),
        bbox=np.asarray(bbox, dtype=np.float64).reshape(-1, 4),
        score=score,
        index=np.arange(len(score), dtype=np.int64),
        n_records=len(score),
    )
