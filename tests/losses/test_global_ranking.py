"""Global ranking with ranks simulated by threads: equal to one process on the whole batch.

Real gloo processes run the same cases in tests/detection/test_collective.py.
"""

from __future__ import annotations

import ast

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alrp_cli.losses import ALRPLoss, APLoss, alrp_loss, ap_loss
from alrp_cli.losses.collective import Collective, LocalCollective, ThreadedCollective, run_ranks
from tests.helpers.loss_problems import REGIMES
from tests.helpers.paths import REPO
from tests.helpers.sharding import (
    assert_close,
    check_global,
    make_case,
    run_local,
    run_rank,
    standard_cases,
)


@pytest.mark.parametrize("world_size", [2, 3])
def test_standard_cases_equal_one_process(world_size: int) -> None:
    for case in standard_cases(world_size):
        check_global(case, run_ranks(world_size, lambda c, case=case: run_rank(c, case)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    regime=st.sampled_from(REGIMES),
    n=st.integers(1, 200),
    world_size=st.integers(1, 4),
    delta=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    data=st.data(),
)
def test_random_shards_equal_one_process(seed, regime, n, world_size, delta, dtype, data) -> None:
    if regime == "wide" and dtype == torch.float32:
        delta *= 100  # keep δ meaningful relative to float32 spacing of |s| ~ 1e3
    cuts = sorted(
        data.draw(st.lists(st.integers(0, n), min_size=world_size - 1, max_size=world_size - 1))
    )
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    case = make_case("random", seed, regime, n, world_size, delta, dtype, sizes=sizes)
    check_global(case, run_ranks(world_size, lambda c: run_rank(c, case)))


def test_grid_binning_on_one_rank_binary_search_on_the_other() -> None:
    # 20,000 elements take the grid path of the binning, 500 binary search: same bins.
    for delta in (0.0, 1.0):
        case = make_case("grid", 8, "ties", 20_500, 2, delta, sizes=[20_000, 500])
        keep = torch.rand(20_500, generator=torch.Generator().manual_seed(0)) < 0.005
        case.loc_errors = case.loc_errors[keep[case.targets == 1]]
        case.targets = torch.where(keep | (case.targets != 1), case.targets, 0)
        check_global(case, run_ranks(2, lambda c, case=case: run_rank(c, case)))


def test_local_collective_is_bit_identical_to_none() -> None:
    case = make_case("local", 9, "overlapping", 300, 1, 0.5)
    with_local = run_local(LocalCollective(), case.logits, case.targets, case.loc_errors, 0.5)
    without = run_local(None, case.logits, case.targets, case.loc_errors, 0.5)
    for key, value in without.items():
        assert torch.equal(with_local[key], value), key
    assert isinstance(LocalCollective(), Collective)
    assert isinstance(ThreadedCollective.group(2)[1], Collective)


def test_only_positives_and_bins_cross_the_wire() -> None:
    # Same positives, 10× more negatives: the bytes exchanged do not change. They are one
    # all-gather of (1 + P_r) × 2 float64 and one all-reduce of 2 × (2P + 1) float64 bins.
    def bytes_for(n_neg: int) -> list[int]:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2 * (40 + n_neg), generator=g, dtype=torch.float64)
        targets = torch.zeros(logits.numel(), dtype=torch.long)
        targets[:40] = 1
        targets[40 + n_neg : 80 + n_neg] = 1
        e = torch.rand(80, generator=g, dtype=torch.float64)
        case = make_case("bytes", 0, "ties", 2, 2, 1.0)
        case.logits, case.targets, case.loc_errors = logits, targets, e
        case.sizes = [40 + n_neg] * 2

        def fn(c: ThreadedCollective) -> int:
            lg, t, ee = case.shard(c.rank)
            alrp_loss(lg, t, ee, delta=1.0, collective=c)
            assert c.num_calls == 2
            return c.bytes_sent

        return run_ranks(2, fn)

    small, large = bytes_for(1_000), bytes_for(10_000)
    assert small == large
    num_bins = 2 * 80 + 1  # at most; distinct edges only
    assert small[0] <= 8 * (41 * 2 + 2 * num_bins)


@pytest.mark.parametrize("bad", ["nan_logits", "short_loc_errors"])
def test_bad_input_on_one_rank_raises_on_every_rank(bad: str) -> None:
    # The bad rank raises its own error; the others learn of it from the all-gather and
    # raise too, instead of waiting forever in the next collective.
    case = make_case("bad", 10, "overlapping", 100, 2, 1.0)
    bad_rank = 1 if bad == "nan_logits" else 0

    def fn(c: ThreadedCollective) -> str:
        logits, targets, e = case.shard(c.rank)
        if c.rank == bad_rank and bad == "nan_logits":
            logits = logits.clone()
            logits[targets == 0] = float("nan")
        elif c.rank == bad_rank:
            e = e[:-1]
        with pytest.raises(ValueError) as info:
            alrp_loss(logits, targets, e, collective=c)
        return str(info.value)

    messages = run_ranks(2, fn)
    own = "non-finite" if bad == "nan_logits" else "loc_errors must be 1-D"
    assert own in messages[bad_rank]
    assert f"rank(s) [{bad_rank}]" in messages[1 - bad_rank]


def test_modules_self_balance_from_global_means() -> None:
    # Five steps, period 2: the weight is updated twice from the global cls and loc, the
    # same on every rank and the same as one process on the whole batches.
    cases = [make_case(f"step{i}", 20 + i, "overlapping", 120, 2, 1.0) for i in range(5)]
    single = ALRPLoss(period=2, init_weight=10.0)
    expected = [single(c.logits, c.targets, c.loc_errors) for c in cases]
    ap_single = [APLoss(delta=0.5)(c.logits, c.targets) for c in cases]

    def fn(c: ThreadedCollective) -> list[tuple[torch.Tensor, ...]]:
        crit = ALRPLoss(period=2, init_weight=10.0, collective=c)
        ap_crit = APLoss(delta=0.5, collective=c)
        out = []
        for case in cases:
            logits, targets, e = case.shard(c.rank)
            res = crit(logits, targets, e)
            out.append((res.total, res.weight, ap_crit(logits, targets)))
        return out

    per_rank = run_ranks(2, fn)
    weights = [float(w) for _, w, _ in per_rank[0]]
    assert len(set(weights)) == 3  # 10, then two self-balanced values
    for step, exp in enumerate(expected):
        for rank in range(2):
            total, weight, ap = per_rank[rank][step]
            assert torch.equal(weight, per_rank[0][step][1])
            assert torch.equal(total, per_rank[0][step][0])
            assert float(weight) == pytest.approx(float(exp.weight), rel=1e-12)
            assert float(total) == pytest.approx(float(exp.total), rel=1e-9)
            assert float(ap) == pytest.approx(float(ap_single[step]), rel=1e-9)


def test_world_size_times_loss_under_gradient_averaging_is_the_one_process_gradient() -> None:
    # What DistributedDataParallel does: each rank backpropagates its loss through its own
    # replica of the model, then the parameter gradients are averaged over the ranks.
    torch.manual_seed(0)
    features = torch.randn(300, 4, dtype=torch.float64)
    targets = (features[:, 0] + 0.5 * torch.randn(300, dtype=torch.float64) > 0.8).long()
    e = torch.rand(int(targets.sum()), dtype=torch.float64)
    model = torch.nn.Linear(4, 1).double()

    def step(m: torch.nn.Linear, x, t, ee, collective=None, scale: float = 1.0) -> list:
        m.zero_grad()
        out = alrp_loss(m(x).squeeze(1), t, ee, delta=0.5, collective=collective)
        (scale * (out.cls + ap_loss(m(x).squeeze(1), t, collective=collective))).backward()
        return [p.grad.clone() for p in m.parameters()]

    expected = step(model, features, targets, e)
    case = make_case("ddp", 0, "ties", 2, 2, 0.5)
    case.logits, case.targets, case.loc_errors, case.sizes = features, targets, e, [130, 170]

    def fn(c: ThreadedCollective) -> list:
        replica = torch.nn.Linear(4, 1).double()
        replica.load_state_dict(model.state_dict())
        x, t, ee = case.shard(c.rank)
        grads = step(replica, x, t, ee, collective=c, scale=c.world_size)
        return [g / c.world_size for g in (c.all_reduce_sum(g) for g in grads)]

    want = torch.cat([g.flatten() for g in expected])
    for averaged in run_ranks(2, fn):
        # (The bias gradient is ~0: the update is balanced, its sum over the logits is 0.)
        got = torch.cat([g.flatten() for g in averaged])
        assert_close(got, want, 1e-9, "averaged parameter gradients")


def test_losses_package_never_imports_torch_distributed() -> None:
    for path in (REPO / "alrp_cli" / "losses").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            assert not any(n.startswith("torch.distributed") for n in names), path


def test_threaded_collective_operations() -> None:
    def fn(c: ThreadedCollective) -> tuple[list[torch.Tensor], torch.Tensor]:
        mine = torch.full((c.rank, 2), float(c.rank))  # rank 0 sends an empty tensor
        return c.all_gather(mine), c.all_reduce_sum(torch.tensor([1.0, c.rank]))

    for gathered, total in run_ranks(3, fn):
        assert [tuple(t.shape) for t in gathered] == [(0, 2), (1, 2), (2, 2)]
        assert torch.equal(gathered[2], torch.full((2, 2), 2.0))
        assert torch.equal(total, torch.tensor([3.0, 3.0]))
    with pytest.raises(ValueError, match="world_size"):
        ThreadedCollective.group(0)
