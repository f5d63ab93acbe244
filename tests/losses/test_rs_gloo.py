"""Rank & Sort Loss over the global batch in real gloo processes.

One fork of 3 processes: the 3-rank cases run on the world group, the 2-rank cases on a
sub-group of ranks 0 and 1, through ``TorchDistributedCollective``. Each process writes its
results to a file; the parent checks them against one process on the whole batch and the
published loop (test_rs_global_ranking.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from alrp_cli.detection.collective import TorchDistributedCollective
from alrp_cli.losses import rs_loss
from tests.detection.test_collective import join_gloo_group, run_gloo_workers
from tests.losses.test_rs_global_ranking import check_global, rs_cases, run_rank, shard


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    join_gloo_group(rank, init_file, timeout=60)
    try:
        pair = dist.new_group([0, 1])  # every rank must take part in creating it
        results: dict[str, object] = {}
        for w, group in ((3, None), (2, pair)):
            if rank >= w:
                continue
            collective = TorchDistributedCollective(group)
            for case in rs_cases(w):
                before = collective.num_calls
                results[f"{w}/{case.name}"] = run_rank(collective, case)
                results[f"{w}/{case.name}/calls"] = collective.num_calls - before
        # A target out of range on rank 2 raises on every rank, instead of a hang.
        case = rs_cases(3)[0]
        logits, targets = shard(case, rank)
        if rank == 2:
            targets = torch.full_like(targets, 2.0)
        try:
            rs_loss(logits, targets, collective=TorchDistributedCollective())
            results["bad"] = "no error"
        except ValueError as exc:
            results["bad"] = str(exc)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def gloo_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return run_gloo_workers(_worker, tmp_path_factory.mktemp("gloo_rs"))


@pytest.mark.parametrize("world_size", [2, 3])
def test_global_rs_loss_equals_one_process(gloo_results: list[dict], world_size: int) -> None:
    for case in rs_cases(world_size):
        per_rank = [gloo_results[r][f"{world_size}/{case.name}"] for r in range(world_size)]
        check_global(case, per_rank)
        calls = {gloo_results[r][f"{world_size}/{case.name}/calls"] for r in range(world_size)}
        # Three loss calls, each an all-gather (2 calls: sizes, rows) and, with positives,
        # one all-reduce of the bins.
        no_positive = int((case.targets > 0).sum()) == 0
        assert calls == {6 if no_positive else 9}, case.name


def test_bad_input_raises_on_every_rank(gloo_results: list[dict]) -> None:
    assert "IoU in (0, 1]" in gloo_results[2]["bad"]
    for rank in (0, 1):
        assert "rank(s) [2]" in gloo_results[rank]["bad"]
