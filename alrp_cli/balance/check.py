"""Theorem 2, checked numerically: Σ_{i∈P} |g_i| = Σ_{j∈N} |g_j| for the update g in
``logits.grad``.

:func:`check_balance` takes any losses (a :class:`LossSpec` or a plain callable) and any
problems, runs each loss forward and ``.backward()`` on each problem, and summarises per
loss: the relative gap |Σpos − Σneg| / Σpos, sign violations, bound violations and the
deviation from an independent reference.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from alrp_cli.balance.problems import Problem
from alrp_cli.balance.specs import LossFn, LossSpec

#: Default tolerance on the relative gap, the sign test and the reference deviation.
DEFAULT_TOLERANCE = {"float32": 1e-5, "float64": 1e-9}


@dataclass(frozen=True)
class TrialResult:
    """One loss on one problem. Sums are of |logits.grad| over positives and negatives
    (in float64). ``rel_gap`` = |sum_pos − sum_neg| / sum_pos; 0 when both sums are 0;
    infinite when sum_pos is 0 alone or a sum is not finite."""

    loss: str
    trial: int
    seed: int
    P: int
    N: int
    delta: float
    sum_pos: float
    sum_neg: float
    rel_gap: float
    loss_value: float
    sign_violation: bool
    bound_violation: bool
    ref_dev: float | None
    regime: str
    batch: int = -1

    def to_json(self) -> dict[str, Any]:
        """The trial record of the JSON report (see docs/check-balance.md)."""
        return {
            "loss": self.loss,
            "trial": self.trial,
            "seed": self.seed,
            "P": self.P,
            "N": self.N,
            "delta": self.delta,
            "sum_pos": self.sum_pos,
            "sum_neg": self.sum_neg,
            "rel_gap": self.rel_gap,
        }


@dataclass(frozen=True)
class LossSummary:
    """The per-loss summary. ``passed`` is None for losses shown for contrast only."""

    name: str
    checked: bool
    passed: bool | None
    trials: int
    worst_rel_gap: float
    median_rel_gap: float
    sign_violations: int
    bound_violations: int
    worst_ref_dev: float | None
    ref_trials: int
    median_ratio: float
    failure: TrialResult | None = None
    failure_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The loss record of the JSON report (see docs/check-balance.md)."""
        return {
            "name": self.name,
            "checked": self.checked,
            "passed": self.passed,
            "trials": self.trials,
            "worst_rel_gap": self.worst_rel_gap,
            "median_rel_gap": self.median_rel_gap,
            "sign_violations": self.sign_violations,
            "bound_violations": self.bound_violations,
            "worst_ref_dev": self.worst_ref_dev,
            "ref_trials": self.ref_trials,
            "median_ratio": self.median_ratio,
        }


@dataclass
class BalanceReport:
    """What :func:`check_balance` found: one summary per loss, one record per (loss, trial)."""

    losses: list[LossSummary]
    trials: list[TrialResult]
    tolerance: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every checked loss held on every trial."""
        return all(s.passed is not False for s in self.losses)

    def to_json(self) -> dict[str, Any]:
        """The report as the documented JSON object (version 1)."""
        return {
            "version": 1,
            "config": dict(self.config),
            "losses": [s.to_json() for s in self.losses],
            "trials": [t.to_json() for t in self.trials],
        }


def as_spec(loss: LossSpec | LossFn, *, name: str | None = None) -> LossSpec:
    """Wrap a plain callable ``fn(logits, targets, loc_errors, delta) -> scalar`` as a
    checked :class:`LossSpec`; a spec is returned unchanged."""
    if isinstance(loss, LossSpec):
        return loss
    return LossSpec(name or getattr(loss, "__name__", "loss"), loss, checked=True)


def update_of(spec: LossSpec, problem: Problem) -> tuple[float, Tensor]:
    """Run ``spec`` on ``problem`` and return (loss value, ``logits.grad`` (N,) detached).

    The gradient comes from ``loss.backward()`` with respect to a fresh leaf copy of the
    logits, exactly as a training step gets it; a loss with no graph has a zero update.
    """
    logits = problem.logits.detach().clone().requires_grad_(True)
    extra = {"ious": problem.ious} if spec.takes_ious else {}
    loss = spec.fn(logits, problem.targets, problem.loc_errors, problem.delta, **extra)
    if loss.requires_grad:
        loss.backward()
    grad = logits.grad if logits.grad is not None else torch.zeros_like(logits)
    return float(loss.detach()), grad.detach()


def _rel_gap(sum_pos: float, sum_neg: float) -> float:
    if not (math.isfinite(sum_pos) and math.isfinite(sum_neg)):
        return math.inf
    if sum_pos == 0.0:
        return 0.0 if sum_neg == 0.0 else math.inf
    return abs(sum_pos - sum_neg) / sum_pos


def _reference_deviation(spec: LossSpec, problem: Problem, value: float, grad: Tensor) -> float:
    """max(|L − L_ref|, max|g − g_ref| / max|g_ref|), the reference run in float64 on CPU."""
    assert spec.reference is not None
    logits = problem.logits.detach().to("cpu", torch.float64)
    loc = problem.loc_errors.detach().to("cpu", torch.float64)
    extra = {}
    if spec.takes_ious:
        ious = problem.ious
        extra["ious"] = None if ious is None else ious.detach().to("cpu", torch.float64)
    ref_value, ref_grad = spec.reference(logits, problem.targets.cpu(), loc, problem.delta, **extra)
    ref_grad = ref_grad.to(torch.float64)
    scale = float(ref_grad.abs().max()) if ref_grad.numel() else 0.0
    diff = float((grad.to("cpu", torch.float64) - ref_grad).abs().max()) if grad.numel() else 0.0
    grad_dev = diff / scale if scale > 0 else diff
    dev = max(abs(value - float(ref_value)), grad_dev)
    return dev if math.isfinite(dev) else math.inf


def evaluate(spec: LossSpec, problem: Problem, *, tolerance: float) -> TrialResult:
    """Check one loss on one problem (see :class:`TrialResult`)."""
    value, grad = update_of(spec, problem)
    g = grad.to(torch.float64)
    # One pass per statistic over the (up to 10^6-long) update, grouped by target + 1:
    # index 0 ignored, 1 negatives, 2 positives.
    group = (problem.targets + 1).to(torch.int64)
    counts = torch.bincount(group, minlength=3)
    sums = torch.bincount(group, weights=g.abs(), minlength=3)
    highest = torch.full((3,), -math.inf, dtype=g.dtype, device=g.device)
    highest = highest.scatter_reduce(0, group, g, "amax")
    lowest = torch.full((3,), math.inf, dtype=g.dtype, device=g.device)
    lowest = lowest.scatter_reduce(0, group, g, "amin")
    num_pos, num_neg = int(counts[2]), int(counts[1])
    sum_pos, sum_neg = float(sums[2]), float(sums[1])
    # A positive pushed down (g > 0 in logits.grad), a negative pushed up (g < 0), or an
    # ignored pair moved at all; "0" is tolerance × the largest update, for rounding.
    slack = tolerance * float(g.abs().max()) if g.numel() else 0.0
    sign = (
        float(highest[2]) > slack
        or float(lowest[1]) < -slack
        or max(float(highest[0]), -float(lowest[0])) > slack
        or not bool(torch.isfinite(g).all())
    )
    bound = spec.bounded and not (-tolerance <= value <= 1.0 + tolerance)
    ref_dev = None
    work = num_pos * num_neg
    if (
        spec.reference is not None
        and work <= spec.reference_max_work
        and num_pos <= spec.reference_max_positives
    ):
        ref_dev = _reference_deviation(spec, problem, value, grad)
    return TrialResult(
        loss=spec.name,
        trial=problem.trial,
        seed=problem.seed,
        P=num_pos,
        N=num_neg,
        delta=problem.delta,
        sum_pos=sum_pos,
        sum_neg=sum_neg,
        rel_gap=_rel_gap(sum_pos, sum_neg),
        loss_value=value,
        sign_violation=sign,
        bound_violation=bool(bound),
        ref_dev=ref_dev,
        regime=problem.regime,
        batch=problem.batch,
    )


def failure_reason(result: TrialResult, *, tolerance: float) -> str | None:
    """Why ``result`` breaks the theorem (one phrase), or None when it holds."""
    if not result.rel_gap <= tolerance:
        return f"gap {result.rel_gap:.3g} > tol {tolerance:.3g}"
    if result.sign_violation:
        return "sign violation (a positive pushed down, a negative pushed up or an ignored moved)"
    if result.bound_violation:
        return f"loss value {result.loss_value:.6g} outside [0, 1]"
    if result.ref_dev is not None and not result.ref_dev <= tolerance:
        return f"deviation from the reference {result.ref_dev:.3g} > tol {tolerance:.3g}"
    return None


def _worst(values: Sequence[float]) -> float:
    return max(values) if values else math.nan


def summarise(spec: LossSpec, results: Sequence[TrialResult], *, tolerance: float) -> LossSummary:
    """The summary of one loss over its trials."""
    gaps = [r.rel_gap for r in results]
    refs = [r.ref_dev for r in results if r.ref_dev is not None]
    ratios = [
        r.sum_pos / r.sum_neg
        for r in results
        if r.sum_neg > 0 and math.isfinite(r.sum_pos) and math.isfinite(r.sum_neg)
    ]
    failure, reason = None, None
    if spec.checked:
        for r in results:
            reason = failure_reason(r, tolerance=tolerance)
            if reason is not None:
                failure = r
                break
    return LossSummary(
        name=spec.name,
        checked=spec.checked,
        passed=(failure is None) if spec.checked else None,
        trials=len(results),
        worst_rel_gap=_worst(gaps),
        median_rel_gap=statistics.median(gaps) if gaps else math.nan,
        sign_violations=sum(r.sign_violation for r in results),
        bound_violations=sum(r.bound_violation for r in results),
        worst_ref_dev=_worst(refs) if refs else None,
        ref_trials=len(refs),
        median_ratio=statistics.median(ratios) if ratios else math.nan,
        failure=failure,
        failure_reason=reason,
    )


def check_balance(
    problems: Iterable[Problem],
    losses: Sequence[LossSpec | LossFn],
    *,
    tolerance: float,
    on_problem: Callable[[Problem], None] | None = None,
    config: dict[str, Any] | None = None,
) -> BalanceReport:
    """Check Theorem 2 for every loss on every problem.

    ``losses``: :class:`LossSpec` objects or plain callables ``fn(logits, targets,
    loc_errors, delta) -> scalar`` (treated as checked). ``tolerance`` bounds the relative
    gap, the sign test (relative to the largest update), the [0, 1] bound slack and the
    reference deviation. ``on_problem`` is called after each problem (for progress bars).
    """
    specs = [as_spec(loss) for loss in losses]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"loss names must be distinct, got {names}")
    per_loss: dict[str, list[TrialResult]] = {s.name: [] for s in specs}
    for problem in problems:
        for spec in specs:
            per_loss[spec.name].append(evaluate(spec, problem, tolerance=tolerance))
        if on_problem is not None:
            on_problem(problem)
    summaries = [summarise(s, per_loss[s.name], tolerance=tolerance) for s in specs]
    trials = [r for s in specs for r in per_loss[s.name]]
    return BalanceReport(summaries, trials, tolerance, dict(config or {}))
