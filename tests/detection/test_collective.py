"""TorchDistributedCollective and the global-ranking losses in real gloo processes.

One fork of 3 processes: the 3-rank cases run on the world group, the 2-rank cases on a
sub-group of ranks 0 and 1. Each process writes its results to a file; the parent checks
them against one process on the whole batch and the loop reference
(tests/helpers/sharding.py; Rank & Sort Loss: tests/helpers/sharding_rs.py; its detector
loss, as alrp train computes it: tests/helpers/rs_batch.py). A
slow test checks DistributedDataParallel's averaged gradients of world_size × the global
loss against one process.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from alrp_cli.detection.collective import TorchDistributedCollective
from alrp_cli.detection.head_losses import compute_loss
from alrp_cli.losses import alrp_loss, ap_loss, rs_loss
from tests.helpers import sharding_rs as rs
from tests.helpers.rs_batch import part_of, rich_case, rs_inputs
from tests.helpers.sharding import assert_close, check_global, make_case, run_rank, standard_cases

WORLD = 3


def _ddp_problem() -> tuple[torch.Tensor, torch.Tensor, list[int], dict[str, torch.Tensor]]:
    """Features Tensor[300, 4], targets Tensor[300], shard sizes, initial Linear(4, 1) state."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(300, 4, generator=g, dtype=torch.float64)
    noise = 0.5 * torch.randn(300, generator=g, dtype=torch.float64)
    targets = (features[:, 0] + noise > 0.8).long()
    torch.manual_seed(0)
    state = torch.nn.Linear(4, 1).double().state_dict()
    return features, targets, [80, 100, 120], state


def _ddp_loss(model, features, targets, collective) -> torch.Tensor:
    """aLRP L_cls + AP Loss of the model's scores (the parameters get both updates)."""
    logits = model(features).squeeze(1)
    return alrp_loss(
        logits,
        targets,
        torch.zeros(int(targets.sum()), dtype=torch.float64),
        delta=0.5,
        collective=collective,
    ).cls + ap_loss(logits, targets, delta=0.5, collective=collective)


def _cases() -> dict[int, list]:
    return {2: standard_cases(2), 3: standard_cases(3)}


def _join(rank: int, init_file: str, *, timeout: int) -> None:
    """One thread per process, then the gloo group of WORLD processes through ``init_file``."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=timeout),
    )


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    _join(rank, init_file, timeout=60)
    try:
        pair = dist.new_group([0, 1])  # every rank must take part in creating it
        results: dict[str, object] = {}
        world = TorchDistributedCollective()
        # The operations themselves: variable lengths (rank 0 sends none), dtypes, sums.
        results["gather"] = world.all_gather(torch.full((rank, 2), float(rank + 1)))
        results["gather_int"] = world.all_gather(torch.arange(rank + 1))
        results["reduce"] = world.all_reduce_sum(torch.tensor([1.0, rank], dtype=torch.float64))
        results["bytes_after_ops"] = world.bytes_sent
        results["calls_after_ops"] = world.num_calls
        for w, group in ((3, None), (2, pair)):
            if rank >= w:
                continue
            collective = TorchDistributedCollective(group)
            for case in _cases()[w]:
                before = collective.num_calls
                results[f"{w}/{case.name}"] = run_rank(collective, case)
                results[f"{w}/{case.name}/calls"] = collective.num_calls - before
            for case in rs.rs_cases(w):
                before = collective.num_calls
                results[f"rs/{w}/{case.name}"] = rs.run_rank(collective, case)
                results[f"rs/{w}/{case.name}/calls"] = collective.num_calls - before
        # A bad input on rank 2 raises on every rank, instead of hanging the others.
        case = make_case("bad", 10, "overlapping", 90, 3, 1.0)
        logits, targets, e = case.shard(rank)
        if rank == 2:
            logits = torch.full_like(logits, float("nan"))
        try:
            alrp_loss(logits, targets, e, collective=world)
            results["bad"] = "no error"
        except ValueError as exc:
            results["bad"] = str(exc)
        logits, targets = rs.shard(rs.rs_cases(3)[0], rank)
        try:  # Rank & Sort: a target out of range on rank 2
            rs_loss(
                logits, torch.full_like(targets, 2.0) if rank == 2 else targets, collective=world
            )
            results["bad_rs"] = "no error"
        except ValueError as exc:
            results["bad_rs"] = str(exc)
        results["rs_detector"] = _rs_detector_rank(rank, world)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _rs_detector_rank(rank: int, collective: TorchDistributedCollective) -> dict[str, object]:
    """Rank & Sort's detector loss (alrp train --loss rs) on this rank's 2 of 6 images."""
    out, targets = rich_case(images=2 * WORLD, seed=2)
    part = slice(2 * rank, 2 * rank + 2)
    mine = part_of(out, part)
    parts = compute_loss("rs", rs_inputs(mine, targets[part]), None, collective=collective)
    parts.total.backward()
    values = {k: getattr(parts, k) for k in ("cls", "loc", "sb_weight", "value")}
    return {**values, "cls_grad": mine.cls.grad, "reg_grad": mine.reg.grad}


@pytest.fixture(scope="module")
def gloo_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("gloo")
    # fork: the children start with torch already imported (a spawn re-imports it, ~5 s
    # of CPU per process); they use one thread, as DataLoader workers do.
    mp.start_processes(
        _worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True, start_method="fork"
    )
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_operations(gloo_results: list[dict]) -> None:
    for res in gloo_results:
        assert [tuple(t.shape) for t in res["gather"]] == [(0, 2), (1, 2), (2, 2)]
        assert torch.equal(res["gather"][2], torch.full((2, 2), 3.0))
        assert [t.tolist() for t in res["gather_int"]] == [[0], [0, 1], [0, 1, 2]]
        assert torch.equal(res["reduce"], torch.tensor([3.0, 3.0], dtype=torch.float64))
        assert res["calls_after_ops"] == 5  # two all-gathers of size + data, one all-reduce
    # Bytes: sizes (8 each), padded data, the reduced tensor; rank 0 pads to the longest.
    expected0 = 8 + 2 * 2 * 4 + 8 + 3 * 8 + 2 * 8
    assert gloo_results[0]["bytes_after_ops"] == expected0


@pytest.mark.parametrize("world_size", [2, 3])
def test_global_losses_equal_one_process(gloo_results: list[dict], world_size: int) -> None:
    for case in _cases()[world_size]:
        per_rank = [gloo_results[r][f"{world_size}/{case.name}"] for r in range(world_size)]
        check_global(case, per_rank)
        calls = {gloo_results[r][f"{world_size}/{case.name}/calls"] for r in range(world_size)}
        # aLRP and AP: each an all-gather (2 calls) and, with positives, one all-reduce.
        no_positive = int((case.targets == 1).sum()) == 0
        assert calls == {4 if no_positive else 6}, case.name


@pytest.mark.parametrize("world_size", [2, 3])
def test_global_rs_loss_equals_one_process(gloo_results: list[dict], world_size: int) -> None:
    for case in rs.rs_cases(world_size):
        per_rank = [gloo_results[r][f"rs/{world_size}/{case.name}"] for r in range(world_size)]
        rs.check_global(case, per_rank)
        calls = {gloo_results[r][f"rs/{world_size}/{case.name}/calls"] for r in range(world_size)}
        # Three loss calls (both parts, each part alone), each an all-gather (2 calls:
        # sizes, rows) and, with positives, one all-reduce of the bins.
        no_positive = int((case.targets > 0).sum()) == 0
        assert calls == {6 if no_positive else 9}, case.name


def test_rank_and_sort_detector_loss_over_three_processes_is_one_process(
    gloo_results: list[dict],
) -> None:
    out, targets = rich_case(images=2 * WORLD, seed=2)
    whole = compute_loss("rs", rs_inputs(out, targets), None)
    whole.total.backward()
    ranks = [res["rs_detector"] for res in gloo_results]
    for got in ranks:  # the global values on every rank: ranking, box weights, w
        for key in ("cls", "loc", "sb_weight", "value"):
            assert got[key] == pytest.approx(getattr(whole, key), rel=1e-6), key
    for key, grad in (("cls_grad", out.cls.grad), ("reg_grad", out.reg.grad)):
        joined = torch.cat([got[key] for got in ranks])  # each rank: its rows
        torch.testing.assert_close(joined, grad, rtol=1e-5, atol=1e-8)


def test_bad_input_raises_on_every_rank(gloo_results: list[dict]) -> None:
    assert "non-finite" in gloo_results[2]["bad"]
    assert "IoU in (0, 1]" in gloo_results[2]["bad_rs"]
    for rank in (0, 1):
        assert "rank(s) [2]" in gloo_results[rank]["bad"]
        assert "rank(s) [2]" in gloo_results[rank]["bad_rs"]


def test_needs_an_initialised_process_group() -> None:
    if dist.is_initialized():
        pytest.skip("a process group is initialised in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        TorchDistributedCollective()


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    _join(rank, init_file, timeout=120)
    try:
        features, targets, sizes, state = _ddp_problem()
        lo = sum(sizes[:rank])
        part = slice(lo, lo + sizes[rank])
        model = torch.nn.Linear(4, 1).double()
        model.load_state_dict(state)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        world = TorchDistributedCollective()
        loss = _ddp_loss(ddp, features[part], targets[part], world)
        (world.world_size * loss).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        torch.save({"grads": grads, "loss": loss.detach()}, Path(out_dir) / f"ddp{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # DistributedDataParallel's first construction imports ~900 modules
def test_ddp_with_world_size_times_the_loss_gives_the_one_process_gradient(
    tmp_path: Path,
) -> None:
    mp.start_processes(
        _ddp_worker,
        args=(str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD,
        join=True,
        start_method="fork",
    )
    features, targets, _, state = _ddp_problem()
    model = torch.nn.Linear(4, 1).double()
    model.load_state_dict(state)
    loss = _ddp_loss(model, features, targets, None)
    loss.backward()
    want = torch.cat([p.grad.flatten() for p in model.parameters()])
    for rank in range(WORLD):
        res = torch.load(tmp_path / f"ddp{rank}.pt", weights_only=False)
        assert float(res["loss"]) == pytest.approx(float(loss), rel=1e-12)
        got = torch.cat([g.flatten() for g in res["grads"]])
        assert_close(got, want, 1e-9, "DDP-averaged parameter gradients")
