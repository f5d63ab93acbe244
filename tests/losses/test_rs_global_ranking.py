"""Rank & Sort Loss over the global batch, ranks simulated by threads: equal to one process
on the concatenated batch. Real gloo processes run the same cases in
tests/detection/test_collective.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alrp_cli.losses import RSLoss, rs_loss
from alrp_cli.losses.collective import ThreadedCollective, run_ranks
from tests.helpers.loss_problems import REGIMES, iou_targets
from tests.helpers.sharding import assert_close, make_case
from tests.helpers.sharding_rs import check_global, rs_cases, run_rank, shard


@pytest.mark.parametrize("world_size", [2, 3])
def test_standard_cases_equal_one_process(world_size: int) -> None:
    for case in rs_cases(world_size):
        check_global(case, run_ranks(world_size, lambda c, case=case: run_rank(c, case)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    regime=st.sampled_from(REGIMES),
    n=st.integers(1, 200),
    world_size=st.integers(1, 4),
    delta=st.sampled_from([0.0, 0.5, 1.0]),
    levels=st.sampled_from([0, 2]),
    data=st.data(),
)
def test_random_shards_equal_one_process(seed, regime, n, world_size, delta, levels, data) -> None:
    cuts = sorted(
        data.draw(st.lists(st.integers(0, n), min_size=world_size - 1, max_size=world_size - 1))
    )
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    case = make_case("random", seed, regime, n, world_size, delta, sizes=sizes)
    case.targets = iou_targets(case.targets, seed, levels)
    check_global(case, run_ranks(world_size, lambda c: run_rank(c, case)))


def test_only_positives_and_bins_cross_the_wire() -> None:
    # Same positives, 10× more negatives: the bytes do not change. One all-gather of
    # (1 + P_r) × 2 float64 (score, IoU) and one all-reduce of 2 × (≤ 2P + 1) float64 bins.
    def bytes_for(n_neg: int) -> list[int]:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2 * (40 + n_neg), generator=g, dtype=torch.float64)
        targets = torch.zeros(logits.numel(), dtype=torch.float64)
        targets[:40] = torch.rand(40, generator=g, dtype=torch.float64) + 0.01
        targets[40 + n_neg : 80 + n_neg] = 0.5

        def fn(c: ThreadedCollective) -> int:
            part = slice(c.rank * (40 + n_neg), (c.rank + 1) * (40 + n_neg))
            rs_loss(logits[part], targets[part], collective=c)
            assert c.num_calls == 2
            return c.bytes_sent

        return run_ranks(2, fn)

    small, large = bytes_for(1_000), bytes_for(10_000)
    assert small == large
    assert small[0] <= 8 * (41 * 2 + 2 * (2 * 80 + 1))


def test_bad_input_on_one_rank_raises_on_every_rank() -> None:
    case = make_case("bad", 10, "overlapping", 100, 2, 0.5)
    case.targets = iou_targets(case.targets, 0)

    def fn(c: ThreadedCollective) -> str:
        logits, targets = shard(case, c.rank)
        if c.rank == 1:
            targets = targets.clone()
            targets[0] = 1.5
        with pytest.raises(ValueError) as info:
            rs_loss(logits, targets, collective=c)
        return str(info.value)

    messages = run_ranks(2, fn)
    assert "IoU in (0, 1]" in messages[1]
    assert "rank(s) [1]" in messages[0]


def test_world_size_times_loss_under_gradient_averaging_is_the_one_process_gradient() -> None:
    # What DistributedDataParallel does: each rank backpropagates through its own replica,
    # then the parameter gradients are averaged over the ranks.
    torch.manual_seed(0)
    features = torch.randn(300, 4, dtype=torch.float64)
    labels = (features[:, 0] + 0.5 * torch.randn(300, dtype=torch.float64) > 0.8).long()
    targets = iou_targets(labels, 3)
    model = torch.nn.Linear(4, 1).double()

    def step(m: torch.nn.Linear, x, t, collective=None, scale: float = 1.0) -> list:
        m.zero_grad()
        out = RSLoss(collective=collective)(m(x).squeeze(1), t)
        (scale * (out.ranking + out.sorting)).backward()
        return [p.grad.clone() for p in m.parameters()]

    expected = torch.cat([g.flatten() for g in step(model, features, targets)])
    sizes = [130, 170]

    def fn(c: ThreadedCollective) -> torch.Tensor:
        replica = torch.nn.Linear(4, 1).double()
        replica.load_state_dict(model.state_dict())
        part = slice(sum(sizes[: c.rank]), sum(sizes[: c.rank + 1]))
        grads = step(replica, features[part], targets[part], c, scale=c.world_size)
        return torch.cat([(c.all_reduce_sum(g) / c.world_size).flatten() for g in grads])

    for averaged in run_ranks(2, fn):
        assert_close(averaged, expected, 1e-9, "averaged parameter gradients")
