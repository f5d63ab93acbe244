"""Benchmark the data half of training: writing the synthetic set, and reading samples.

Run:  .venv/bin/python benchmarks/bench_data.py [--num-train 1500] [--num-val 300] [--items 300]

In one process and one run it times
  1. make_synthetic_coco at the default size (1,500 + 300 images of 128 px), with its
     worker pool and without it (one process): wall-clock and CPU seconds (the CPU
     figures stay meaningful on a machine other jobs keep busy);
  2. CocoDataset samples (train with augmentation, and eval) with the transforms on one
     intra-op thread (what CocoDataset does) against two threads (torch's default on a
     2-core machine), and reports the ratio.
It prints the figures as a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch

from alrp_cli.detection.data import CocoDataset, coco_layout, make_synthetic_coco, synthetic
from alrp_cli.detection.data import coco as coco_module


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _time_synth(root: Path, name: str, pool: bool, **kw: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one make_synthetic_coco, with or without its pool."""
    original = synthetic._pool
    if not pool:
        synthetic._pool = lambda total: None
    try:
        c0, t0 = _cpu_seconds(), time.perf_counter()
        make_synthetic_coco(root / name, **kw)
        return time.perf_counter() - t0, _cpu_seconds() - c0
    finally:
        synthetic._pool = original


def _time_items(ds: CocoDataset, items: int) -> float:
    """Milliseconds per sample, over ``items`` samples (after a short warm-up)."""
    for i in range(min(10, len(ds))):
        ds[i]
    t0 = time.perf_counter()
    for i in range(items):
        ds[i % len(ds)]
    return (time.perf_counter() - t0) / items * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=1500)
    parser.add_argument("--num-val", type=int, default=300)
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args()
    kw = {"num_train": args.num_train, "num_val": args.num_val}
    root = Path(tempfile.mkdtemp(prefix="alrp-bench-data-"))
    try:
        pooled = _time_synth(root, "pooled", True, **kw)
        single = _time_synth(root, "single", False, **kw)
        paths = coco_layout(root / "pooled")
        rows = []
        for train in (True, False):
            ds = CocoDataset(paths.train_images, paths.train_ann, train=train, image_size=128)
            torch.set_num_threads(2)
            one = _time_items(ds, args.items)  # CocoDataset drops to one thread itself
            original = coco_module._one_thread
            coco_module._one_thread = contextlib.nullcontext
            try:
                two = _time_items(ds, args.items)
            finally:
                coco_module._one_thread = original
            rows.append(("train" if train else "eval", one, two))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    n = args.num_train + args.num_val
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print()
    print("| measurement | figure |")
    print("|---|---|")
    for label, (wall, cpu) in (("worker pool", pooled), ("one process", single)):
        print(f"| synth {n} images, {label} | {wall:.1f} s wall, {cpu:.1f} s CPU |")
    print(f"| pool wall-clock speed-up | {single[0] / pooled[0]:.2f}x |")
    print(f"| pool CPU overhead | {pooled[1] / single[1]:.2f}x |")
    for split, one, two in rows:
        print(f"| {split} sample, transforms on 1 thread | {one:.2f} ms |")
        print(f"| {split} sample, transforms on 2 threads | {two:.2f} ms |")
        print(f"| {split} sample, 1-thread speed-up | {two / one:.2f}x |")


if __name__ == "__main__":
    main()
