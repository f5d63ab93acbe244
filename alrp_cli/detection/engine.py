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

from alrp_cli import registry
from alrp_cli.detection.distributed import Dist
from alrp_cli.detection.head_losses import build_loss_inputs, compute_loss, count_non_finite
from alrp_cli.detection.model import Detector
from alrp_cli.detection.postprocess import postprocess, to_coco_results
from alrp_cli.errors import AlrpError


class NonFiniteLoss(AlrpError):
    """The loss became NaN or infinite; the run stops, the last good checkpoint stays."""

    exit_code = 1


class EpochSampler(torch.utils.data.Sampler[int]):
    """A random permutation that is a pure function of (seed, epoch), skipping ``start`` items.

    Nothing to save for an exact resume: the position within the epoch is enough. With
    ``world_size`` > 1 the permutation is cut into global batches of ``batch_size ×
    world_size`` items (an incomplete last one dropped) and rank ``rank`` yields its
    ``batch_size`` consecutive items of each, so the ranks' batches, concatenated in rank
    order, are the batches one process would draw with batch ``batch_size × world_size``.
    ``start`` counts global items. With ``keyed`` it yields ``(epoch, index)`` pairs, which
    :class:`SeededSamples` reads: a DataLoader whose workers persist across epochs then
    needs only :meth:`set_epoch`.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        epoch: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batch_size: int = 1,
        keyed: bool = False,
    ) -> None:
        self.size, self.seed, self.epoch, self.start = size, seed, epoch, start
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.keyed = keyed

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        """Draw ``epoch``'s permutation from global item ``start`` on."""
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[Any]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=g)[self.start :]
        if self.world_size > 1:
            b, w = self.batch_size, self.world_size
            order = order[: len(order) // (b * w) * b * w].reshape(-1, w, b)[:, self.rank]
        if self.keyed:
            yield from ((self.epoch, i) for i in order.reshape(-1).tolist())
        else:
            yield from order.reshape(-1).tolist()

    def __len__(self) -> int:
        rest = max(0, self.size - self.start)
        if self.world_size > 1:
            return rest // (self.batch_size * self.world_size) * self.batch_size
        return rest


class SeededSamples(torch.utils.data.Dataset):
    """``dataset[i]`` drawn with torch's RNG seeded from (seed, epoch, i).

    The random augmentation of an image is then a pure function of (seed, epoch, index):
    the same whichever process, worker or position in a batch loads it, so a global batch
    split over several processes is augmented exactly as one process would augment it, and
    a resumed run needs no saved RNG state for its data. The index may also be an
    ``(epoch, index)`` pair (:class:`EpochSampler` with ``keyed``), which overrides ``epoch``.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, *, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int | tuple[int, int]) -> Any:
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        key = ((self.seed * 1_000_003 + epoch) * 10_000_019 + index) % (2**63)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(key)
            return self.dataset[index]


@dataclass
class TrainState:
    """Where training is: 0-based ``epoch``, batches done in it, global iteration, the
    accumulators of the epoch's mean losses, and whether the evaluation of the epoch just
    finished is still to be done (``last.pt`` is saved before it runs)."""

    epoch: int = 0
    epoch_iter: int = 0
    global_iter: int = 0
    sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "cls": 0.0, "loc": 0.0})
    epoch_seconds: float = 0.0
    best_ap: float = -1.0
    last_lr: float = 0.0
    eval_pending: bool = False


def _to_device(images: Tensor, targets: list[dict[str, Any]], device: torch.device):
    images = images.to(device, non_blocking=True)
    moved = [
        {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in t.items()} for t in targets
    ]
    return images, moved


def _non_finite_message(state: TrainState, what: str) -> str:
    return (
        f"non-finite loss at epoch {state.epoch + 1}, iteration {state.global_iter + 1}: "
        f"{what}; the last good checkpoint is kept (lower --lr, or set --grad-clip)"
    )


def _check_outputs_finite(inputs: Any, dist: Dist, state: TrainState) -> None:
    """Raise NonFiniteLoss on every process when any process's head outputs are not finite,
    before the loss's collectives could wait for one that stopped."""
    bad = dist.all_reduce_sum(count_non_finite(inputs)).tolist()
    if bad[0] or bad[1]:
        raise NonFiniteLoss(
            _non_finite_message(
                state,
                f"loss=nan, cls=nan, loc=nan (the model's outputs hold {int(bad[0])} "
                f"non-finite logits and {int(bad[1])} non-finite box values)",
            )
        )


def _agreed_losses(parts: Any, total: Tensor, dist: Dist, state: TrainState) -> list[float]:
    """[loss, cls, loc] averaged over the processes; NonFiniteLoss on every process when
    any process's loss is not finite, before the backward pass's collectives."""
    finite = math.isfinite(parts.value) and bool(torch.isfinite(total.detach()))
    values = [parts.value, parts.cls, parts.loc, float(not finite)]
    agreed = dist.all_reduce_sum(torch.tensor(values, dtype=torch.float64, device=dist.device))
    value, cls, loc, bad = agreed.tolist()
    value, cls, loc = (x / dist.world_size for x in (value, cls, loc))
    if bad:
        raise NonFiniteLoss(
            _non_finite_message(
                state, f"loss={value}, cls={cls}, loc={loc}, sb_weight={parts.sb_weight}"
            )
        )
    return [value, cls, loc]


def _optimizer_step(
    model: nn.Module,
    total: Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    grad_clip: float | None,
) -> float:
    """Backward (through the gradient scaler), optional clipping, one optimiser step;
    returns the learning rate the step used."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return optimizer.param_groups[0]["lr"]


@dataclass
class _Throughput:
    """Images per second and seconds waited for the loader per step, over a window of
    steps that :meth:`reset` restarts."""

    images: int = 0
    waited: float = 0.0
    steps: int = 0
    start: float = field(default_factory=time.perf_counter)

    def fields(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.start
        return {
            "images_per_s": self.images / elapsed if elapsed > 0 else 0.0,
            "data_s": self.waited / self.steps,  # waiting for the loader, per step
        }

    def reset(self) -> None:
        self.images, self.waited, self.steps, self.start = 0, 0.0, 0, time.perf_counter()


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
    amp_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
    log_every: int = 20,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_loss_inputs: Callable[[Any], None] | None = None,
    should_stop: Callable[[], int | bool] = lambda: False,
    dist: Dist | None = None,
    forward: nn.Module | None = None,
    collective: Any = None,
) -> bool:
    """Train over ``loader`` (the rest of ``state.epoch``), updating ``state`` in place.

    ``on_step`` receives a step record every ``log_every`` global iterations (and a "tick"
    record every iteration), with ``images_per_s`` and ``data_s`` (seconds per step this
    process waited for ``loader``) since the previous step record; ``on_loss_inputs``
    receives each batch's LossInputs. Returns False when ``should_stop()`` (on any
    process) interrupted the epoch. Raises :class:`NonFiniteLoss` (on every process) when
    the loss inputs or the loss are not finite, before any collective of the loss or of the
    backward pass could wait for it.

    Several processes (``dist``): ``forward`` is the DistributedDataParallel wrapper of
    ``model``; with ``collective`` the loss is the global batch's (its gradient is scaled by
    the world size, which DDP's averaging divides out); without, each process's own. Logged
    losses are averaged over the processes.
    """
    dist = dist or Dist()
    forward = forward or model
    ious = registry.IOUS in registry.get(loss, "train").needs
    grad_scale = float(dist.world_size) if collective is not None else 1.0
    model.train()
    window, fetched = _Throughput(), time.perf_counter()
    for images, targets in loader:
        t0 = time.perf_counter()
        window.waited, window.steps = window.waited + t0 - fetched, window.steps + 1
        images, targets = _to_device(images, targets, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            out = forward(images)
        inputs = build_loss_inputs(model, out, targets, assigner=assigner, ious=ious)  # float32
        if on_loss_inputs is not None:
            on_loss_inputs(inputs)
        _check_outputs_finite(inputs, dist, state)
        parts = compute_loss(loss, inputs, loss_module, collective=collective)
        total = parts.total
        if dist.distributed:  # every output in the graph, as DDP expects (adds 0)
            total = total + 0.0 * (out.cls.sum() + out.reg.sum()).float()
        value, cls, loc = _agreed_losses(parts, total, dist, state)
        scaled = total * grad_scale if grad_scale != 1.0 else total
        lr = _optimizer_step(model, scaled, optimizer, scaler, grad_clip)
        scheduler.step()

        state.last_lr = lr
        state.epoch_seconds += time.perf_counter() - t0
        state.epoch_iter += 1
        state.global_iter += 1
        for key, x in (("loss", value), ("cls", cls), ("loc", loc)):
            state.sums[key] += x
        window.images += images.shape[0] * dist.world_size
        if on_step is not None:
            record = {"type": "step", "epoch": state.epoch + 1, "iter": state.global_iter}
            record |= {"loss": value, "cls": cls, "loc": loc, "sb_weight": parts.sb_weight}
            record |= {"lr": lr, **window.fields()}
            if state.global_iter % log_every == 0:
                on_step(record)
                window.reset()
            else:
                on_step({**record, "type": "tick"})
        if dist.any(should_stop()):  # every process stops after the same iteration
            return False
        fetched = time.perf_counter()
    return True


@torch.no_grad()
def predict_loader(
    model: Detector,
    loader: torch.utils.data.DataLoader,
    category_ids: list[int],
    *,
    device: torch.device,
    amp: bool = False,
    amp_dtype: torch.dtype | None = None,
    pre_nms_topk: int = 1000,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
    max_detections: int = 100,
    on_batch: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """COCO results (original coordinates, original category ids) for every loader image.

    The loader yields ``(images Tensor[B, 3, H, W], targets)`` with per image ``image_id``,
    ``scale`` (sx, sy) and ``size`` (h, w) before padding (``size`` absent: the whole input).
    """
    model.eval()
    results: list[dict[str, Any]] = []
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            out = model(images)
        # clip each image's boxes to the image itself, not to the batch's padding (mmdet
        # decodes with max_shape = img_shape, the resized image before padding)
        sizes = [
            (int(t["size"][0]), int(t["size"][1])) if "size" in t else tuple(images.shape[-2:])
            for t in targets
        ]
        dets = postprocess(
            model,
            out,
            sizes,
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
