"""The ranking losses' values on one class's ranked detections (aLRP Loss, AP Loss).

The detections of a class are a loss input: TPs are positives (with their IoU: aLRP's
localisation error is e = (1 − IoU)/(1 − τ)), FPs are negatives, ignored detections are
ignored; the logits are the scores (δ = 0, the exact ranking) or logit(score) (δ > 0).
The losses and what they report are those of :mod:`alrp_cli.registry` with an
:class:`~alrp_cli.registry.AnalysisForm`; the values come from the same kernels the
training uses (:mod:`alrp_cli.losses`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch

from alrp_cli import registry
from analysis.matching import FP, TP

#: The loss values reported per class and on average: keys of :func:`class_losses`.
LOSS_KEYS = tuple(m.key for m in registry.measures())

# Scores are clipped into [EPS, 1 − EPS] before logit(), so 0 and 1 stay finite.
LOGIT_EPS = 1e-7


def class_losses(
    status: np.ndarray,
    iou: np.ndarray,
    score: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    delta: float = 0.0,
) -> dict[str, float]:
    """The losses' values (:data:`LOSS_KEYS`) of one class's detections in ranked order.

    ``status`` int8 (M,) (TP 1, FP 0, else ignored), ``iou`` float64 (M,), ``score``
    float64 (M,) in [0, 1]. Returns ``{"alrp_cls", "alrp_loc", "alrp", "ap_loss"}``
    (aLRP's cls, loc and sum, AP Loss), all NaN when the class has no TP (the losses are
    not defined without positives).
    """
    tp = status == TP
    if not tp.any():
        return dict.fromkeys(LOSS_KEYS, float("nan"))
    targets = torch.from_numpy(np.where(tp, 1, np.where(status == FP, 0, -1)).astype(np.int64))
    s = torch.from_numpy(np.ascontiguousarray(score, dtype=np.float64))
    logits = s if delta == 0 else torch.logit(s, eps=LOGIT_EPS)
    ious = torch.from_numpy(np.ascontiguousarray(iou[tp], dtype=np.float64))
    values: dict[str, float] = {}
    with torch.no_grad():
        for entry in registry.entries("analysis"):
            assert entry.analysis is not None
            values.update(entry.analysis.values(logits, targets, ious, iou_threshold, delta))
    return {k: values[k] for k in LOSS_KEYS}


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block (restored after).

    One class's loss input is small (thousands of entries): intra-op threads only add
    overhead there, and on a busy machine they made the per-class loop 25x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_delta(delta: float) -> float:
    """Validate δ ≥ 0 and finite (ValueError naming the value)."""
    if not (isinstance(delta, int | float) and math.isfinite(delta) and delta >= 0):
        raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
    return float(delta)
