"""The O(N log P) kernels against the loop formulation, over random regimes (hypothesis)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alrp_cli.losses import alrp_loss, ap_loss
from alrp_cli.losses.reference import alrp_loss_reference, ap_loss_reference
from tests.helpers.loss_problems import REGIMES, make_problem

DELTAS = (0.0, 0.5, 1.0, 2.0)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    """Agreement relative to the largest magnitude of the expected vector."""
    actual = actual.detach().to(torch.float64)
    expected = expected.detach().to(torch.float64)
    assert actual.shape == expected.shape, what
    if expected.numel() == 0:
        return
    scale = max(float(expected.abs().max()), 1e-12)
    err = float((actual - expected).abs().max())
    assert err <= rtol * scale, f"{what}: max abs error {err:.3g} > {rtol:g} × {scale:.3g}"


def run_fast(logits, targets, loc_errors, delta):
    x = logits.clone().requires_grad_()
    e = loc_errors.clone().requires_grad_()
    out = alrp_loss(x, targets, e, delta=delta)
    (out.cls + out.loc).backward()
    y = logits.clone().requires_grad_()
    ap = ap_loss(y, targets, delta=delta)
    ap.backward()
    return out, x.grad, e.grad, ap, y.grad


problem = st.tuples(
    st.integers(0, 2**31 - 1),
    st.sampled_from(REGIMES),
    st.integers(1, 300),
    st.sampled_from(DELTAS),
)


@SETTINGS
@given(problem)
def test_float64_matches_the_loop_to_1e_9(p) -> None:
    seed, regime, n, delta = p
    logits, targets, loc_errors = make_problem(seed, regime, n)
    out, g_logits, g_loc, ap, g_ap = run_fast(logits, targets, loc_errors, delta)
    ref = alrp_loss_reference(logits, targets, loc_errors, delta=delta)
    ref_ap = ap_loss_reference(logits, targets, delta=delta)
    assert_close(out.cls, ref.cls, 1e-9, "aLRP L_cls")
    assert_close(out.loc, ref.loc, 1e-9, "aLRP L_loc")
    assert_close(out.rank, ref.rank, 1e-9, "rank")
    assert_close(g_logits, ref.grad_logits, 1e-9, "aLRP update")
    if g_loc is not None and loc_errors.numel():
        assert_close(g_loc, ref.grad_loc, 1e-9, "d L_loc / d e")
    assert_close(ap, ref_ap.cls, 1e-9, "AP loss")
    assert_close(g_ap, ref_ap.grad_logits, 1e-9, "AP update")


@settings(max_examples=30, deadline=None)
@given(problem)
def test_float32_matches_the_float64_loop_to_1e_5(p) -> None:
    seed, regime, n, delta = p
    if regime == "wide":
        delta = delta * 100  # keep δ meaningful relative to float32 spacing of |s| ~ 1e3
    logits, targets, loc_errors = make_problem(seed, regime, n)
    out, g_logits, _, ap, g_ap = run_fast(logits.float(), targets, loc_errors.float(), delta)
    assert out.cls.dtype == torch.float32 and g_logits.dtype == torch.float32
    ref = alrp_loss_reference(
        logits.float().double(), targets, loc_errors.float().double(), delta=delta
    )
    ref_ap = ap_loss_reference(logits.float().double(), targets, delta=delta)
    assert_close(out.cls, ref.cls, 1e-5, "aLRP L_cls")
    assert_close(out.loc, ref.loc, 1e-5, "aLRP L_loc")
    assert_close(g_logits, ref.grad_logits, 1e-5, "aLRP update")
    assert_close(ap, ref_ap.cls, 1e-5, "AP loss")
    assert_close(g_ap, ref_ap.grad_logits, 1e-5, "AP update")


@SETTINGS
@given(problem)
def test_theorem_2_balance_signs_and_bounds(p) -> None:
    seed, regime, n, delta = p
    logits, targets, loc_errors = make_problem(seed, regime, n)
    out, g_logits, _, ap, g_ap = run_fast(logits, targets, loc_errors, delta)
    pos, neg = targets == 1, targets == 0
    assert 0.0 <= float(out.cls.detach()) <= 1.0
    assert 0.0 <= float(ap.detach()) <= 1.0
    for g in (g_logits, g_ap):
        assert bool((g[pos] <= 0).all()), "a positive was pushed down"
        assert bool((g[neg] >= 0).all()), "a negative was pushed up"
        assert bool((g[targets == -1] == 0).all()), "an ignored pair got an update"
        total_pos, total_neg = float(g[pos].abs().sum()), float(g[neg].abs().sum())
        assert abs(total_pos - total_neg) <= 1e-9 * max(total_pos, 1e-300)


@pytest.mark.parametrize("regime", ["overlapping", "ties", "wide", "separated"])
@pytest.mark.parametrize("delta", [0.0, 1.0])
def test_large_inputs_take_the_grid_path_and_still_match(regime: str, delta: float) -> None:
    # N above the grid threshold: the binning no longer uses binary search.
    n = 20_000
    logits, targets, _ = make_problem(7, regime, n)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.randperm(n, generator=torch.Generator().manual_seed(1))[:60]] = True
    targets = torch.where(keep, targets, torch.zeros_like(targets))
    loc_errors = torch.rand(int((targets == 1).sum()), dtype=torch.float64)
    d = delta * (100 if regime == "wide" else 1)
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        x = logits.to(dtype)
        out, g_logits, _, _, g_ap = run_fast(x, targets, loc_errors.to(dtype), d)
        ref = alrp_loss_reference(x.double(), targets, loc_errors.to(dtype).double(), delta=d)
        ref_ap = ap_loss_reference(x.double(), targets, delta=d)
        assert_close(out.cls, ref.cls, rtol, f"{dtype} aLRP L_cls")
        assert_close(g_logits, ref.grad_logits, rtol, f"{dtype} aLRP update")
        assert_close(g_ap, ref_ap.grad_logits, rtol, f"{dtype} AP update")
