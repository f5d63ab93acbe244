"""Step time of one training iteration, two arms alternated: aLRP Loss vs Focal Loss (the
default), or torch's BatchNorm vs the global-batch BatchNorm (``--compare batch-norm``).

Both arms run in the same process, alternately (A step, B step, B step, A step, ...), on the
same batch of the synthetic dataset, each with its own copy of the same initial model, so
load changes on a shared machine hit both alike. A step is what the training loop does:
forward, ATSS assignment, loss, backward, SGD update. Prints median step times and their
ratio.

``--compare batch-norm`` times the aLRP step of a from-scratch model with torch's
``BatchNorm2d`` against the same model with the global-batch BatchNorm (float64 sums) that
a CPU run keeps when it is resumed on one process after several (a fresh one-process run
uses torch's kernel).

    python benchmarks/bench_train_step.py                      # synthetic default config
    python benchmarks/bench_train_step.py --steps 30 --threads 2 --device cpu
    python benchmarks/bench_train_step.py --compare batch-norm --threads 1
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
    parser.add_argument(
        "--compare", choices=("losses", "batch-norm"), default="losses", help="the two arms"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--head-channels", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.compare == "batch-norm" and device.type != "cpu":
        parser.error("--compare batch-norm times the CPU's global-batch BatchNorm: --device cpu")
    torch.manual_seed(0)
    paths = coco_layout(synthetic_dataset_dir())
    ds = CocoDataset(paths.train_images, paths.train_ann, train=False, image_size=args.image_size)
    images, targets = collate([ds[i] for i in range(args.batch_size)])
    images = images.to(device)
    targets = [
        {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
    ]
    base = Detector(ds.num_classes, backbone=args.backbone, head_channels=args.head_channels).to(
        device
    )
    # arm name -> (model, loss); the first arm is the numerator of the ratio.
    if args.compare == "losses":
        arms = {"alrp": (copy.deepcopy(base), "alrp"), "focal": (copy.deepcopy(base), "focal")}
    else:
        converted = sync_batch_norm(copy.deepcopy(base), device)
        arms = {"global": (converted, "alrp"), "torch": (copy.deepcopy(base), "alrp")}
    runs = {
        arm: {
            "model": model.train(),
            "loss": loss,
            "opt": torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9),
            "module": make_loss_module(loss, period=10_000),
            "times": [],
        }
        for arm, (model, loss) in arms.items()
    }

    def step(arm: str) -> float:
        r = runs[arm]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = r["model"](images)
        inputs = build_loss_inputs(r["model"], out, targets, assigner="atss")
        parts = compute_loss(r["loss"], inputs, r["module"])
        r["opt"].zero_grad(set_to_none=True)
        parts.total.backward()
        r["opt"].step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    first, second = arms
    for i in range(args.warmup + args.steps):
        for arm in (first, second) if i % 2 == 0 else (second, first):
            t = step(arm)
            if i >= args.warmup:
                runs[arm]["times"].append(t)
    med = {arm: statistics.median(r["times"]) for arm, r in runs.items()}
    figures = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "backbone": args.backbone,
        "head_channels": args.head_channels,
        "steps": args.steps,
        f"{first}_median_s": med[first],
        f"{second}_median_s": med[second],
        f"ratio_{first}_over_{second}": med[first] / med[second],
    }
    for key, value in figures.items():
        print(f"{key:24s} {value:.4f}" if isinstance(value, float) else f"{key:24s} {value}")
    if args.json:
        from alrp_cli.atomic import write_json

        write_json(args.json, figures)


if __name__ == "__main__":
    main()
