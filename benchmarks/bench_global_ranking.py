"""Benchmark --ranking global: its per-step overhead over local ranking, and the bytes it sends.

Run:  .venv/bin/python benchmarks/bench_global_ranking.py [--sizes 1000x2M 100x200k]
      [--world-size 2] [--repeats 7]

For each size (P positives and N examples *per rank*, the inputs of ``alrp bench``:
negatives ~ N(0, 1), positives ~ N(1, 1), float32, δ = 1) it times forward + backward
(aLRP: cls + loc; AP) of

  1. one process, local ranking of one rank's batch (P, N);
  2. one process on the global batch (W·P, W·N): what the global ranking must equal;
  3. W gloo processes (TCP on 127.0.0.1), each ranking its own batch (``--ranking local``);
  4. the same W processes ranking the global batch through TorchDistributedCollective
     (``--ranking global``); a barrier before every step, the step time is the slowest
     rank's.

3 and 4 are interleaved step by step in the same processes, so their ratio is the
overhead of the global ranking; the time spent inside the collectives (waiting for the
slower rank included) is reported too. Every process uses one thread. It also reports the bytes
each rank hands to the collectives per step (TorchDistributedCollective.bytes_sent) next
to the size of its logits, and prints one Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from alrp_cli import registry
from alrp_cli.bench import loss_targets, make_inputs, parse_size
from alrp_cli.detection.collective import TorchDistributedCollective
from alrp_cli.losses.collective import Collective

LOSSES = registry.names("bench")


def step(loss: str, logits, targets, e, collective: Collective | None) -> None:
    """Forward + backward of one loss as a training step runs it (aLRP: cls + loc)."""
    form = registry.get(loss, "bench").bench
    assert form is not None
    form.fast(logits.clone().requires_grad_(), targets, e, collective=collective).backward()


def for_loss(loss: str, inputs):
    """(logits, the targets ``loss`` takes, loc errors): IoU targets for Rank & Sort."""
    logits, targets, e = inputs
    return logits, loss_targets(loss, targets, e), e


def timed(loss: str, inputs, collective: Collective | None) -> float:
    """Seconds of one :func:`step`."""
    start = time.perf_counter()
    step(loss, *inputs, collective)
    return time.perf_counter() - start


class TimedCollective(TorchDistributedCollective):
    """TorchDistributedCollective that also adds up the seconds spent in its operations."""

    seconds = 0.0

    def all_gather(self, tensor):
        start = time.perf_counter()
        try:
            return super().all_gather(tensor)
        finally:
            self.seconds += time.perf_counter() - start

    def all_reduce_sum(self, tensor):
        start = time.perf_counter()
        try:
            return super().all_reduce_sum(tensor)
        finally:
            self.seconds += time.perf_counter() - start


def _worker(rank: int, world: int, port: int, sizes, repeats: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=300),
    )
    collective = TimedCollective()
    rows = {}
    for p, n in sizes:
        made = make_inputs(p, n, device=torch.device("cpu"), dtype=torch.float32, seed=rank)
        for loss in LOSSES:
            inputs = for_loss(loss, made)
            times = {"local": [], "global": []}
            sent, waited = [], []
            for i in range(repeats + 1):  # the first round warms up
                for mode in ("local", "global"):
                    dist.barrier()
                    before = collective.bytes_sent
                    before_s = collective.seconds
                    c = collective if mode == "global" else None
                    t = timed(loss, inputs, c)
                    if i:
                        times[mode].append(t)
                    if mode == "global":
                        sent.append(collective.bytes_sent - before)
                        if i:
                            waited.append(collective.seconds - before_s)
            rows[(loss, p, n)] = (times, sent, waited)
    gathered = [None] * world
    dist.all_gather_object(gathered, rows)
    if rank == 0:
        torch.save(gathered, out)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_process(sizes, world: int, repeats: int) -> dict:
    """Median seconds of one process, one thread: a rank's batch, and the global batch."""
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    out = {}
    for p, n in sizes:
        made = [make_inputs(p, n, device=cpu, dtype=torch.float32, seed=r) for r in range(world)]
        for loss in LOSSES:
            shards = [for_loss(loss, inputs) for inputs in made]
            merged = [torch.cat(parts) for parts in zip(*shards, strict=True)]
            local, whole = [], []
            for i in range(repeats + 1):
                t_local = timed(loss, shards[0], None)
                t_whole = timed(loss, merged, None)
                if i:
                    local.append(t_local)
                    whole.append(t_whole)
            out[(loss, p, n)] = (statistics.median(local), statistics.median(whole))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1000x2M", "100x200k"])
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes]
    world = args.world_size

    single = one_process(sizes, world, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "results.pt")
        mp.spawn(
            _worker,
            args=(world, _free_port(), sizes, args.repeats, out),
            nprocs=world,
            join=True,
        )
        per_rank = torch.load(out, weights_only=False)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, load average "
        f"{os.getloadavg()[0]:.1f}; command: {' '.join(sys.argv)}\n"
    )
    print(
        "| loss | P / rank | N / rank | 1 proc, rank's batch (ms) | 1 proc, global batch (ms) "
        f"| {world} proc local (ms) | {world} proc global (ms) | global / local "
        "| in collectives (ms) "
        "| bytes sent / rank / step | logits / rank | sent / logits |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p, n in sizes:
        for loss in LOSSES:
            key = (loss, p, n)
            # Step time of the group: the slowest rank of each step; then the median.
            medians = {}
            for mode in ("local", "global"):
                steps = zip(*(r[key][0][mode] for r in per_rank), strict=True)
                medians[mode] = statistics.median(max(s) for s in steps)
            sent = per_rank[0][key][1]
            # Time inside the collectives (including waiting for the slower rank): median
            # over steps of the mean over ranks.
            waited = statistics.median(
                statistics.mean(s) for s in zip(*(r[key][2] for r in per_rank), strict=True)
            )
            assert len(set(sent)) == 1, "bytes per step vary"
            logits_bytes = n * 4
            one_local, one_whole = single[key]
            print(
                f"| {registry.get(loss).label} | {p:,} | {n:,} | {one_local * 1e3:.1f} "
                f"| {one_whole * 1e3:.1f} | {medians['local'] * 1e3:.1f} "
                f"| {medians['global'] * 1e3:.1f} | {medians['global'] / medians['local']:.2f} "
                f"| {waited * 1e3:.1f} "
                f"| {sent[0]:,} B | {logits_bytes:,} B | {sent[0] / logits_bytes:.2%} |"
            )


if __name__ == "__main__":
    main()
