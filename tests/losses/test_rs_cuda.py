"""Rank & Sort Loss: CUDA agrees with the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from alrp_cli.losses import rs_loss
from alrp_cli.losses.collective import ThreadedCollective, run_ranks
from tests.helpers.loss_problems import iou_targets, make_rs_problem
from tests.helpers.sharding import assert_close, make_case
from tests.helpers.sharding_rs import check_global, run_local, shard

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("delta", [0.0, 0.5])
@pytest.mark.parametrize("n", [300, 100_000])
def test_cuda_matches_cpu(delta: float, n: int) -> None:
    logits, targets = make_rs_problem(3, "overlapping", n, levels=5)
    results = {}
    for device in ("cpu", "cuda"):
        x = logits.to(device).requires_grad_()
        out = rs_loss(x, targets.to(device), delta=delta)
        (2.0 * out.ranking + out.sorting).backward()  # not both 1: the recombining backward
        results[device] = (out.ranking.cpu(), out.sorting.cpu(), x.grad.cpu())
    for cpu, cuda in zip(results["cpu"], results["cuda"], strict=True):
        assert_close(cuda, cpu, 1e-9, "CUDA vs CPU")


@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_global_ranking_on_cuda_equals_one_cpu_process(delta: float) -> None:
    # Two ranks simulated by threads, tensors on the GPU (the grid binning path).
    case = make_case("cuda", 4, "ties", 40_000, 2, delta)
    keep = torch.rand(40_000, generator=torch.Generator().manual_seed(0)) < 0.005
    case.targets = iou_targets(torch.where(keep | (case.targets != 1), case.targets, 0), 1)

    def fn(c: ThreadedCollective) -> dict[str, torch.Tensor]:
        logits, targets = (t.cuda() for t in shard(case, c.rank))
        return {k: v.cpu() for k, v in run_local(c, logits, targets, delta).items()}

    check_global(case, run_ranks(2, fn))
