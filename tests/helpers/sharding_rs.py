"""Rank & Sort Loss global-ranking cases: the aLRP/AP cases of ``sharding.py`` with IoU
targets, run per rank and checked against one process and the published loop on the whole
batch (shared by the tests of the in-process fake and of real gloo processes)."""

from __future__ import annotations

import torch

from alrp_cli.losses import rs_loss
from alrp_cli.losses.collective import Collective
from alrp_cli.losses.reference_rs import rs_loss_reference
from tests.helpers.loss_problems import iou_targets
from tests.helpers.sharding import Case, assert_close, global_rtol, merge_ranks, standard_cases

SCALARS = ("ranking", "sorting")
ROWS = ("grad", "grad_ranking", "grad_sorting")


def rs_cases(world_size: int) -> list[Case]:
    """The aLRP/AP global-ranking cases with IoU targets (every third with tied IoUs)."""
    cases = standard_cases(world_size)
    for i, case in enumerate(cases):
        case.targets = iou_targets(case.targets, i, levels=4 if i % 3 == 0 else 0)
    return cases


def shard(case: Case, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's logits and targets."""
    lo = sum(case.sizes[:rank])
    hi = lo + case.sizes[rank]
    return case.logits[lo:hi], case.targets[lo:hi]


def run_local(
    collective: Collective | None, logits: torch.Tensor, targets: torch.Tensor, delta: float
) -> dict[str, torch.Tensor]:
    """Both values, the whole update and each part's update (separate backward passes)."""
    result: dict[str, torch.Tensor] = {}
    for key, pick in (("grad", (1, 1)), ("grad_ranking", (1, 0)), ("grad_sorting", (0, 1))):
        x = logits.clone().requires_grad_()
        out = rs_loss(x, targets, delta=delta, collective=collective)
        (pick[0] * out.ranking + pick[1] * out.sorting).backward()
        assert x.grad is not None
        result[key] = x.grad
    result.update(ranking=out.ranking.detach(), sorting=out.sorting.detach())
    return result


def run_rank(collective: Collective, case: Case) -> dict[str, torch.Tensor]:
    """:func:`run_local` on this rank's shard of ``case``."""
    return run_local(collective, *shard(case, collective.rank), case.delta)


def check_global(case: Case, per_rank: list[dict[str, torch.Tensor]]) -> None:
    """Every rank has the same values; values and update rows (concatenated in rank order)
    equal one process and the published loop on the whole batch."""
    merged = merge_ranks(case, per_rank, SCALARS, ROWS)
    single = run_local(None, case.logits, case.targets, case.delta)
    rtol = global_rtol(case)
    for key in (*SCALARS, *ROWS):
        assert_close(merged[key], single[key], rtol, f"{case.name}: {key} vs single process")
    ref = rs_loss_reference(case.logits.double(), case.targets, delta=case.delta)
    expected = {
        "ranking": ref.ranking,
        "sorting": ref.sorting,
        "grad": ref.grad_logits,
        "grad_ranking": ref.grad_ranking,
        "grad_sorting": ref.grad_sorting,
    }
    for key, value in expected.items():
        assert_close(merged[key], value, rtol, f"{case.name}: {key} vs the published loop")
