"""The plain training loop (detectron2 style) and evaluation.

``train_one_epoch`` runs one epoch (or its remainder after a resume) and reports each step;
``predict_loader`` turns a data loader into COCO results; ``evaluate`` scores them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from alrp_cli.detection.head_losses import build_loss_inputs, compute_loss
from alrp_cli.detection.model import Detector
from alrp_cli.detection.postprocess import postprocess, to_coco_results
from alrp_cli.errors import AlrpError


class NonFiniteLoss(AlrpError):
    """The loss became NaN or infinite; the run stops, the last good checkpoint stays."""

    exit_code = 1


class EpochSampler(torch.utils.data.Sampler[int]):
    """A random permutation that is a pure function of (seed, epoch), skipping ``start`` items.

    Nothing to save for an exact resume: the position within the epoch is enough.
    """

    def __init__(self, size: int, *, seed: int, epoch: int = 0, start: int = 0) -> None:
        self.size, self.seed, self.epoch, self.start = size, seed, epoch, start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.randperm(self.size, generator=g)[self.start :].tolist()

    def __len__(self) -> int:
        return max(0, self.size - self.start)


@dataclass
class TrainState:
    """Where training is: 0-based ``epoch``, batches done in it, global iteration, and the
    accumulators of the epoch's mean losses."""

    epoch: int = 0
    epoch_iter: int = 0
    global_iter: int = 0
    sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "cls": 0.0, "loc": 0.0})
    epoch_seconds: float = 0.0
    best_ap: float = -1.0
    last_lr: float = 0.0


def _to_device(images: Tensor, targets: list[dict[str, Any]], device: torch.device):
    images = images.to(device, non_blocking=True)
    moved = [
        {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in t.items()} for t in targets
    ]
    return images, moved


def train_one_epoch(
    model: Detector,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    loss_module: nn.Module | None,
    state: TrainState,
    *,
    loss: str,
    assigner: str,
    device: torch.device,
    amp: bool = False,
    grad_clip: float | None = None,
    log_every: int = 20,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_loss_inputs: Callable[[Any], None] | None = None,
    should_stop: Callable[[], int | bool] = lambda: False,
) -> bool:
    """Train over ``loader`` (the rest of ``state.epoch``), updating ``state`` in place.

    ``on_step`` receives a step record every ``log_every`` global iterations (and a "tick"
    record every iteration); ``on_loss_inputs`` receives each batch's LossInputs. Returns
    False when ``should_stop()`` interrupted the epoch. Raises :class:`NonFiniteLoss`.
    """
    model.train()
    window_images, window_start = 0, time.perf_counter()
    for images, targets in loader:
        t0 = time.perf_counter()
        images, targets = _to_device(images, targets, device)
        with torch.autocast(device.type, enabled=amp):
            out = model(images)
        inputs = build_loss_inputs(model, out, targets, assigner=assigner)  # float32
        if on_loss_inputs is not None:
            on_loss_inputs(inputs)
        parts = compute_loss(loss, inputs, loss_module)
        if not (math.isfinite(parts.cls) and math.isfinite(parts.loc)) or not bool(
            torch.isfinite(parts.total.detach())
        ):
            raise NonFiniteLoss(
                f"non-finite loss at epoch {state.epoch + 1}, iteration {state.global_iter + 1}: "
                f"loss={float(parts.total.detach())}, cls={parts.cls}, loc={parts.loc}, "
                f"sb_weight={parts.sb_weight}; the last good checkpoint is kept"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts.total).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]  # the rate this step used
        scheduler.step()
        state.last_lr = lr
        state.epoch_seconds += time.perf_counter() - t0
        state.epoch_iter += 1
        state.global_iter += 1
        total = float(parts.total.detach())
        state.sums["loss"] += total
        state.sums["cls"] += parts.cls
        state.sums["loc"] += parts.loc
        window_images += images.shape[0]
        record = {
            "type": "step",
            "epoch": state.epoch + 1,
            "iter": state.global_iter,
            "loss": total,
            "cls": parts.cls,
            "loc": parts.loc,
            "sb_weight": parts.sb_weight,
            "lr": lr,
        }
        if on_step is not None:
            elapsed = time.perf_counter() - window_start
            record["images_per_s"] = window_images / elapsed if elapsed > 0 else 0.0
            if state.global_iter % log_every == 0:
                on_step(record)
                window_images, window_start = 0, time.perf_counter()
            else:
                on_step({**record, "type": "tick"})
        if should_stop():
            return False
    return True


@torch.no_grad()
def predict_loader(
    model: Detector,
    loader: torch.utils.data.DataLoader,
    category_ids: list[int],
    *,
    device: torch.device,
    amp: bool = False,
    pre_nms_topk: int = 1000,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
    max_detections: int = 100,
    on_batch: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """COCO results (original coordinates, original category ids) for every loader image."""
    model.eval()
    results: list[dict[str, Any]] = []
    for images, targets in loader:
        images = images.to(device)
        with torch.autocast(device.type, enabled=amp):
            out = model(images)
        dets = postprocess(
            model,
            out,
            (int(images.shape[-2]), int(images.shape[-1])),
            pre_nms_topk=pre_nms_topk,
            score_threshold=score_threshold,
            nms_iou=nms_iou,
            max_detections=max_detections,
        )
        results += to_coco_results(
            dets,
            [int(t["image_id"]) for t in targets],
            [t["scale"] for t in targets],
            category_ids,
        )
        if on_batch is not None:
            on_batch(images.shape[0])
    return results


def evaluate(predictions: list[dict[str, Any]], gt_path: str | Path) -> dict[str, Any]:
    """COCO AP and optimal LRP of ``predictions`` against the ground truth at ``gt_path``.

    One source of truth: :func:`analysis.analyze` (COCOeval-exact). Returns the 12 COCO
    numbers ("AP", "AP50", "AP75", ...), "moLRP", "moLRP_loc", "moLRP_FP", "moLRP_FN",
    "num_detections" and "per_class_lrp" (the per-class oLRP rows).
    """
    from analysis import analyze

    result = analyze(predictions, str(gt_path))
    summary: dict[str, Any] = dict(result.coco)
    for key in ("moLRP", "moLRP_loc", "moLRP_FP", "moLRP_FN"):
        summary[key] = result.lrp[key]
    summary["num_detections"] = result.n_detections
    summary["per_class_lrp"] = result.lrp["per_class"]
    return summary
