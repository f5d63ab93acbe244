"""Updates in parts (Rank & Sort Loss): each part checked by its own rule, and the check
fails a part that breaks it."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from alrp_cli.balance import LossSpec, Problem, check_balance, random_problems
from alrp_cli.balance.specs import builtin_specs
from alrp_cli.loss_inputs import with_ious
from alrp_cli.losses import rs_loss
from alrp_cli.losses.reference_rs import rs_loss_reference
from alrp_cli.registry import BALANCED, ZERO_SUM, BalancePart

SMALL = {"max_positives": 60, "max_negatives": 2000, "deltas": (0.0, 0.5, 1.0, 2.0)}
PARTS = (BalancePart("ranking", BALANCED), BalancePart("sorting", ZERO_SUM))


def _problems(n: int = 20, seed: int = 3) -> list[Problem]:
    return list(random_problems(seed, n, **SMALL))  # type: ignore[arg-type]


def _rs(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float, *, ious=None):
    out = rs_loss(logits, with_ious(targets, ious, logits.dtype), delta=delta)
    return out.ranking, out.sorting


def test_rank_and_sort_holds_both_rules_with_the_sums_of_the_loop_reference() -> None:
    problems = _problems()
    report = check_balance(problems, [builtin_specs()["rs"]], tolerance=1e-5)
    ranking, sorting = report.losses
    assert (ranking.label, ranking.rule, ranking.passed) == ("rs ranking", BALANCED, True)
    assert (sorting.label, sorting.rule, sorting.passed) == ("rs sorting", ZERO_SUM, True)
    assert ranking.ref_trials > 0 and sorting.ref_trials == ranking.ref_trials
    by_part = {p: [t for t in report.trials if t.part == p] for p in ("ranking", "sorting")}
    moved = 0
    for problem, r, s in zip(problems, by_part["ranking"], by_part["sorting"], strict=True):
        # The sums against the loop port of the published code, in float64.
        t = with_ious(problem.targets, problem.ious, torch.float64)
        ref = rs_loss_reference(problem.logits.double(), t, delta=problem.delta)
        pos, neg = problem.targets == 1, problem.targets == 0
        assert r.sum_pos == pytest.approx(float(ref.grad_ranking[pos].abs().sum()), rel=1e-4)
        assert r.sum_neg == pytest.approx(float(ref.grad_ranking[neg].abs().sum()), rel=1e-4)
        assert s.sum_pos == pytest.approx(float(ref.grad_sorting[pos].abs().sum()), rel=1e-4)
        assert s.sum_neg == 0.0 and abs(s.net_pos) <= 1e-6 * max(s.sum_pos, 1e-30)
        moved += s.sum_pos > 0
    assert moved >= len(problems) // 2  # the sorting part is not vacuous


def _leaky_sorting(logits, targets, loc_errors, delta, *, ious=None):
    """The sorting part also pushes the negatives (a zero-sum part must move none)."""
    ranking, sorting = _rs(logits, targets, loc_errors, delta, ious=ious)
    neg = logits[targets == 0]
    return ranking, sorting + 1e-3 * (neg.mean() if neg.numel() else logits.sum() * 0)


def _drifting_sorting(logits, targets, loc_errors, delta, *, ious=None):
    """The sorting part pushes every positive up a little: it no longer sums to zero."""
    ranking, sorting = _rs(logits, targets, loc_errors, delta, ious=ious)
    return ranking, sorting - 1e-2 * logits[targets == 1].mean()


def _unbalanced_ranking(logits, targets, loc_errors, delta, *, ious=None):
    """The ranking part pushes the negatives 1% harder than the positives."""
    ranking, sorting = _rs(logits, targets, loc_errors, delta, ious=ious)
    neg = logits[targets == 0]
    return ranking + 0.01 * ranking.detach() * (neg.mean() if neg.numel() else 0.0), sorting


@pytest.mark.parametrize(
    ("fn", "broken", "reason"),
    [
        (_leaky_sorting, "sorting", "sign violation (a negative or an ignored moved)"),
        (_drifting_sorting, "sorting", "gap"),
        (_unbalanced_ranking, "ranking", "gap"),
    ],
)
def test_a_part_that_breaks_its_rule_fails_and_the_other_still_holds(fn, broken, reason) -> None:
    spec = LossSpec("planted", fn, bounded=False, takes_ious=True, parts=PARTS)
    report = check_balance(_problems(), [spec], tolerance=1e-5)
    assert not report.passed
    results = {s.part: s for s in report.losses}
    assert results[broken].passed is False
    assert results[broken].failure_reason is not None
    assert results[broken].failure_reason.startswith(reason)
    other = next(p for p in results if p != broken)
    assert results[other].passed is True


def test_a_loss_returning_the_wrong_number_of_parts_is_an_error() -> None:
    spec = LossSpec("two", _rs, takes_ious=True, parts=PARTS[:1] * 3)
    with pytest.raises(ValueError, match="2 values for 3 parts"):
        check_balance(_problems(1), [spec], tolerance=1e-5)


def test_random_problems_carry_ious_in_the_unit_interval_with_ties_in_the_ties_regime() -> None:
    problems = list(random_problems(0, 40, **SMALL))  # type: ignore[arg-type]
    for p in problems:
        assert p.ious is not None and p.ious.shape == p.loc_errors.shape
        assert bool((p.ious > 0).all() and (p.ious <= 1).all())
    ties = [p for p in problems if p.regime == "ties" and p.num_positives > 10]
    assert ties and all(len(torch.unique(p.ious)) <= 8 for p in ties)
