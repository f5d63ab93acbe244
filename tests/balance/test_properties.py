"""Property tests: on arbitrary small inputs (ties, one-sided, extreme scales) Theorem 2
holds for aLRP and AP Loss, and the reported sums are the plain-loop sums of |grad|."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alrp_cli.balance import Problem, check_balance
from alrp_cli.balance.check import update_of
from alrp_cli.balance.specs import builtin_specs

scores = st.one_of(
    st.sampled_from([-1000.0, -1.0, 0.0, 0.5, 1.0, 1000.0]),  # ties and extremes
    st.floats(-50, 50, allow_nan=False, allow_subnormal=False),
)


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(1, 24))
    logits = draw(st.lists(scores, min_size=n, max_size=n))
    targets = draw(st.lists(st.sampled_from([1, 0, 0, -1]), min_size=n, max_size=n))
    num_pos = targets.count(1)
    loc = draw(st.lists(st.floats(0, 1), min_size=num_pos, max_size=num_pos))
    delta = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    return Problem(
        0,
        0,
        torch.tensor(logits, dtype=torch.float64),
        torch.tensor(targets),
        torch.tensor(loc, dtype=torch.float64),
        delta,
        "hypothesis",
    )


@settings(max_examples=60, deadline=None)
@given(problems())
def test_theorem_2_on_arbitrary_small_inputs(problem: Problem) -> None:
    specs = builtin_specs()
    report = check_balance([problem], [specs["alrp"], specs["ap"]], tolerance=1e-9)
    for summary in report.losses:
        assert summary.passed, (summary.name, summary.failure_reason)
    for result in report.trials:
        _, grad = update_of(specs[result.loss], problem)
        pos = sum(abs(float(g)) for g, t in zip(grad, problem.targets, strict=True) if t == 1)
        neg = sum(abs(float(g)) for g, t in zip(grad, problem.targets, strict=True) if t == 0)
        assert abs(result.sum_pos - pos) <= 1e-12 and abs(result.sum_neg - neg) <= 1e-12
