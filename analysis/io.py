"""Read and validate COCO results files (predictions) against their ground truth.

A results file is read straight into numpy columns, never a dict per detection kept
for the whole file: the file is read in blocks of a few MiB, each block is cut after its
last complete record and decoded by msgspec into small typed structs (image_id,
category_id, bbox, score; other keys skipped), whose values go into column chunks that
are validated with a few numpy passes and then dropped. Peak memory is the columns
(64 bytes per detection) plus one block. A cut is verified by the decoder itself: a
piece ``[`` + records + ``]`` parses only when the cut falls between two top-level
records. Anything unusual (a top level that is not a list, malformed JSON, NaN literals)
falls back to reading the whole file with the standard library, which gives the
messages of :func:`~analysis.jsonio.read_json`.

Validation is column-wise. A block with a bad record is decoded again as plain
dicts and checked record by record, so a bad record gives the same one-line
:class:`~alrp_cli.errors.UserError` naming the file, the record index and the problem;
with ``lenient=True`` bad records are dropped and counted per kind instead.

The ground truth side lives in :mod:`analysis.ground_truth`.
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from alrp_cli.errors import UserError
from analysis.ground_truth import GroundTruth, load_gt
from analysis.jsonio import is_int, is_num, json_type, read_json

__all__ = [
    "PREDICTION_KEYS",
    "SKIP_KINDS",
    "Predictions",
    "load_predictions",
    "predictions_from_arrays",
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
        streamed = _read_columns(Path(predictions), name, gt, lenient)
        if streamed is not None:
            return streamed
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
    return _validate_records(name, records, gt, lenient)


class _Det(msgspec.Struct, gc=False):
    """One results record as the fast path decodes it (other keys are skipped)."""

    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    score: float


_DECODE_TYPED = msgspec.json.Decoder(list[_Det]).decode
_DECODE_PLAIN = msgspec.json.Decoder().decode
BLOCK_BYTES = 1 << 22


class _Fallback(Exception):
    """The streaming reader cannot handle this file; read it whole instead."""


def _pieces(path: Path, block_bytes: int) -> Iterator[bytes]:
    """The file's top-level list as pieces ``[rec, rec, ...]``, each valid JSON on its own.

    Raises _Fallback when the file does not start with ``[`` or a cut cannot be made.
    A cut is placed after the last ``}`` followed by ``,`` in the bytes read so far; the
    caller's decoder verifies it (a piece parses only when the cut is between records).
    """
    with open(path, "rb") as f:
        pending = f.read(block_bytes).lstrip()
        if not pending.startswith(b"["):
            raise _Fallback
        pending = pending[1:]
        while True:
            more = f.read(block_bytes)
            if not more:
                tail = pending.rstrip()
                if not tail.endswith(b"]"):
                    raise _Fallback
                yield b"[" + tail
                return
            pending += more
            cut = _last_cut(pending)
            if cut is None:
                continue
            end, resume = cut
            yield b"[" + pending[:end] + b"]"
            pending = pending[resume:]


def _last_cut(buf: bytes) -> tuple[int, int] | None:
    """(end of the last record followed by a comma, start of what follows), or None."""
    pos = len(buf)
    while True:
        pos = buf.rfind(b"}", 0, pos)
        if pos < 0:
            return None
        j = pos + 1
        while j < len(buf) and buf[j] in b" \t\r\n":
            j += 1
        if j < len(buf) and buf[j] == ord(","):
            return pos + 1, j + 1
        if j >= len(buf):  # the comma may be in the next block: cut earlier
            continue
        # "}" inside a record (a nested object) or a string: look further back


def _read_columns(path: Path, name: str, gt: GroundTruth, lenient: bool) -> Predictions | None:
    """Stream a results file into validated columns; None when it must be read whole."""
    try:
        size = path.stat().st_size
    except OSError:
        return None  # read_json gives the message
    if size == 0 or not path.is_file():
        return None
    parts: list[Predictions] = []
    offset = 0
    try:
        for piece in _pieces(path, BLOCK_BYTES):
            try:
                part = _typed_chunk(piece, gt, offset)
            except (msgspec.ValidationError, OverflowError):  # OverflowError: an id ≥ 2⁶³
                part = None
            if part is None:  # a bad record: check this piece record by record
                records = _DECODE_PLAIN(piece)
                part = _validate_records(name, records, gt, lenient, offset=offset)
            parts.append(part)
            offset += part.n_records
    except (_Fallback, msgspec.DecodeError, OSError, OverflowError):
        return None
    skipped: dict[str, int] = {}
    for p in parts:
        for k, v in p.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    skipped = {k: skipped[k] for k in SKIP_KINDS if k in skipped}
    cols = {}
    shapes = {"image_id": (0,), "category_id": (0,), "bbox": (0, 4), "score": (0,)}
    for key, empty in shapes.items():
        dtype = np.float64 if key in ("bbox", "score") else np.int64
        chunks = [getattr(p, key) for p in parts]
        cols[key] = np.concatenate(chunks) if chunks else np.zeros(empty, dtype)
        for p in parts:  # free each chunk as soon as it is copied
            setattr(p, key, None)
    index = [p.index for p in parts]
    return Predictions(
        path=name,
        index=np.concatenate(index) if index else np.zeros(0, np.int64),
        n_records=offset,
        skipped=skipped,
        **cols,
    )


def _typed_chunk(piece: bytes, gt: GroundTruth, offset: int) -> Predictions | None:
    """Columns of one piece decoded as typed records; None when a record fails a check."""
    dets = _DECODE_TYPED(piece)
    n = len(dets)
    img = np.fromiter(map(operator.attrgetter("image_id"), dets), np.int64, n)
    cat = np.fromiter(map(operator.attrgetter("category_id"), dets), np.int64, n)
    score = np.fromiter(map(operator.attrgetter("score"), dets), np.float64, n)
    bbox = np.fromiter(
        itertools.chain.from_iterable(map(operator.attrgetter("bbox"), dets)), np.float64, 4 * n
    ).reshape(n, 4)
    del dets
    with np.errstate(invalid="ignore"):
        ok = (
            _boxes_ok(bbox)
            & (score >= 0)
            & (score <= 1)
            & _isin_sorted(img, gt.image_ids)
            & _isin_sorted(cat, gt.cat_ids)
        )
    if not ok.all():
        return None
    return Predictions(
        path="",
        image_id=img,
        category_id=cat,
        bbox=bbox,
        score=score,
        index=np.arange(offset, offset + n, dtype=np.int64),
        n_records=n,
    )


def _boxes_ok(bbox: np.ndarray) -> np.ndarray:
    """bool (D,): each [x, y, w, h] of ``bbox`` (D, 4) is finite with w, h > 0, and its far
    corner and its area are finite too (1e308 wide would overflow every IoU)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (
            np.isfinite(bbox).all(axis=1)
            & (bbox[:, 2] > 0)
            & (bbox[:, 3] > 0)
            & np.isfinite(bbox[:, :2] + bbox[:, 2:]).all(axis=1)
            & np.isfinite(bbox[:, 2] * bbox[:, 3])
        )


def _isin_sorted(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """bool: each value is in ``sorted_unique`` (one binary search each)."""
    if len(sorted_unique) == 0:
        return np.zeros(len(values), dtype=bool)
    i = np.minimum(np.searchsorted(sorted_unique, values), len(sorted_unique) - 1)
    return sorted_unique[i] == values


def _validate_records(
    name: str, records: list, gt: GroundTruth, lenient: bool, *, offset: int = 0
) -> Predictions:
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

    # Ids beyond int64 cannot be in the ground truth: placeholders, flagged unknown below.
    huge = {}
    for k in ("image_id", "category_id"):
        huge[k] = np.zeros(n, dtype=bool)
        if ok.any() and not all(-(2**63) <= v < 2**63 for v in itertools.compress(cols[k], ok)):
            huge[k] = ok & np.fromiter(
                (is_int(v) and not -(2**63) <= v < 2**63 for v in cols[k]), bool, n
            )
            cols[k] = [0 if h else v for v, h in zip(cols[k], huge[k], strict=True)]

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
        flag(~_boxes_ok(bbox), "bad_bbox")
        flag(~(np.isfinite(score) & (score >= 0) & (score <= 1)), "bad_score")
    flag(~_isin_sorted(img, gt.image_ids) | huge["image_id"], "unknown_image")
    flag(~_isin_sorted(cat, gt.cat_ids) | huge["category_id"], "unknown_category")

    bad = np.flatnonzero(kind)
    skipped: dict[str, int] = {}
    if len(bad):
        if not lenient:
            i = int(bad[0])
            k = SKIP_KINDS[kind[i] - 1]
            raise UserError(f"{name}: record {offset + i}: {_explain(k, original[i], gt)}")
        counts = np.bincount(kind[bad], minlength=len(SKIP_KINDS) + 1)
        skipped = {k: int(counts[j + 1]) for j, k in enumerate(SKIP_KINDS) if counts[j + 1]}
    keep = kind == 0
    return Predictions(
        path=name,
        image_id=img[keep],
        category_id=cat[keep],
        bbox=bbox[keep],
        score=score[keep],
        index=np.flatnonzero(keep).astype(np.int64) + offset,
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
        return (
            f"'bbox' {rec['bbox']} must be finite with positive width and height, and a "
            "finite far corner (x + w, y + h) and area"
        )
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
