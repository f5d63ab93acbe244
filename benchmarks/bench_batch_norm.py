"""Step time of one process training a from-scratch detector: torch's BatchNorm vs the
global-batch BatchNorm that ``alrp train`` uses on a CPU at any number of processes.

``alrp train`` converts trainable BatchNorm to :class:`CpuSyncBatchNorm` (float64
statistics) in one process too, so that one process computes what several compute, bit
for bit. This measures what that costs: two copies of the same initial model, one
converted, on the same batch, steps alternated so that load changes hit both alike. A
step = forward, ATSS assignment, aLRP loss, backward, SGD update. Prints median step times
and their ratio.

    python benchmarks/bench_batch_norm.py --threads 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from alrp_cli.detection.data import CocoDataset, coco_layout, collate, synthetic_dataset_dir
from alrp_cli.detection.distributed import sync_batch_norm
from alrp_cli.detection.head_losses import build_loss_inputs, compute_loss, make_loss_module
from alrp_cli.detection.model import Detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--head-channels", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    paths = coco_layout(synthetic_dataset_dir())
    ds = CocoDataset(paths.train_images, paths.train_ann, train=False, image_size=args.image_size)
    images, targets = collate([ds[i] for i in range(args.batch_size)])
    base = Detector(ds.num_classes, backbone=args.backbone, head_channels=args.head_channels)
    arms = {
        "torch": copy.deepcopy(base),
        "global": sync_batch_norm(copy.deepcopy(base), torch.device("cpu")),
    }
    runs = {
        name: {
            "model": model.train(),
            "opt": torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9),
            "module": make_loss_module("alrp", period=10_000),
            "times": [],
        }
        for name, model in arms.items()
    }

    def step(name: str) -> float:
        r = runs[name]
        t0 = time.perf_counter()
        out = r["model"](images)
        inputs = build_loss_inputs(r["model"], out, targets, assigner="atss")
        parts = compute_loss("alrp", inputs, r["module"])
        r["opt"].zero_grad(set_to_none=True)
        parts.total.backward()
        r["opt"].step()
        return time.perf_counter() - t0

    for i in range(args.warmup + args.steps):
        for name in ("torch", "global") if i % 2 == 0 else ("global", "torch"):
            t = step(name)
            if i >= args.warmup:
                runs[name]["times"].append(t)
    med = {name: statistics.median(r["times"]) for name, r in runs.items()}
    print(f"threads {torch.get_num_threads()}, batch {args.batch_size}, {args.image_size} px")
    print(f"torch BatchNorm        {med['torch']:.3f} s")
    print(f"global-batch BatchNorm {med['global']:.3f} s")
    print(f"ratio global / torch   {med['global'] / med['torch']:.3f}")


if __name__ == "__main__":
    main()
