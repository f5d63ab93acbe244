"""Random loss inputs across the regimes the kernels must handle (shared by the loss tests)."""

from __future__ import annotations

import torch

REGIMES = ("overlapping", "separated", "ties", "wide", "few_positives", "ignored", "tiny_scale")


def make_problem(
    seed: int, regime: str, n: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits (Tensor[n]), targets (Tensor[n] int64 in {1, 0, -1}), loc_errors (Tensor[P])."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, generator=g, dtype=torch.float64)
    pos_share = 0.3
    if regime == "few_positives":
        pos_share = 2.0 / max(n, 1)
    targets = (torch.rand(n, generator=g) < pos_share).long()
    if regime == "separated":
        scores = scores + 6.0 * targets
    elif regime == "ties":
        scores = torch.randint(-2, 3, (n,), generator=g).to(torch.float64) * 0.5
    elif regime == "wide":
        scores = scores * 1e3
    elif regime == "tiny_scale":
        scores = scores * 1e-3
    elif regime == "ignored":
        targets[torch.rand(n, generator=g) < 0.3] = -1
    num_pos = int((targets == 1).sum())
    loc_errors = torch.rand(num_pos, generator=g, dtype=torch.float64) * 2
    return scores.to(dtype), targets, loc_errors.to(dtype)


def iou_targets(targets: torch.Tensor, seed: int, levels: int = 0) -> torch.Tensor:
    """Rank & Sort targets (Tensor float64) from {1, 0, -1} ones: each positive gets an IoU
    in (0, 1]; with ``levels``, one of ``1/levels, 2/levels, …, 1``, so that IoUs tie."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(targets.shape, generator=g, dtype=torch.float64)
    iou = (u * levels).floor().add(1) / levels if levels else 1.0 - u
    return torch.where(targets == 1, iou, targets.to(torch.float64))


def make_rs_problem(
    seed: int, regime: str, n: int, dtype: torch.dtype = torch.float64, levels: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (Tensor[n]) and Rank & Sort targets (Tensor[n] float64) in a regime of
    :func:`make_problem`."""
    logits, targets, _ = make_problem(seed, regime, n, dtype)
    return logits, iou_targets(targets, seed + 1, levels)
