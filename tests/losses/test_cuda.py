"""CUDA agrees with the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from alrp_cli.losses import alrp_loss, ap_loss
from alrp_cli.losses.collective import ThreadedCollective, run_ranks
from tests.helpers.loss_problems import make_problem
from tests.helpers.sharding import check_global, make_case, run_local

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("delta", [0.0, 1.0])
@pytest.mark.parametrize("n", [300, 100_000])
def test_cuda_matches_cpu(delta: float, n: int) -> None:
    logits, targets, e = make_problem(3, "overlapping", n)
    results = {}
    for device in ("cpu", "cuda"):
        x = logits.to(device).requires_grad_()
        y = logits.to(device).requires_grad_()
        out = alrp_loss(x, targets.to(device), e.to(device), delta=delta)
        out.cls.backward()
        ap_loss(y, targets.to(device), delta=delta).backward()
        results[device] = (out.cls.cpu(), out.loc.cpu(), x.grad.cpu(), y.grad.cpu())
    for cpu, cuda in zip(results["cpu"], results["cuda"], strict=True):
        assert torch.allclose(cpu, cuda, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("delta", [0.0, 1.0])
def test_global_ranking_on_cuda_equals_one_cpu_process(delta: float) -> None:
    # Two ranks simulated by threads, tensors on the GPU (the grid binning path).
    case = make_case("cuda", 4, "ties", 40_000, 2, delta)
    keep = torch.rand(40_000, generator=torch.Generator().manual_seed(0)) < 0.005
    case.loc_errors = case.loc_errors[keep[case.targets == 1]]
    case.targets = torch.where(keep | (case.targets != 1), case.targets, 0)

    def fn(c: ThreadedCollective) -> dict[str, torch.Tensor]:
        logits, targets, e = (t.cuda() for t in case.shard(c.rank))
        return {k: v.cpu() for k, v in run_local(c, logits, targets, e, delta).items()}

    check_global(case, run_ranks(2, fn))
