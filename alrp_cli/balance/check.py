"""Theorem 2, checked numerically: Σ_{i∈P} |g_i| = Σ_{j∈N} |g_j| for the update g in
``logits.grad``, and Σ_{i∈P} g_i = 0 for an update that moves scores among the positives
only.

:func:`check_balance` takes any losses (a :class:`LossSpec` or a plain callable) and any
problems, runs each loss forward and ``.backward()`` on each problem, once per part of its
update (:class:`~alrp_cli.registry.BalancePart`), and summarises per loss and part: the
relative gap of the part's rule (|Σpos − Σneg| / Σpos for a balanced part, |Σ_P g| / Σ_P |g|
for a zero-sum part), sign violations, bound violations and the deviation from an
independent reference.
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
from alrp_cli.registry import BALANCED, ZERO_SUM, BalancePart

#: Default tolerance on the relative gap, the sign test and the reference deviation.
DEFAULT_TOLERANCE = {"float32": 1e-5, "float64": 1e-9}


@dataclass(frozen=True)
class TrialResult:
    """One part of one loss's update on one problem. Sums are of |logits.grad| over
    positives and negatives (in float64); ``net_pos`` the signed sum over the positives.
    ``rel_gap``, by the part's ``rule``: |sum_pos − sum_neg| / sum_pos (balanced) or
    |net_pos| / sum_pos (zero-sum); 0 when its terms are all 0; infinite when sum_pos is 0
    alone or a sum is not finite. ``part`` is None for a loss whose update is one part."""

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
    part: str | None = None
    rule: str = BALANCED
    net_pos: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The trial record of the JSON report (see docs/check-balance.md)."""
        return {
            "loss": self.loss,
            "part": self.part,
            "rule": self.rule,
            "trial": self.trial,
            "seed": self.seed,
            "P": self.P,
            "N": self.N,
            "delta": self.delta,
            "sum_pos": self.sum_pos,
            "sum_neg": self.sum_neg,
            "net_pos": self.net_pos,
            "rel_gap": self.rel_gap,
        }


@dataclass(frozen=True)
class LossSummary:
    """The summary of one loss (one part of its update: ``part``, None for the whole
    update, checked by ``rule``). ``passed`` is None for losses shown for contrast only."""

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
    part: str | None = None
    rule: str = BALANCED

    @property
    def label(self) -> str:
        """The loss's name, and its part's where its update has several ("rs ranking")."""
        return self.name if self.part is None else f"{self.name} {self.part}"

    def to_json(self) -> dict[str, Any]:
        """The loss record of the JSON report (see docs/check-balance.md)."""
        return {
            "name": self.name,
            "part": self.part,
            "rule": self.rule,
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
    """What :func:`check_balance` found: one summary per (loss, part), one record per
    (loss, part, trial), and ``notes`` on how inputs were read (one line each)."""

    losses: list[LossSummary]
    trials: list[TrialResult]
    tolerance: float
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

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
            "notes": list(self.notes),
        }


def as_spec(loss: LossSpec | LossFn, *, name: str | None = None) -> LossSpec:
    """Wrap a plain callable ``fn(logits, targets, loc_errors, delta) -> scalar`` as a
    checked :class:`LossSpec`; a spec is returned unchanged."""
    if isinstance(loss, LossSpec):
        return loss
    return LossSpec(name or getattr(loss, "__name__", "loss"), loss, checked=True)


def updates_of(spec: LossSpec, problem: Problem) -> list[tuple[float, Tensor]]:
    """Run ``spec`` on ``problem``: (value, ``logits.grad`` (N,) detached) of each part of
    its update, in ``spec.parts`` order.

    Each part's gradient comes from that part's ``backward`` alone with respect to a fresh
    leaf copy of the logits, exactly as a training step gets its update; a part with no
    graph has a zero update.
    """
    logits = problem.logits.detach().clone().requires_grad_(True)
    extra = {"ious": problem.ious} if spec.takes_ious else {}
    out = spec.fn(logits, problem.targets, problem.loc_errors, problem.delta, **extra)
    values = (out,) if len(spec.parts) == 1 else tuple(out)
    if len(values) != len(spec.parts):
        raise ValueError(f"{spec.name}: {len(values)} values for {len(spec.parts)} parts")
    results = []
    for k, value in enumerate(values):
        logits.grad = None
        if value.requires_grad:
            value.backward(retain_graph=k < len(values) - 1)
        grad = logits.grad if logits.grad is not None else torch.zeros_like(logits)
        results.append((float(value.detach()), grad.detach()))
    return results


def update_of(spec: LossSpec, problem: Problem) -> tuple[float, Tensor]:
    """(value, ``logits.grad``) of a loss whose update is one part (:func:`updates_of`)."""
    ((value, grad),) = updates_of(spec, problem)
    return value, grad


def _rel_gap(difference: float, sum_pos: float, *sums: float) -> float:
    """|difference| / sum_pos: 0 when both are 0, infinite when sum_pos is 0 alone or any
    of ``sums`` is not finite."""
    if not all(math.isfinite(x) for x in (difference, sum_pos, *sums)):
        return math.inf
    if sum_pos == 0.0:
        return 0.0 if difference == 0.0 else math.inf
    return abs(difference) / sum_pos


def _reference_deviations(
    spec: LossSpec, problem: Problem, found: list[tuple[float, Tensor]]
) -> list[float]:
    """Per part, max(|L − L_ref|, max|g − g_ref| / max|g_ref|), the reference run in
    float64 on CPU."""
    assert spec.reference is not None
    logits = problem.logits.detach().to("cpu", torch.float64)
    loc = problem.loc_errors.detach().to("cpu", torch.float64)
    extra = {}
    if spec.takes_ious:
        ious = problem.ious
        extra["ious"] = None if ious is None else ious.detach().to("cpu", torch.float64)
    refs = spec.reference(logits, problem.targets.cpu(), loc, problem.delta, **extra)
    refs = (refs,) if len(spec.parts) == 1 else tuple(refs)
    devs = []
    for (value, grad), (ref_value, ref_grad) in zip(found, refs, strict=True):
        ref_grad = ref_grad.to(torch.float64)
        scale = float(ref_grad.abs().max()) if ref_grad.numel() else 0.0
        diff = (
            float((grad.to("cpu", torch.float64) - ref_grad).abs().max()) if grad.numel() else 0.0
        )
        grad_dev = diff / scale if scale > 0 else diff
        dev = max(abs(value - float(ref_value)), grad_dev)
        devs.append(dev if math.isfinite(dev) else math.inf)
    return devs


def evaluate(spec: LossSpec, problem: Problem, *, tolerance: float) -> list[TrialResult]:
    """Check one loss on one problem: one :class:`TrialResult` per part of its update."""
    found = updates_of(spec, problem)
    # One pass per statistic over the (up to 10^6-long) update, grouped by target + 1:
    # index 0 ignored, 1 negatives, 2 positives.
    group = (problem.targets + 1).to(torch.int64)
    counts = torch.bincount(group, minlength=3)
    num_pos, num_neg = int(counts[2]), int(counts[1])
    ref_devs: list[float | None] = [None] * len(spec.parts)
    if (
        spec.reference is not None
        and num_pos * num_neg <= spec.reference_max_work
        and num_pos <= spec.reference_max_positives
    ):
        ref_devs = list(_reference_deviations(spec, problem, found))
    results = []
    for part, (value, grad), ref_dev in zip(spec.parts, found, ref_devs, strict=True):
        g = grad.to(torch.float64)
        sums = torch.bincount(group, weights=g.abs(), minlength=3)
        net = torch.bincount(group, weights=g, minlength=3)
        highest = torch.full((3,), -math.inf, dtype=g.dtype, device=g.device)
        highest = highest.scatter_reduce(0, group, g, "amax")
        lowest = torch.full((3,), math.inf, dtype=g.dtype, device=g.device)
        lowest = lowest.scatter_reduce(0, group, g, "amin")
        sum_pos, sum_neg, net_pos = float(sums[2]), float(sums[1]), float(net[2])
        # "0" is tolerance × the largest update, for rounding. Balanced: a positive pushed
        # down (g > 0 in logits.grad) or a negative pushed up (g < 0); zero-sum: a negative
        # moved at all. Either way an ignored pair must not move.
        slack = tolerance * float(g.abs().max()) if g.numel() else 0.0
        moved_ignored = max(float(highest[0]), -float(lowest[0])) > slack
        if part.rule == ZERO_SUM:
            wrong = max(float(highest[1]), -float(lowest[1])) > slack
            gap = _rel_gap(net_pos, sum_pos, sum_neg)
        else:
            wrong = float(highest[2]) > slack or float(lowest[1]) < -slack
            gap = _rel_gap(sum_pos - sum_neg, sum_pos, sum_neg)
        sign = wrong or moved_ignored or not bool(torch.isfinite(g).all())
        bound = spec.bounded and not (-tolerance <= value <= 1.0 + tolerance)
        results.append(
            TrialResult(
                loss=spec.name,
                trial=problem.trial,
                seed=problem.seed,
                P=num_pos,
                N=num_neg,
                delta=problem.delta,
                sum_pos=sum_pos,
                sum_neg=sum_neg,
                rel_gap=gap,
                loss_value=value,
                sign_violation=sign,
                bound_violation=bool(bound),
                ref_dev=ref_dev,
                regime=problem.regime,
                batch=problem.batch,
                part=part.name,
                rule=part.rule,
                net_pos=net_pos,
            )
        )
    return results


#: What a sign violation is, by rule (failure messages).
SIGN_RULES = {
    BALANCED: "a positive pushed down, a negative pushed up or an ignored moved",
    ZERO_SUM: "a negative or an ignored moved",
}


def failure_reason(result: TrialResult, *, tolerance: float) -> str | None:
    """Why ``result`` breaks its rule (one phrase), or None when it holds."""
    if not result.rel_gap <= tolerance:
        return f"gap {result.rel_gap:.3g} > tol {tolerance:.3g}"
    if result.sign_violation:
        return f"sign violation ({SIGN_RULES[result.rule]})"
    if result.bound_violation:
        return f"loss value {result.loss_value:.6g} outside [0, 1]"
    if result.ref_dev is not None and not result.ref_dev <= tolerance:
        return f"deviation from the reference {result.ref_dev:.3g} > tol {tolerance:.3g}"
    return None


def _worst(values: Sequence[float]) -> float:
    return max(values) if values else math.nan


def summarise(
    spec: LossSpec,
    results: Sequence[TrialResult],
    *,
    tolerance: float,
    part: BalancePart | None = None,
) -> LossSummary:
    """The summary of one loss (one ``part`` of its update) over its trials."""
    part = part or spec.parts[0]
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
        part=part.name,
        rule=part.rule,
    )


def check_balance(
    problems: Iterable[Problem],
    losses: Sequence[LossSpec | LossFn],
    *,
    tolerance: float,
    on_problem: Callable[[Problem], None] | None = None,
    config: dict[str, Any] | None = None,
) -> BalanceReport:
    """Check every part of every loss's update against its rule on every problem.

    ``losses``: :class:`LossSpec` objects or plain callables ``fn(logits, targets,
    loc_errors, delta) -> scalar`` (treated as checked, one balanced part). ``tolerance``
    bounds the relative gap, the sign test (relative to the largest update), the [0, 1]
    bound slack and the reference deviation. ``on_problem`` is called after each problem
    (for progress bars). The report has one summary per (loss, part), in order.
    """
    specs = [as_spec(loss) for loss in losses]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"loss names must be distinct, got {names}")
    per_part: dict[tuple[str, int], list[TrialResult]] = {
        (s.name, k): [] for s in specs for k in range(len(s.parts))
    }
    for problem in problems:
        for spec in specs:
            for k, result in enumerate(evaluate(spec, problem, tolerance=tolerance)):
                per_part[spec.name, k].append(result)
        if on_problem is not None:
            on_problem(problem)
    summaries = [
        summarise(s, per_part[s.name, k], tolerance=tolerance, part=part)
        for s in specs
        for k, part in enumerate(s.parts)
    ]
    trials = [r for s in specs for k in range(len(s.parts)) for r in per_part[s.name, k]]
    return BalanceReport(summaries, trials, tolerance, dict(config or {}))
