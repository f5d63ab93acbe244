"""Benchmark the data half of training: writing the synthetic set, reading samples, and the
COCO preset's loading on real JPEGs.

Run:  .venv/bin/python benchmarks/bench_data.py [--part all|synth|photos] [--num-train 1500]
      [--num-val 300] [--items 300] [--photo-items 120]

In one process and one run it times
  1. (synth) make_synthetic_coco at the default size (1,500 + 300 images of 128 px), with
     its worker pool and without it (one process): wall-clock and CPU seconds (the CPU
     figures stay meaningful on a machine other jobs keep busy);
  2. (synth) CocoDataset samples (train with augmentation, and eval) with the transforms on
     one intra-op thread (what CocoDataset does) against two threads (torch's default on a
     2-core machine), and reports the ratio;
  3. (synth) a short synthetic training run (8 iterations of the preset's batch 16, one
     torch thread) with --workers 0 and 1, interleaved, and the time one batch takes to
     load in the training process: what the synthetic preset's default of 0 rests on;
  4. (photos) on real photographs (scikit-image's, resized to COCO's usual 640 x 480 and
     saved as JPEG, quality 90): decoding by PIL against torchvision.io; the COCO preset's
     training sample (official augmentation, 512 px; wall-clock and CPU time) and
     evaluation sample (833 x 500) in one process on one thread = one data-loading worker;
     a DataLoader with 1 and 2 workers.
It prints the figures as Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from alrp_cli.detection.data import CocoDataset, coco_layout, make_synthetic_coco, synthetic
from alrp_cli.detection.data import coco as coco_module

ROOT = Path(__file__).resolve().parents[1]


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


def _time_items(ds: CocoDataset, items: int, *, cpu: bool = False) -> float:
    """Milliseconds per sample, over ``items`` samples (after a short warm-up): wall-clock,
    or with ``cpu`` this process's CPU time (what one worker on a core of its own takes)."""
    clock = time.process_time if cpu else time.perf_counter
    for i in range(min(10, len(ds))):
        ds[i]
    t0 = clock()
    for i in range(items):
        ds[i % len(ds)]
    return (clock() - t0) / items * 1000


def _time_train(data: Path, out: Path, workers: int) -> float:
    """Seconds per iteration of a short synthetic-preset run on one torch thread with
    ``workers`` loaders, data waits included (the step records' images/s), the first
    iteration (worker start) left out."""
    import json

    from alrp_cli.config.training import TrainConfig
    from alrp_cli.detection.train import train

    cfg = TrainConfig.from_options(data=data, out=out, epochs=1, workers=workers, threads=1,
                                   eval_every=100, log_every=1, device="cpu")  # fmt: skip
    train(cfg)
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in steps if r["type"] == "step"][1:]
    return sum(16 / r for r in rates) / len(rates)


def bench_synth(args: argparse.Namespace, root: Path) -> None:
    kw = {"num_train": args.num_train, "num_val": args.num_val}
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
    small = make_synthetic_coco(root / "small", num_train=128, num_val=2)
    per_iter: dict[int, list[float]] = {0: [], 1: []}
    for k in range(2):  # interleaved, best of 2: the machine's load varies
        for w in per_iter:
            per_iter[w].append(_time_train(small, root / f"run{w}-{k}", w))
    torch.set_num_threads(1)
    loading = _time_items(
        CocoDataset(paths.train_images, paths.train_ann, train=True, image_size=128), 160
    )
    n = args.num_train + args.num_val
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
    print(f"| synthetic batch of 16 loaded in the training process | {16 * loading / 1000:.2f} s |")
    for w, seconds in per_iter.items():
        print(f"| synthetic training, --threads 1 --workers {w}, best of 2 | "
              f"{min(seconds):.2f} s per iteration |")  # fmt: skip


def _decode_ms(files: list[Path], reader, repeat: int) -> float:
    for f in files:
        reader(f)
    t0 = time.perf_counter()
    for _ in range(repeat):
        for f in files:
            reader(f)
    return (time.perf_counter() - t0) / (repeat * len(files)) * 1000


def _loader_images_per_s(ds: CocoDataset, workers: int, batches: int) -> float:
    from alrp_cli.detection.data import collate

    many = torch.utils.data.ConcatDataset([ds] * (batches * 8 // len(ds) + 8))
    loader = torch.utils.data.DataLoader(
        many, batch_size=8, shuffle=True, num_workers=workers, collate_fn=collate,
        persistent_workers=workers > 0, drop_last=True,
    )  # fmt: skip
    done, t0 = 0, None
    while done < batches + 1:
        for _ in loader:
            done += 1
            if done == 1:
                t0 = time.perf_counter()  # the first batch pays for starting the workers
            if done == batches + 1:
                break
    return batches * 8 / (time.perf_counter() - t0)


def bench_photos(args: argparse.Namespace, root: Path) -> None:
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    sys.path.insert(0, str(ROOT))
    from alrp_cli.detection.data.decode import _decode_torchvision
    from tests.helpers.photos import write_photo_coco

    data = write_photo_coco(root / "photos", size=(640, 480))
    paths = coco_layout(data)
    files = sorted(paths.train_images.iterdir())

    def pil(path: Path) -> torch.Tensor:
        with Image.open(path) as img:
            return F.pil_to_tensor(img.convert("RGB"))

    torch.set_num_threads(1)  # as in a DataLoader worker
    rounds = [(_decode_ms(files, pil, 10), _decode_ms(files, _decode_torchvision, 10))
              for _ in range(3)]  # fmt: skip
    pil_ms, tv_ms = (min(r[i] for r in rounds) for i in (0, 1))  # best of 3, interleaved
    train = CocoDataset(paths.train_images, paths.train_ann, train=True, image_size=512,
                        augmentation="official")  # fmt: skip
    test = CocoDataset(paths.val_images, paths.val_ann, train=False, image_size=512,
                       augmentation="official", test_scale=(833, 500))  # fmt: skip
    train_ms = _time_items(train, args.photo_items)
    train_cpu = _time_items(train, args.photo_items, cpu=True)
    test_ms = _time_items(test, args.photo_items)
    loaders = {w: _loader_images_per_s(train, w, args.photo_items // 8) for w in (1, 2)}
    print("| measurement (640 x 480 JPEGs) | figure |")
    print("|---|---|")
    print(f"| decode, PIL (open, convert RGB, to tensor), best of 3 | {pil_ms:.2f} ms |")
    print(f"| decode, torchvision.io, best of 3 | {tv_ms:.2f} ms |")
    print(f"| torchvision.io speed-up | {pil_ms / tv_ms:.2f}x |")
    print(f"| training sample, official, 512 px, one thread | {train_ms:.1f} ms wall |")
    print(f"| the same, CPU time | {train_cpu:.1f} ms = {1000 / train_cpu:.1f} images/s "
          "per worker on a core of its own |")  # fmt: skip
    print(f"| evaluation sample, 833 x 500, one thread | {test_ms:.1f} ms |")
    for w, rate in loaders.items():
        print(f"| DataLoader, {w} worker(s), batch 8 | {rate:.1f} images/s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "synth", "photos"), default="all")
    parser.add_argument("--num-train", type=int, default=1500)
    parser.add_argument("--num-val", type=int, default=300)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--photo-items", type=int, default=120)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="alrp-bench-data-"))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print()
    try:
        if args.part in ("all", "synth"):
            bench_synth(args, root)
            print()
        if args.part in ("all", "photos"):
            bench_photos(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
