"""Training orchestration: data, model, optimiser, schedule, run directory, resume, signals.

``train(config)`` is what ``alrp train`` calls. It reports progress through ``on_event``
(dict events; the CLI draws them) and writes the run directory:

- ``config.json``: the resolved config (every option);
- ``metrics.jsonl``: step, epoch and eval records;
- ``last.pt`` every epoch (and on SIGINT/SIGTERM), ``best.pt`` by COCO AP;
- ``eval/epoch_XXX/predictions.json`` and ``summary.json`` at each evaluation;
- ``loss_inputs.pt`` with ``record_loss_inputs`` > 0.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alrp_cli.atomic import atomic_path, write_json
from alrp_cli.detection.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from alrp_cli.detection.config import TrainConfig
from alrp_cli.detection.data import CocoDataset, coco_layout, collate, resolve_data
from alrp_cli.detection.engine import (
    EpochSampler,
    TrainState,
    evaluate,
    predict_loader,
    train_one_epoch,
)
from alrp_cli.detection.head_losses import make_loss_module
from alrp_cli.detection.metrics_log import MetricsLog
from alrp_cli.detection.model import Detector
from alrp_cli.detection.recording import loss_inputs_recorder
from alrp_cli.errors import UserError

EventFn = Callable[[dict[str, Any]], None]
CHOICES_DEVICE = ("auto", "cpu", "cuda")


@dataclass
class TrainResult:
    """How a run ended: its directory, position, whether a signal stopped it, last eval."""

    run_dir: Path
    epochs_done: int
    global_iter: int
    interrupted: bool
    signal: int | None
    best_ap: float | None
    last_eval: dict[str, Any] | None
    seconds: float


def select_device(name: str) -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without CUDA is a UserError."""
    if name not in CHOICES_DEVICE:
        raise UserError(f"--device: {name!r} is not one of {CHOICES_DEVICE}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return torch.device(name)


def lr_factor(iteration: int, *, cfg: TrainConfig, iters_per_epoch: int) -> float:
    """Multiplier of the base learning rate at a global ``iteration`` (0-based).

    Linear warmup from ``warmup_ratio`` over ``warmup_iters``, then ×``lr_gamma`` at each
    fraction in ``lr_steps`` of the epochs (the paper's 75/95 of 100 epochs, scaled).
    """
    assert cfg.epochs is not None and cfg.warmup_iters is not None
    factor = 1.0
    if iteration < cfg.warmup_iters:
        factor = cfg.warmup_ratio + (1.0 - cfg.warmup_ratio) * iteration / cfg.warmup_iters
    epoch = iteration // iters_per_epoch
    for frac in cfg.lr_steps:
        if epoch >= round(frac * cfg.epochs):
            factor *= cfg.lr_gamma
    return factor


def default_run_dir(loss: str) -> Path:
    """``runs/<UTC timestamp>-<loss>``."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{loss}"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig, num_classes: int, *, load_pretrained: bool = True) -> Detector:
    """The detector a (resolved) config describes."""
    assert cfg.backbone is not None and cfg.head_channels is not None
    return Detector(
        num_classes,
        backbone=cfg.backbone,
        assigner=cfg.assigner,
        head_channels=cfg.head_channels,
        group_norm=bool(cfg.group_norm),
        pretrained=cfg.pretrained and load_pretrained,
        frozen_bn=cfg.pretrained,
        p6_from=cfg.p6_from or "c5",
        anchors=(cfg.anchor_scales_per_octave, tuple(cfg.anchor_ratios))
        if cfg.anchor_scales_per_octave and cfg.anchor_ratios
        else None,
    )


def _datasets(cfg: TrainConfig, emit: EventFn) -> tuple[CocoDataset, CocoDataset]:
    assert cfg.image_size is not None
    paths = resolve_data(cfg.data, cfg.train_ann, cfg.train_images, cfg.val_ann, cfg.val_images)
    if paths is None:
        from alrp_cli.detection.data import synthetic_dataset_dir

        emit({"type": "message", "text": "using the built-in synthetic shapes dataset"})
        paths = coco_layout(synthetic_dataset_dir())
    assert paths.train_ann and paths.train_images and paths.val_ann and paths.val_images
    train_ds = CocoDataset(
        paths.train_images, paths.train_ann, train=True, image_size=cfg.image_size
    )
    val_ds = CocoDataset(paths.val_images, paths.val_ann, train=False, image_size=cfg.image_size)
    if train_ds.category_ids != val_ds.category_ids:
        raise UserError(
            f"{paths.val_ann}: categories differ from the training annotations {paths.train_ann}"
        )
    return train_ds, val_ds


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Callable[[], int | bool]]:
    """Turn the first SIGINT/SIGTERM into a stop request (checked after each iteration);
    the callable returns the signal number once one arrived, else False."""
    flag: dict[str, int | bool] = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: flag["stop"]
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:  # a second signal: stop now
            raise KeyboardInterrupt
        flag["stop"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: flag["stop"]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def train(config: TrainConfig, *, on_event: EventFn | None = None) -> TrainResult:
    """Train (or resume) a detector as ``config`` says; see the module docstring."""
    started = time.perf_counter()
    emit: EventFn = on_event or (lambda event: None)
    checkpoint = None
    if config.resume is not None:
        run_dir = Path(config.resume)
        checkpoint = load_checkpoint(run_dir / "last.pt")
        cfg = TrainConfig.from_dict(checkpoint["config"])
        cfg.resume = str(run_dir)
    else:
        cfg = config.resolved()
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg.loss)
        cfg.out = str(run_dir)
        if (run_dir / "last.pt").exists():
            raise UserError(
                f"{run_dir}: holds a run already; use --resume {run_dir} or a new --out"
            )
    assert cfg.batch_size and cfg.epochs and cfg.image_size
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
    amp = cfg.amp and device.type == "cuda"
    _seed_everything(cfg.seed)

    train_ds, val_ds = _datasets(cfg, emit)
    iters_per_epoch = len(train_ds) // cfg.batch_size
    if iters_per_epoch == 0:
        raise UserError(
            f"{train_ds.ann_file}: {len(train_ds)} training images, fewer than one batch "
            f"(--batch-size {cfg.batch_size})"
        )
    model = build_model(cfg, train_ds.num_classes, load_pretrained=checkpoint is None).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=cfg.scaled_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, cfg=cfg, iters_per_epoch=iters_per_epoch)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    loss_module = make_loss_module(
        cfg.loss,
        period=iters_per_epoch * cfg.sb_period_epochs,
        init_weight=cfg.sb_init,
        fixed=cfg.sb_fixed,
    )
    if loss_module is not None:
        loss_module.to(device)
    meta = {
        "num_classes": train_ds.num_classes,
        "category_ids": train_ds.category_ids,
        "category_names": train_ds.category_names,
        "iters_per_epoch": iters_per_epoch,
    }
    state = TrainState()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        if loss_module is not None:
            loss_module.load_state_dict(checkpoint["loss"])
        state = TrainState(**checkpoint["train_state"])
        set_rng_state(checkpoint["rng"])
        log = MetricsLog.resume(run_dir / "metrics.jsonl", up_to_iter=state.global_iter)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", cfg.to_dict())
        log = MetricsLog(run_dir / "metrics.jsonl")
        log.flush()

    def checkpoint_state() -> dict[str, Any]:
        return {
            "config": cfg.to_dict(),
            "meta": meta,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "loss": loss_module.state_dict() if loss_module is not None else {},
            "train_state": asdict(state),
        }

    record_inputs, flush_inputs = loss_inputs_recorder(
        run_dir / "loss_inputs.pt",
        cfg.record_loss_inputs,
        {**meta, "loss": cfg.loss, "assigner": cfg.assigner, "delta": 1.0},
        state.global_iter,
    )

    def on_step(record: dict[str, Any]) -> None:
        if record["type"] == "step":
            log.append(record)
        emit(record)

    val_loader = torch.utils.data.DataLoader(
        val_ds, batch_size=cfg.batch_size, collate_fn=collate, num_workers=cfg.workers
    )
    emit(
        {
            "type": "start",
            "run_dir": str(run_dir),
            "device": str(device),
            "epochs": cfg.epochs,
            "iters_per_epoch": iters_per_epoch,
            "total_iters": iters_per_epoch * cfg.epochs,
            "start_iter": state.global_iter,
            "config": cfg.to_dict(),
        }
    )
    last_eval: dict[str, Any] | None = None
    interrupted = False
    with _stop_on_signals() as should_stop:
        while state.epoch < cfg.epochs:
            sampler = EpochSampler(
                len(train_ds),
                seed=cfg.seed,
                epoch=state.epoch,
                start=state.epoch_iter * cfg.batch_size,
            )
            loader = torch.utils.data.DataLoader(
                train_ds,
                batch_size=cfg.batch_size,
                sampler=sampler,
                drop_last=True,
                collate_fn=collate,
                num_workers=cfg.workers,
                # worker seeds from (seed, epoch), not from the global RNG
                generator=torch.Generator().manual_seed(cfg.seed * 7919 + state.epoch),
            )
            # SB updates fall on epoch ends (period = K epochs): this weight is the epoch's.
            sb_used = float(loss_module.weight) if loss_module is not None else None
            finished = train_one_epoch(
                model,
                loader,
                optimizer,
                scheduler,
                scaler,
                loss_module,
                state,
                loss=cfg.loss,
                assigner=cfg.assigner,
                device=device,
                amp=amp,
                grad_clip=cfg.grad_clip,
                log_every=cfg.log_every,
                on_step=on_step,
                on_loss_inputs=record_inputs if cfg.record_loss_inputs else None,
                should_stop=should_stop,
            )
            if not finished:
                interrupted = True
                break
            n = max(1, state.epoch_iter)
            epoch_record = {
                "type": "epoch",
                "epoch": state.epoch + 1,
                "iter": state.global_iter,
                "loss": state.sums["loss"] / n,
                "cls": state.sums["cls"] / n,
                "loc": state.sums["loc"] / n,
                "sb_weight": sb_used,
                "sb_weight_next": float(loss_module.weight) if loss_module is not None else None,
                "lr": state.last_lr,
                "seconds": state.epoch_seconds,
            }
            log.append(epoch_record)
            emit(epoch_record)
            state.epoch += 1
            state.epoch_iter = 0
            state.sums = {"loss": 0.0, "cls": 0.0, "loc": 0.0}
            state.epoch_seconds = 0.0
            improved = False
            if state.epoch % cfg.eval_every == 0 or state.epoch == cfg.epochs:
                last_eval = _evaluate_epoch(
                    model, val_loader, val_ds, cfg, device, amp, state, run_dir, emit
                )
                log.append(last_eval)
                improved = last_eval["AP"] > state.best_ap
                if improved:
                    state.best_ap = last_eval["AP"]
            save_checkpoint(run_dir / "last.pt", checkpoint_state())
            if improved:
                with atomic_path(run_dir / "best.pt") as tmp:
                    shutil.copyfile(run_dir / "last.pt", tmp)
            if should_stop():
                interrupted = state.epoch < cfg.epochs
                break
        if interrupted and state.epoch_iter > 0:
            save_checkpoint(run_dir / "last.pt", checkpoint_state())
        flush_inputs()
        stopped_by = int(should_stop()) if interrupted else None
    return TrainResult(
        run_dir=run_dir,
        epochs_done=state.epoch,
        global_iter=state.global_iter,
        interrupted=interrupted,
        signal=stopped_by,
        best_ap=state.best_ap if state.best_ap >= 0 else None,
        last_eval=last_eval,
        seconds=time.perf_counter() - started,
    )


def _evaluate_epoch(
    model: Detector,
    loader: torch.utils.data.DataLoader,
    val_ds: CocoDataset,
    cfg: TrainConfig,
    device: torch.device,
    amp: bool,
    state: TrainState,
    run_dir: Path,
    emit: EventFn,
) -> dict[str, Any]:
    emit({"type": "eval_start", "epoch": state.epoch, "images": len(val_ds)})
    predictions = predict_loader(
        model,
        loader,
        val_ds.category_ids,
        device=device,
        amp=amp,
        pre_nms_topk=cfg.pre_nms_topk,
        score_threshold=cfg.score_threshold,
        nms_iou=cfg.nms_iou,
        max_detections=cfg.max_detections,
        on_batch=lambda n: emit({"type": "eval_batch", "images": n}),
    )
    folder = run_dir / "eval" / f"epoch_{state.epoch:03d}"
    write_json(folder / "predictions.json", predictions, indent=None)
    summary = evaluate(predictions, val_ds.ann_file)
    summary = {
        "epoch": state.epoch,
        "iter": state.global_iter,
        "gt": str(val_ds.ann_file),
        **summary,
    }
    write_json(folder / "summary.json", summary)
    record = {
        "type": "eval",
        **{k: v for k, v in summary.items() if k not in ("gt", "per_class_lrp")},
    }
    emit(record)
    return record
