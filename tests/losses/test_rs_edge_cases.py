"""Rank & Sort Loss: hand-computed values, the published conventions and the edge cases."""

from __future__ import annotations

import doctest

import pytest
import torch

from alrp_cli.losses import RSLoss, RSLossOutput, rs, rs_loss
from alrp_cli.losses.reference_rs import rs_loss_reference
from tests.helpers.loss_problems import make_rs_problem
from tests.helpers.sharding import assert_close

F64 = torch.float64


def _backward(
    logits: torch.Tensor, targets: torch.Tensor, **kwargs
) -> tuple[RSLossOutput, torch.Tensor]:
    x = logits.clone().requires_grad_()
    out = rs_loss(x, targets, **kwargs)
    (out.ranking + out.sorting).backward()
    return out, x.grad


def test_hand_computed_example() -> None:
    # Positives A (s 2.0, IoU 0.6) and B (s 1.0, IoU 0.9); negatives 1.5 and -1.0; δ = 0.5.
    # A: rank⁺ = H(0) = 1/2 (B is 1 below: H(-1) = 0), N_FP = H(-0.5) = 0 -> RE = 0;
    #    current SE = (1/2 · 0.4) / (1/2) = 0.4 = target SE (only A and B have IoU ≥ 0.6) -> 0.
    # B: rank⁺ = H(0) + H(1) = 3/2, N_FP = H(0.5) = 1 -> RE = 1 / (5/2) = 0.4;
    #    current SE = (1/2 · 0.1 + 1 · 0.4) / (3/2) = 0.3, target = (1/2 · 0.1) / (1/2) = 0.1
    #    -> SE = 0.2; A is mis-sorted above B (IoU 0.6 < 0.9, H = 1): sorting pmf (A: 1).
    # ranking = (0 + 0.4)/2 = 0.2, sorting = (0 + 0.2)/2 = 0.1. Updates, divided by |P| = 2:
    # B: -0.4/2 - 0.2/2 = -0.3; A: +0.2/2 = 0.1; negative 1.5: 0.4 · H(0.5)/1 / 2 = 0.2.
    logits = torch.tensor([2.0, 1.5, 1.0, -1.0], dtype=F64)
    targets = torch.tensor([0.6, 0.0, 0.9, 0.0], dtype=F64)
    out, grad = _backward(logits, targets, delta=0.5)
    assert float(out.ranking) == pytest.approx(0.2, abs=1e-15)
    assert float(out.sorting) == pytest.approx(0.1, abs=1e-15)
    assert grad.tolist() == pytest.approx([0.1, 0.2, -0.3, 0.0], abs=1e-15)


def test_a_positive_counts_itself_with_h_of_zero() -> None:
    # One positive tied with one negative, δ = 0.5: rank⁺ = H(0) = 1/2 and N_FP = H(0) = 1/2,
    # so RE = 1/2 (aLRP Loss, which counts itself as 1, would give 1/3); δ = 0: H(0) = 1 for
    # both, RE = 1/2 again.
    logits = torch.tensor([0.3, 0.3], dtype=F64)
    targets = torch.tensor([0.7, 0.0], dtype=F64)
    for delta in (0.5, 0.0):
        out, grad = _backward(logits, targets, delta=delta)
        assert float(out.ranking) == pytest.approx(0.5, abs=1e-15)
        assert float(out.sorting) == 0.0
        assert grad.tolist() == pytest.approx([-0.5, 0.5], abs=1e-15)


def test_exact_step_sorting_with_ties() -> None:
    # δ = 0: H(0) = 1, so a tied positive of lower IoU is mis-sorted in full.
    # i (IoU 0.9) tied with k (IoU 0.5): rank⁺(i) = 2, current = (0.1 + 0.5) / 2 = 0.3,
    # target = 0.1 / 1 -> SE(i) = 0.2; k: target set {i, k}, nothing below: SE(k) = 0.
    logits = torch.tensor([1.0, 1.0, -3.0], dtype=F64)
    targets = torch.tensor([0.9, 0.5, 0.0], dtype=F64)
    out, grad = _backward(logits, targets, delta=0.0)
    assert float(out.ranking) == 0.0
    assert float(out.sorting) == pytest.approx(0.1, abs=1e-15)
    assert grad.tolist() == pytest.approx([-0.1, 0.1, 0.0], abs=1e-15)


@pytest.mark.parametrize("gap", [2e-7, 2e-11])
def test_updates_follow_the_published_eps_of_1e_10(gap: float) -> None:
    # δ = 1/2: a negative, or a positive of lower IoU, at s_i − δ + gap has H = gap. Above
    # 1e-10 it carries its part of the update; below, the error still counts in the value
    # but moves nothing (ranking_losses.py:69, 83).
    logits = torch.tensor([0.0, -0.5 + gap], dtype=F64)
    # A negative: RE = gap / (1/2 + gap), one positive.
    # A positive of IoU 0.3 below one of 0.8: SE = (1/2 · 0.2 + gap · 0.7)/(1/2 + gap) − 0.2
    # for the upper one, 0 for the lower one; mean over the two positives.
    cases = [(0.0, "ranking", gap / (0.5 + gap)), (0.3, "sorting", gap / (2 + 4 * gap))]
    for other, part, expected in cases:
        t = torch.tensor([0.8, other], dtype=F64)
        out, grad = _backward(logits, t, delta=0.5)
        assert float(getattr(out, part)) == pytest.approx(expected, rel=1e-6)
        moved = expected if gap > 1e-10 else 0.0
        assert grad.tolist() == pytest.approx([-moved, moved], rel=1e-6, abs=0)
        assert_close(grad, rs_loss_reference(logits, t, delta=0.5).grad_logits, 1e-9, "update")


@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_equal_ious_have_no_sorting_error(delta: float) -> None:
    logits, targets = make_rs_problem(4, "overlapping", 200, levels=1)  # every IoU 1
    for scale in (1.0, 0.35):
        t = torch.where(targets > 0, targets * scale, targets)
        out, grad = _backward(logits, t, delta=delta)
        ref = rs_loss_reference(logits, t, delta=delta)
        assert float(out.sorting) == 0.0
        assert float(out.ranking) > 0
        assert_close(grad, ref.grad_ranking, 1e-12, "only the ranking part")


@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_one_positive(delta: float) -> None:
    logits = torch.tensor([0.2, 0.5, -0.1, 0.9], dtype=F64)
    targets = torch.tensor([0.0, 0.4, 0.0, 0.0], dtype=F64)
    out, grad = _backward(logits, targets, delta=delta)
    ref = rs_loss_reference(logits, targets, delta=delta)
    assert float(out.sorting) == 0.0  # nothing to sort
    assert float(out.ranking) == pytest.approx(float(ref.ranking), abs=1e-15)
    assert_close(grad, ref.grad_logits, 1e-15, "update")


@pytest.mark.parametrize("targets", [[0.0, 0.0, 0.0], [-1.0, -1.0, -1.0], [0.0, -1.0, 0.0], []])
def test_no_positive_gives_zeros_that_still_backpropagate(targets: list[float]) -> None:
    logits = torch.randn(len(targets), requires_grad=True)
    out = rs_loss(logits, torch.tensor(targets))
    (out.ranking + out.sorting).backward()
    assert float(out.ranking) == 0.0 and float(out.sorting) == 0.0
    assert out.ranking.dtype == torch.float32
    assert torch.equal(logits.grad, torch.zeros(len(targets)))
    ref = rs_loss_reference(logits.detach(), torch.tensor(targets))
    assert float(ref.ranking) == 0.0 and torch.equal(ref.grad_logits, logits.grad)


def test_all_ignored_but_one_positive() -> None:
    logits = torch.tensor([0.1, 5.0, 4.0], requires_grad=True)
    out = rs_loss(logits, torch.tensor([0.8, -1.0, -1.0]))
    (out.ranking + out.sorting).backward()
    assert float(out.ranking) == 0.0 and float(out.sorting) == 0.0
    assert torch.equal(logits.grad, torch.zeros(3))


def test_negatives_below_min_positive_minus_delta_are_irrelevant() -> None:
    # The published code drops them before the loop; here they land in a bin no sum covers.
    logits = torch.tensor([1.0, 0.5, 0.49, -5.0, 0.51], dtype=F64)
    targets = torch.tensor([0.9, 0.3, 0.0, 0.0, 0.0], dtype=F64)
    out, grad = _backward(logits, targets, delta=0.0)
    assert grad[2] == 0 and grad[3] == 0 and grad[4] > 0
    ref = rs_loss_reference(logits, targets, delta=0.0)
    assert_close(grad, ref.grad_logits, 1e-15, "update")
    assert float(out.ranking) == pytest.approx(float(ref.ranking), abs=1e-15)


def test_integer_targets_are_positives_with_iou_one() -> None:
    logits, targets = make_rs_problem(2, "ties", 100)
    labels = (targets > 0).long() - (targets == -1).long()
    out_int, grad_int = _backward(logits, labels, delta=0.5)
    out_one, grad_one = _backward(logits, (targets > 0).double() - (targets == -1).double())
    assert torch.equal(out_int.ranking, out_one.ranking) and float(out_int.sorting) == 0.0
    assert torch.equal(grad_int, grad_one)


def test_a_zero_iou_positive_is_a_negative() -> None:
    # As in the published head (flat_labels[flat_labels == 1] = IoU, then targets > 0): an
    # IoU of 0 makes the pair a negative, which outranks the positive of IoU 0.4 and is
    # pushed down.
    logits = torch.tensor([1.0, 0.8, 0.2], dtype=F64)
    targets = torch.tensor([0.9, 0.0, 0.4], dtype=F64)
    out, grad = _backward(logits, targets)
    assert grad[1] > 0 and grad[2] < 0
    assert float(out.ranking) > 0
    assert_close(grad, rs_loss_reference(logits, targets).grad_logits, 1e-15, "update")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_return_their_dtype(dtype: torch.dtype) -> None:
    logits64, targets = make_rs_problem(0, "overlapping", 500)
    logits = logits64.to(dtype).requires_grad_()
    out = rs_loss(logits, targets.to(dtype))
    (out.ranking + out.sorting).backward()
    assert out.ranking.dtype == dtype and out.sorting.dtype == dtype
    assert logits.grad.dtype == dtype
    ref = rs_loss_reference(logits.detach().double(), targets.to(dtype).double())
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    assert float(out.ranking) == pytest.approx(float(ref.ranking), abs=tol)
    assert float(out.sorting) == pytest.approx(float(ref.sorting), abs=tol)
    assert_close(logits.grad, ref.grad_logits, tol, "update")


def test_bad_inputs_raise_value_errors() -> None:
    logits = torch.randn(4)
    for bad in ([0.5, 0.0, 1.5, 0.0], [0.5, -0.5, 0.0, 0.0], [0.5, float("nan"), 0.0, 0.0]):
        with pytest.raises(ValueError, match=r"IoU in \(0, 1\]"):
            rs_loss(logits, torch.tensor(bad))
    with pytest.raises(ValueError, match="real tensor"):
        rs_loss(logits, torch.tensor([True, False, False, False]))
    with pytest.raises(ValueError, match="must match"):
        rs_loss(logits, torch.tensor([0.5, 0.0]))
    with pytest.raises(ValueError, match="delta"):
        rs_loss(logits, torch.tensor([0.5, 0.0, 0.0, 0.0]), delta=-0.1)
    nan_logits = torch.tensor([0.0, float("nan"), 1.0, 2.0])
    with pytest.raises(ValueError, match=r"1 non-finite values.*first at index 1"):
        rs_loss(nan_logits, torch.tensor([0.5, 0.0, 0.0, 0.0]))
    # Ignored pairs may hold anything.
    out = rs_loss(nan_logits, torch.tensor([0.5, -1.0, 0.0, 0.0]))
    assert torch.isfinite(out.ranking)


def test_backward_through_a_retained_graph_accumulates_exactly() -> None:
    logits, targets = make_rs_problem(1, "overlapping", 60)
    x = logits.clone().requires_grad_()
    out = rs_loss(x, targets)
    loss = out.ranking + out.sorting
    loss.backward(retain_graph=True)
    once = x.grad.clone()
    loss.backward(retain_graph=True)
    out.ranking.backward(retain_graph=True)
    out.sorting.backward()
    assert torch.allclose(x.grad, 3 * once, rtol=1e-15, atol=1e-17)


def test_module_equals_function_and_examples_run() -> None:
    logits, targets = make_rs_problem(0, "ties", 80)
    out = RSLoss(delta=0.0)(logits, targets)
    assert isinstance(out, RSLossOutput)
    expected = rs_loss(logits, targets, delta=0.0)
    assert torch.equal(out.ranking, expected.ranking)
    assert torch.equal(out.sorting, expected.sorting)
    assert RSLoss().delta == 0.5  # rank_based_atss_head.py:37
    result = doctest.testmod(rs, extraglobs={"torch": torch}, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_targets_are_constants_even_when_they_require_grad() -> None:
    # An IoU computed from the predicted boxes without detaching: the loss treats it as a
    # constant, as the published head does (bbox_overlaps of detached boxes).
    logits, targets = make_rs_problem(5, "overlapping", 50)
    live = targets.clone().requires_grad_()
    x = logits.clone().requires_grad_()
    out = rs_loss(x, live)
    (out.ranking + out.sorting).backward()
    assert live.grad is None
    assert torch.equal(x.grad, _backward(logits, targets)[1])
