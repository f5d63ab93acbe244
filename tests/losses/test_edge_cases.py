"""Hand-computed values and the edge cases of both losses."""

from __future__ import annotations

import pytest
import torch

from alrp_cli.losses import alrp_loss, ap_loss
from alrp_cli.losses.reference import alrp_loss_reference, ap_loss_reference


def test_alrp_hand_computed_example() -> None:
    # Positives 2.0 (e=0.2) and 1.0 (e=0.4); negatives 1.5 and -1.0; δ = 0.5.
    # Positive 2.0: rank⁺ = 1, N_FP = H(-0.5) = 0 -> rank 1, inactive.
    # Positive 1.0: rank⁺ = 1 + H(1) = 2, N_FP = H(0.5) = 1 -> rank 3.
    # L_cls = (0/1 + 1/3) / 2 = 1/6; L_loc = (0.2/1 + (0.2 + 0.4)/3) / 2 = 0.2.
    # g(1.0) = -(1 + H(1)·0.2) / 3 / 2 = -0.2; g(neg 1.5) = 0.2 · H(0.5) / 1 = 0.2.
    logits = torch.tensor([2.0, 1.5, 1.0, -1.0], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 0, 1, 0])
    e = torch.tensor([0.2, 0.4], dtype=torch.float64, requires_grad=True)
    out = alrp_loss(logits, targets, e, delta=0.5)
    assert float(out.cls) == pytest.approx(1 / 6, abs=1e-15)
    assert float(out.loc) == pytest.approx(0.2, abs=1e-15)
    assert out.rank.tolist() == pytest.approx([1.0, 3.0])
    out.cls.backward()
    assert logits.grad.tolist() == pytest.approx([0.0, 0.2, -0.2, 0.0], abs=1e-15)
    out.loc.backward()
    # d L_loc / d e_1 = (1/1 + 1/3) / 2, d L_loc / d e_2 = (1/3) / 2.
    assert e.grad.tolist() == pytest.approx([2 / 3, 1 / 6], abs=1e-15)


def test_ap_hand_computed_example() -> None:
    # Same scores: precisions 1 (score 2.0) and 2/3 (score 1.0). Ascending visit:
    # ip(1.0) = 2/3, ip(2.0) = 1 -> L_AP = 1 - (2/3 + 1)/2 = 1/6.
    logits = torch.tensor([2.0, 1.5, 1.0, -1.0], dtype=torch.float64, requires_grad=True)
    loss = ap_loss(logits, torch.tensor([1, 0, 1, 0]), delta=0.5)
    assert float(loss) == pytest.approx(1 / 6, abs=1e-15)
    loss.backward()
    # g(1.0) = -(1 - 2/3)/2; g(neg 1.5) = (H(0.5)/3 + 0)/2 = 1/6.
    assert logits.grad.tolist() == pytest.approx([0.0, 1 / 6, -1 / 6, 0.0], abs=1e-15)


def test_interpolation_changes_the_ap_update() -> None:
    # Lower-scored positive with higher precision than the one above it: ip > precision.
    logits = torch.tensor([3.0, 2.9, 2.0, 0.0], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1, 0, 1])
    loss = ap_loss(logits, targets, delta=0.0)
    # precision(2.9) = 1/2; precision(0.0) = 2/4. Equal -> c = 1 everywhere.
    assert float(loss) == pytest.approx(0.5)
    logits2 = torch.tensor([3.0, 2.9, 2.8, 2.7, 0.0], dtype=torch.float64, requires_grad=True)
    targets2 = torch.tensor([0, 1, 0, 0, 1])
    # precision(2.9) = 1/2, precision(0.0) = 2/5; ip(2.9) = max(2/5, 1/2) = 1/2.
    loss2 = ap_loss(logits2, targets2, delta=0.0)
    assert float(loss2) == pytest.approx(1 - (1 / 2 + 2 / 5) / 2)
    loss2.backward()
    ref = ap_loss_reference(logits2, targets2, delta=0.0)
    assert torch.allclose(logits2.grad, ref.grad_logits, atol=1e-15)


@pytest.mark.parametrize("delta", [0.0, 1.0])
def test_no_positives_gives_zero_and_still_backpropagates(delta: float) -> None:
    logits = torch.randn(10, requires_grad=True)
    targets = torch.zeros(10, dtype=torch.long)
    e = torch.zeros(0, requires_grad=True)
    out = alrp_loss(logits, targets, e, delta=delta)
    (out.cls + out.loc).backward()
    assert float(out.cls) == 0.0 and float(out.loc) == 0.0
    assert out.rank.shape == (0,)
    assert torch.equal(logits.grad, torch.zeros(10))
    logits.grad = None
    ap_loss(logits, targets, delta=delta).backward()
    assert torch.equal(logits.grad, torch.zeros(10))


def test_empty_input_backpropagates() -> None:
    logits = torch.zeros(0, requires_grad=True)
    out = alrp_loss(logits, torch.zeros(0, dtype=torch.long), torch.zeros(0))
    out.cls.backward()
    assert logits.grad.shape == (0,)


def test_no_relevant_negatives() -> None:
    logits = torch.tensor([5.0, 4.0, -10.0, -20.0], requires_grad=True)
    targets = torch.tensor([1, 1, 0, 0])
    e = torch.tensor([0.5, 0.25])
    out = alrp_loss(logits, targets, e)
    out.cls.backward()
    assert float(out.cls) == 0.0
    assert torch.equal(logits.grad, torch.zeros(4))
    # Localisation still counts: ranks 1 and 2 (H(1) = 1 at δ = 1): (0.5/1 + 0.75/2) / 2.
    assert float(out.loc) == pytest.approx(0.4375)


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.0])
def test_all_scores_tied(delta: float) -> None:
    logits = torch.full((6,), 0.3, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 0, 1, 0, -1, 1])
    e = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    out = alrp_loss(logits, targets, e, delta=delta)
    out.cls.backward()
    ref = alrp_loss_reference(logits, targets, e, delta=delta)
    assert float(out.cls) == pytest.approx(float(ref.cls), abs=1e-15)
    assert float(out.loc) == pytest.approx(float(ref.loc), abs=1e-15)
    assert torch.allclose(logits.grad, ref.grad_logits, atol=1e-15)
    # Ties are placed by input position for L_loc: cumulative e = 0.1, 0.3, 0.6 over equal ranks.
    assert torch.allclose(out.rank, out.rank[0].expand(3))


def test_exact_step_counts_ties_as_false_positives() -> None:
    # δ = 0: H(0) = 1, a negative tied with a positive counts fully.
    logits = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    out = alrp_loss(
        logits, torch.tensor([1, 0, 0]), torch.tensor([0.0], dtype=torch.float64), delta=0
    )
    assert float(out.cls) == pytest.approx(0.5)
    assert out.rank.tolist() == [2.0]


@pytest.mark.parametrize("target", [1, 0, -1])
def test_one_element(target: int) -> None:
    logits = torch.tensor([0.7], requires_grad=True)
    e = torch.tensor([0.3]) if target == 1 else torch.zeros(0)
    out = alrp_loss(logits, torch.tensor([target]), e)
    out.cls.backward()
    assert float(out.cls) == 0.0
    assert float(out.loc) == pytest.approx(0.3 if target == 1 else 0.0)
    assert torch.equal(logits.grad, torch.zeros(1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_return_their_dtype(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    logits64 = torch.randn(500, generator=g, dtype=torch.float64)
    targets = (torch.rand(500, generator=g) < 0.1).long()
    e64 = torch.rand(int(targets.sum()), generator=g, dtype=torch.float64)
    logits = logits64.to(dtype).requires_grad_()
    e = e64.to(dtype).requires_grad_()
    out = alrp_loss(logits, targets, e)
    (out.cls + out.loc).backward()
    assert out.cls.dtype == dtype and out.loc.dtype == dtype
    assert logits.grad.dtype == dtype and e.grad.dtype == dtype
    ref = alrp_loss_reference(logits.detach().double(), targets, e.detach().double())
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    assert float(out.cls) == pytest.approx(float(ref.cls), abs=tol)
    assert torch.allclose(
        logits.grad.double(), ref.grad_logits, atol=tol * float(ref.grad_logits.abs().max())
    )
    assert ap_loss(logits.detach(), targets).dtype == dtype


def test_non_finite_logits_are_reported_with_count_and_index() -> None:
    logits = torch.tensor([0.0, float("nan"), 1.0, float("inf")])
    with pytest.raises(ValueError, match=r"2 non-finite values.*first at index 1"):
        alrp_loss(logits, torch.tensor([1, 0, 0, 0]), torch.tensor([0.1]))
    with pytest.raises(ValueError, match="non-finite"):
        ap_loss(logits, torch.tensor([1, 0, 0, 0]))


def test_non_finite_logits_of_ignored_pairs_are_allowed() -> None:
    logits = torch.tensor([0.5, float("inf"), 0.2, float("nan")], requires_grad=True)
    targets = torch.tensor([1, -1, 0, -1])
    out = alrp_loss(logits, targets, torch.tensor([0.1]))
    out.cls.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[1] == 0 and logits.grad[3] == 0


def test_bad_inputs_raise_value_errors() -> None:
    logits = torch.randn(4)
    with pytest.raises(ValueError, match="targets must be"):
        alrp_loss(logits, torch.tensor([1, 0, 2, 0]), torch.tensor([0.1]))
    with pytest.raises(ValueError, match="one entry per positive"):
        alrp_loss(logits, torch.tensor([1, 1, 0, 0]), torch.tensor([0.1]))
    with pytest.raises(ValueError, match="must match"):
        ap_loss(logits, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="delta"):
        ap_loss(logits, torch.tensor([1, 0, 0, 0]), delta=-1.0)
    with pytest.raises(ValueError, match="1-D"):
        ap_loss(logits.view(2, 2), torch.tensor([[1, 0], [0, 0]]))


def test_upstream_gradient_scales_the_update_and_loc_does_not_touch_logits() -> None:
    logits = torch.randn(50, dtype=torch.float64, requires_grad=True)
    targets = (torch.arange(50) % 7 == 0).long()
    e = torch.rand(int(targets.sum()), dtype=torch.float64, requires_grad=True)
    out = alrp_loss(logits, targets, e)
    (3.0 * out.cls).backward(retain_graph=True)
    first = logits.grad.clone()
    logits.grad = None
    out.cls.backward(retain_graph=True)
    assert torch.allclose(first, 3.0 * logits.grad)
    logits.grad = None
    out.loc.backward()
    assert logits.grad is None
    assert e.grad is not None and bool((e.grad > 0).all())


def test_backward_through_a_retained_graph_accumulates_exactly() -> None:
    # The update is handed to autograd as is when the upstream gradient is 1; accumulating
    # into .grad must never modify the saved update.
    logits = torch.randn(40, dtype=torch.float64, requires_grad=True)
    targets = (torch.arange(40) % 5 == 0).long()
    for loss in (
        alrp_loss(logits, targets, torch.rand(8, dtype=torch.float64)).cls,
        ap_loss(logits, targets),
    ):
        logits.grad = None
        loss.backward(retain_graph=True)
        once = logits.grad.clone()
        loss.backward(retain_graph=True)
        loss.backward()
        assert torch.allclose(logits.grad, 3 * once, rtol=1e-15, atol=0)
