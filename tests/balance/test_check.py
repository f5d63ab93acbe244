"""check_balance: planted losses are caught, real aLRP/AP Loss hold, sums are right."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from alrp_cli.balance import LossSpec, Problem, check_balance, random_problems
from alrp_cli.balance.check import update_of
from alrp_cli.balance.specs import builtin_specs

SMALL = {"max_positives": 60, "max_negatives": 2000, "deltas": (0.0, 0.5, 1.0, 2.0)}


def balanced(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    """mean(negative scores) − mean(positive scores): every positive gets −1/P and every
    negative +1/N, so Σpos = Σneg = 1 (when both exist)."""
    pos, neg = logits[targets == 1], logits[targets == 0]
    return neg.mean() - pos.mean()


def unbalanced(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    """Like `balanced` but the negatives pushed 1% harder: Σneg = 1.01 Σpos."""
    pos, neg = logits[targets == 1], logits[targets == 0]
    return 1.01 * neg.mean() - pos.mean()


def wrong_signs(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    """Balanced in magnitude but pushing positives down and negatives up."""
    return -balanced(logits, targets, loc_errors, delta)


def leaks_ignored(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    """Balanced over negatives, but also pushes the ignored pairs."""
    ign = logits[targets == -1]
    extra = ign.sum() * 1e-3 if ign.numel() else logits.sum() * 0
    return balanced(logits, targets, loc_errors, delta) + extra


def nan_update(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    return balanced(logits, targets, loc_errors, delta) * float("nan")


def _problems(n: int = 25, seed: int = 1, **kw: object) -> list[Problem]:
    return list(random_problems(seed, n, **{**SMALL, **kw}))  # type: ignore[arg-type]


def _tiny(logits: list[float], targets: list[int], loc: list[float], delta: float) -> Problem:
    return Problem(
        0,
        0,
        torch.tensor(logits, dtype=torch.float64),
        torch.tensor(targets),
        torch.tensor(loc, dtype=torch.float64),
        delta,
        "hand",
    )


def test_planted_balanced_loss_holds_with_exact_sums() -> None:
    report = check_balance(_problems(), [balanced], tolerance=1e-5)
    (summary,) = report.losses
    assert summary.passed is True and summary.checked is True
    assert summary.trials == 25
    for t in report.trials:
        assert t.sum_pos == pytest.approx(1.0, rel=1e-6)
        assert t.sum_neg == pytest.approx(1.0, rel=1e-6)
    assert summary.median_ratio == pytest.approx(1.0, rel=1e-6)


def test_planted_unbalanced_loss_is_caught_at_its_first_trial() -> None:
    report = check_balance(_problems(), [balanced, unbalanced], tolerance=1e-5)
    ok, bad = report.losses
    assert ok.passed is True
    assert bad.passed is False and not report.passed
    assert bad.failure is not None and bad.failure.trial == 0
    assert bad.failure_reason is not None and bad.failure_reason.startswith("gap 0.01")
    assert bad.worst_rel_gap == pytest.approx(0.01, rel=1e-4)
    assert bad.median_ratio == pytest.approx(1 / 1.01, rel=1e-5)
    # A 1% imbalance passes a tolerance looser than 1%: the tolerance is what decides.
    assert check_balance(_problems(5), [unbalanced], tolerance=0.02).passed


@pytest.mark.parametrize("loss", [wrong_signs, leaks_ignored, nan_update])
def test_sign_violations_and_nan_updates_fail(loss) -> None:  # type: ignore[no-untyped-def]
    report = check_balance(_problems(30), [loss], tolerance=1e-5)
    (summary,) = report.losses
    assert summary.passed is False
    assert summary.sign_violations > 0


def test_bound_violation_is_counted_for_bounded_losses_only() -> None:
    def above_one(logits: Tensor, targets: Tensor, loc: Tensor, delta: float) -> Tensor:
        return balanced(logits, targets, loc, delta) + 5.0

    probs = _problems(4)
    bounded = LossSpec("bounded", above_one, bounded=True)
    free = LossSpec("free", above_one, bounded=False)
    a, b = check_balance(probs, [bounded, free], tolerance=1e-5).losses
    assert (a.bound_violations, a.passed) == (4, False)
    assert (b.bound_violations, b.passed) == (0, True)


def test_contrast_losses_never_fail() -> None:
    spec = LossSpec("contrast", unbalanced, checked=False)
    (summary,) = check_balance(_problems(5), [spec], tolerance=1e-5).losses
    assert summary.passed is None and summary.worst_rel_gap > 1e-3


def test_reference_deviation_is_reported_and_checked() -> None:
    def exact_ref(logits: Tensor, targets: Tensor, loc: Tensor, delta: float):  # type: ignore[no-untyped-def]
        # d/ds of mean(neg) − mean(pos), written as a plain loop.
        pos, neg = int((targets == 1).sum()), int((targets == 0).sum())
        grad = torch.zeros_like(logits)
        for k in range(logits.numel()):
            grad[k] = -1 / pos if targets[k] == 1 else (1 / neg if targets[k] == 0 else 0.0)
        return float(balanced(logits, targets, loc, delta)), grad

    def off_ref(logits: Tensor, targets: Tensor, loc: Tensor, delta: float):  # type: ignore[no-untyped-def]
        value, grad = exact_ref(logits, targets, loc, delta)
        return value, grad * 1.001

    probs = _problems(6, max_negatives=200, dtype=torch.float64)
    good = LossSpec("good", balanced, reference=exact_ref)
    off = LossSpec("off", balanced, reference=off_ref)
    capped = LossSpec("capped", balanced, reference=exact_ref, reference_max_work=0)
    g, o, c = check_balance(probs, [good, off, capped], tolerance=1e-5).losses
    assert g.ref_trials == 6 and g.worst_ref_dev is not None and g.worst_ref_dev < 1e-12
    assert g.passed is True
    assert o.passed is False and o.worst_ref_dev == pytest.approx(1e-3, rel=1e-2)
    assert c.ref_trials == 0 and c.worst_ref_dev is None


def test_bce_sums_by_hand() -> None:
    # One positive and two negatives, all at logit 0: the BCE derivatives are σ(0) − 1 =
    # −0.5 for the positive and σ(0) = 0.5 per negative (divided by P = 1).
    p = _tiny([0.0, 0.0, 0.0, 9.0], [1, 0, 0, -1], [0.3], 1.0)
    report = check_balance([p], [builtin_specs()["bce"]], tolerance=1e-9)
    (t,) = report.trials
    assert (t.P, t.N) == (1, 2)
    assert t.sum_pos == pytest.approx(0.5) and t.sum_neg == pytest.approx(1.0)
    assert t.rel_gap == pytest.approx(1.0)
    assert report.losses[0].median_ratio == pytest.approx(0.5)


def test_alrp_update_by_hand() -> None:
    # δ = 0: positives at 1 (e = 0.5) and 3 (e = 0.2); negatives at 2 and 0.
    # Positive at 1: rank⁺ = 1 + H(3 − 1) = 2, N_FP = H(2 − 1) = 1, rank = 3,
    #   g = −(N_FP + e(3)·1) / rank / P = −(1 + 0.2) / 3 / 2 = −0.2.
    # Positive at 3: N_FP = 0 → g = 0. Negative at 2: 0.2 · H(2 − 1) / 1 = 0.2; at 0: 0.
    p = _tiny([1.0, 2.0, 3.0, 0.0], [1, 0, 1, 0], [0.5, 0.2], 0.0)
    value, grad = update_of(builtin_specs()["alrp"], p)
    assert value == pytest.approx((1 / 3 + 0) / 2)
    assert grad.tolist() == pytest.approx([-0.2, 0.2, 0.0, 0.0])
    (t,) = check_balance([p], [builtin_specs()["alrp"]], tolerance=1e-12).trials
    assert t.sum_pos == pytest.approx(0.2) and t.rel_gap < 1e-12


def test_no_positives_means_no_update() -> None:
    p = _tiny([0.5, -1.0], [0, 0], [], 1.0)
    report = check_balance([p], list(builtin_specs().values()), tolerance=1e-9)
    for t in report.trials:
        if t.loss in ("alrp", "ap"):
            assert (t.sum_pos, t.sum_neg, t.rel_gap) == (0.0, 0.0, 0.0)
    assert report.passed


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alrp_and_ap_hold_and_match_the_loop_reference(dtype: torch.dtype) -> None:
    tol = 1e-5 if dtype == torch.float32 else 1e-9
    probs = _problems(40, seed=9, dtype=dtype)
    report = check_balance(probs, list(builtin_specs().values()), tolerance=tol)
    by_name = {s.name: s for s in report.losses}
    for name in ("alrp", "ap"):
        s = by_name[name]
        assert s.passed is True, s.failure_reason
        assert s.ref_trials >= 30 and s.worst_ref_dev is not None
        assert s.median_ratio == pytest.approx(1.0, rel=tol)
    for name in ("focal", "bce"):
        s = by_name[name]
        assert s.passed is None and s.checked is False
        # The usual losses are far from balanced on these problems.
        assert not math.isclose(s.median_ratio, 1.0, rel_tol=0.1)


def test_same_problems_same_report() -> None:
    specs = list(builtin_specs().values())
    a = check_balance(_problems(10, seed=4), specs, tolerance=1e-5).to_json()
    b = check_balance(_problems(10, seed=4), specs, tolerance=1e-5).to_json()
    assert a == b
