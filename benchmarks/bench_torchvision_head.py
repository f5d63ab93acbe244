"""Step time of torchvision's RetinaNet with its focal loss vs with the aLRP head (same batch).

Two copies of the same initial torchvision RetinaNet (``weights=None``, nothing is
downloaded), one with its own ``RetinaNetHead`` (sigmoid focal loss + box loss), one with
``ALRPRetinaNetHead.from_head``; steps alternate (focal, aLRP, aLRP, focal, ...) on one
fixed batch of random images with random boxes, so load changes on a shared machine hit
both alike. A step = forward (transform, backbone, head, anchors, matcher, loss), backward,
SGD update. Also times ``head.compute_loss`` alone. Prints medians and the ratios.

    python benchmarks/bench_torchvision_head.py                         # resnet50, 320 px
    python benchmarks/bench_torchvision_head.py --backbone resnet18 --threads 1 --steps 10
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torchvision.models.detection import RetinaNet, retinanet_resnet50_fpn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from alrp_cli.integrations.torchvision import ALRPRetinaNetHead


def build(backbone: str, num_classes: int, size: int) -> RetinaNet:
    """torchvision's RetinaNet (v1 head, focal loss), randomly initialised."""
    if backbone == "resnet50":
        return retinanet_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=num_classes, min_size=size,
            max_size=size,
        )  # fmt: skip
    body = resnet_fpn_backbone(
        backbone_name=backbone,
        weights=None,
        trainable_layers=5,
        returned_layers=[2, 3, 4],
        extra_blocks=LastLevelP6P7(256, 256),
    )
    return RetinaNet(body, num_classes, min_size=size, max_size=size)


def batch(n: int, size: int, boxes: int, num_classes: int) -> tuple[list, list]:
    """``n`` random images with ``boxes`` random boxes each (16 to size/2 px)."""
    gen = torch.Generator().manual_seed(0)
    images, targets = [], []
    for _ in range(n):
        images.append(torch.rand(3, size, size, generator=gen))
        wh = torch.randint(16, size // 2, (boxes, 2), generator=gen).float()
        xy = torch.rand(boxes, 2, generator=gen) * (size - wh)
        targets.append(
            {
                "boxes": torch.cat([xy, xy + wh], dim=1),
                "labels": torch.randint(0, num_classes, (boxes,), generator=gen),
            }
        )
    return images, targets


def timed(fn: Callable[..., Any], log: list[float], size: dict[str, int]) -> Callable[..., Any]:
    """``head.compute_loss`` that appends its run time to ``log`` and notes the problem size
    (N flattened logits, P positive anchors) in ``size``."""

    def wrapper(*args: Any) -> Any:
        size["N"] = args[1]["cls_logits"].numel()
        size["P"] = int(sum(int((m >= 0).sum()) for m in args[3]))
        t0 = time.perf_counter()
        out = fn(*args)
        log.append(time.perf_counter() - t0)
        return out

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50", help="resnet50, resnet18, resnet34")
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--boxes", type=int, default=8, help="objects per image")
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per loss")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per loss first")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = build(args.backbone, args.num_classes, args.image_size)
    images, targets = batch(args.batch_size, args.image_size, args.boxes, args.num_classes)
    runs: dict[str, dict[str, Any]] = {}
    size: dict[str, int] = {}
    for name in ("focal", "alrp"):
        model = copy.deepcopy(base).train()
        if name == "alrp":
            model.head = ALRPRetinaNetHead.from_head(model.head, period=10_000)
        loss_times: list[float] = []
        model.head.compute_loss = timed(model.head.compute_loss, loss_times, size)
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        runs[name] = {"model": model, "opt": opt, "steps": [], "loss": loss_times}

    def step(name: str) -> float:
        r = runs[name]
        t0 = time.perf_counter()
        losses = r["model"](images, targets)
        r["opt"].zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        r["opt"].step()
        return time.perf_counter() - t0

    for i in range(args.warmup + args.steps):
        for name in ("focal", "alrp") if i % 2 == 0 else ("alrp", "focal"):
            t = step(name)
            if i >= args.warmup:
                runs[name]["steps"].append(t)
            else:
                runs[name]["loss"].clear()
    med = {n: statistics.median(r["steps"]) for n, r in runs.items()}
    loss = {n: statistics.median(r["loss"]) for n, r in runs.items()}
    figures = {
        "config": vars(args),
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "median_step_s": med,
        "median_compute_loss_s": loss,
        "step_ratio_alrp_over_focal": med["alrp"] / med["focal"],
        "loss_ratio_alrp_over_focal": loss["alrp"] / loss["focal"],
        "loss_problem": size,
    }
    print(f"{size['N']:,} logits, {size['P']} positive anchors per batch")
    for n in ("focal", "alrp"):
        print(f"{n:6s} median step {med[n]:.3f} s   compute_loss {loss[n] * 1e3:.1f} ms")
    print(f"ratio aLRP / focal: step {figures['step_ratio_alrp_over_focal']:.3f}x, "
          f"compute_loss {figures['loss_ratio_alrp_over_focal']:.2f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
