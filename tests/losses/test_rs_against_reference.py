"""Rank & Sort Loss against the loop port of the published code, and its balance properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alrp_cli.losses import rs_loss
from alrp_cli.losses.reference_rs import rs_loss_reference
from tests.helpers.loss_problems import REGIMES, iou_targets, make_rs_problem
from tests.helpers.sharding import assert_close

DELTAS = (0.0, 0.5, 1.0, 2.0)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

problem = st.tuples(
    st.integers(0, 2**31 - 1),
    st.sampled_from(REGIMES),
    st.integers(1, 300),
    st.sampled_from(DELTAS),
    st.sampled_from([0, 0, 1, 3]),  # IoU levels: 0 continuous, 1 all equal, 3 many ties
)


def run_parts(logits: torch.Tensor, targets: torch.Tensor, delta: float):
    """Values, the whole update and each part's update (backpropagated separately)."""
    grads = []
    for pick in ("both", "ranking", "sorting"):
        x = logits.clone().requires_grad_()
        out = rs_loss(x, targets, delta=delta)
        {"both": out.ranking + out.sorting, "ranking": out.ranking, "sorting": out.sorting}[
            pick
        ].backward()
        grads.append(x.grad)
    return out, *grads


def check_against_reference(logits, targets, delta, rtol, reference_logits=None) -> None:
    out, grad, grad_ranking, grad_sorting = run_parts(logits, targets, delta)
    ref_input = logits if reference_logits is None else reference_logits
    ref = rs_loss_reference(ref_input, targets, delta=delta)
    assert out.ranking.dtype == logits.dtype and grad.dtype == logits.dtype
    assert_close(out.ranking, ref.ranking, rtol, "ranking error")
    assert_close(out.sorting, ref.sorting, rtol, "sorting error")
    assert_close(grad, ref.grad_logits, rtol, "whole update")
    assert_close(grad_ranking, ref.grad_ranking, rtol, "ranking part of the update")
    assert_close(grad_sorting, ref.grad_sorting, rtol, "sorting part of the update")


@SETTINGS
@given(problem)
def test_float64_matches_the_published_loop_to_1e_9(p) -> None:
    seed, regime, n, delta, levels = p
    logits, targets = make_rs_problem(seed, regime, n, levels=levels)
    check_against_reference(logits, targets, delta, 1e-9)


@settings(max_examples=30, deadline=None)
@given(problem)
def test_float32_matches_the_float64_loop_to_1e_5(p) -> None:
    seed, regime, n, delta, levels = p
    if regime == "wide":
        delta = delta * 100  # keep δ meaningful relative to float32 spacing of |s| ~ 1e3
    logits, targets = make_rs_problem(seed, regime, n, levels=levels)
    x = logits.float()
    check_against_reference(x, targets, delta, 1e-5, reference_logits=x.double())


@SETTINGS
@given(problem)
def test_balance_of_the_ranking_part_and_zero_sum_of_the_sorting_part(p) -> None:
    seed, regime, n, delta, levels = p
    logits, targets = make_rs_problem(seed, regime, n, levels=levels)
    out, grad, g_rank, g_sort = run_parts(logits, targets, delta)
    pos, neg, ignored = targets > 0, targets == 0, targets == -1
    assert 0.0 <= float(out.ranking) <= 1.0
    assert 0.0 <= float(out.sorting) <= 1.0
    # Ranking part: positives pushed up, negatives down, equal total magnitudes.
    assert bool((g_rank[pos] <= 0).all()) and bool((g_rank[neg] >= 0).all())
    total_pos, total_neg = float(g_rank[pos].abs().sum()), float(g_rank[neg].abs().sum())
    assert abs(total_pos - total_neg) <= 1e-9 * max(total_pos, 1e-300)
    # Sorting part: positives only, summing to zero over them.
    assert bool((g_sort[~pos] == 0).all())
    magnitude = float(g_sort.abs().sum())
    assert abs(float(g_sort[pos].sum())) <= 1e-9 * max(magnitude, 1e-300)
    assert bool((grad[ignored] == 0).all())
    assert_close(grad, g_rank + g_sort, 1e-12, "whole update = ranking + sorting parts")


def test_parts_scale_with_their_own_incoming_gradients() -> None:
    logits, targets = make_rs_problem(3, "overlapping", 200)
    _, _, g_rank, g_sort = run_parts(logits, targets, 0.5)
    x = logits.clone().requires_grad_()
    out = rs_loss(x, targets)
    (3.0 * out.ranking + 5.0 * out.sorting).backward()
    assert_close(x.grad, 3.0 * g_rank + 5.0 * g_sort, 1e-12, "3·ranking + 5·sorting")
    assert float(g_sort.abs().sum()) > 0 and float(g_rank.abs().sum()) > 0


@pytest.mark.parametrize("regime", ["overlapping", "ties", "wide", "separated"])
@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_large_inputs_take_the_grid_path_and_still_match(regime: str, delta: float) -> None:
    # N above the grid threshold of the binning; 60 positives, a few with equal IoUs.
    n = 20_000
    logits, targets = make_rs_problem(7, regime, n, levels=0)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.randperm(n, generator=torch.Generator().manual_seed(1))[:60]] = True
    targets = torch.where(keep | (targets <= 0), targets, torch.zeros_like(targets))
    targets[(targets > 0).nonzero()[:10, 0]] = 0.5
    d = delta * (100 if regime == "wide" else 1)
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        x = logits.to(dtype)
        check_against_reference(x, targets, d, rtol, reference_logits=x.double())


def test_many_positives_against_the_loop() -> None:
    # P = 1,500 positives: a tree of 11 levels over the positives.
    g = torch.Generator().manual_seed(5)
    labels = (torch.rand(6_000, generator=g) < 0.25).long()
    logits = torch.randn(6_000, generator=g, dtype=torch.float64) + labels
    targets = iou_targets(labels, 6, levels=20)
    check_against_reference(logits, targets, 0.5, 1e-9)


def test_wide_scores_with_many_positives_keep_1e_9() -> None:
    # |s| ~ 1e4 with δ = 1/2 and P ≈ 800: each window's sum over positives is a difference
    # of sums over far larger runs of scores; taken naively in float64, the sorting part
    # of the update loses about 2e-9 of relative accuracy here.
    g = torch.Generator().manual_seed(3)
    labels = (torch.rand(2_000, generator=g) < 0.4).long()
    logits = (torch.randn(2_000, generator=g, dtype=torch.float64) + 0.5 * labels) * 1e4
    check_against_reference(logits, iou_targets(labels, 9), 0.5, 1e-9)
