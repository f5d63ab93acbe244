"""Module forms: equal to the functions; the self-balance rule; exact resume via state_dict."""

from __future__ import annotations

import pytest
import torch

from alrp_cli.losses import ALRPLoss, APLoss, alrp_loss, ap_loss
from tests.helpers.loss_problems import make_problem


def _inputs(seed: int):
    return make_problem(seed, "overlapping", 200)


def test_modules_equal_functions() -> None:
    logits, targets, e = _inputs(0)
    crit = ALRPLoss(period=10, init_weight=7.0, delta=0.5)
    res = crit(logits, targets, e)
    out = alrp_loss(logits, targets, e, delta=0.5)
    assert torch.equal(res.cls, out.cls) and torch.equal(res.loc, out.loc)
    assert float(res.total) == pytest.approx(float(out.cls + 7.0 * out.loc))
    assert torch.equal(APLoss(delta=0.5)(logits, targets), ap_loss(logits, targets, delta=0.5))


def test_self_balance_rule_on_a_hand_made_sequence() -> None:
    crit = ALRPLoss(period=3, init_weight=50.0)
    values = []
    weights = []
    for step in range(7):
        res = crit(*_inputs(step))
        values.append((float(res.cls), float(res.loc)))
        weights.append(float(res.weight))
    cls1 = [c for c, _ in values[:3]]
    loc1 = [loc for _, loc in values[:3]]
    w1 = (sum(loc1) / 3 + sum(cls1) / 3) / (sum(loc1) / 3)
    cls2 = [c for c, _ in values[3:6]]
    loc2 = [loc for _, loc in values[3:6]]
    w2 = (sum(loc2) / 3 + sum(cls2) / 3) / (sum(loc2) / 3)
    # The weight changes at the call that completes a period (as in the published code).
    assert weights[:2] == [50.0, 50.0]
    assert weights[2] == pytest.approx(w1, rel=1e-12)
    assert weights[3:5] == pytest.approx([w1, w1], rel=1e-12)
    assert weights[5] == pytest.approx(w2, rel=1e-12)
    assert weights[6] == pytest.approx(w2, rel=1e-12)
    assert w1 != pytest.approx(50.0)


def test_eval_mode_does_not_accumulate() -> None:
    crit = ALRPLoss(period=1, init_weight=50.0).eval()
    crit(*_inputs(0))
    assert float(crit.weight) == 50.0 and crit.count == 0


def test_state_dict_resumes_exactly() -> None:
    straight = ALRPLoss(period=4)
    for step in range(6):
        straight(*_inputs(step))
    first = ALRPLoss(period=4)
    for step in range(3):
        first(*_inputs(step))
    resumed = ALRPLoss(period=4)
    resumed.load_state_dict(first.state_dict())
    for step in range(3, 6):
        resumed(*_inputs(step))
    assert resumed.count == straight.count == 2
    for name, value in straight.state_dict().items():
        if torch.is_tensor(value):
            assert torch.equal(value, resumed.state_dict()[name]), name
    assert set(straight.state_dict()) >= {"weight", "cls_sum", "loc_sum", "_extra_state"}


def test_bad_period() -> None:
    with pytest.raises(ValueError, match="period"):
        ALRPLoss(period=0)
