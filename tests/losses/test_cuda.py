"""CUDA agrees with the CPU (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from alrp_cli.losses import alrp_loss, ap_loss
from tests.losses.problems import make_problem

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
