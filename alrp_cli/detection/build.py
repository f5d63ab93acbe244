"""Setting up a training run: config, process group, run directory, data, model, optimiser,
schedule, gradient scaler and loss, restored from the checkpoint on ``--resume``.

:func:`setup` returns a :class:`Run`, everything the loop in :mod:`.train` needs; each piece
is built by a small function here, the same way for one process and for several.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alrp_cli.atomic import write_json
from alrp_cli.config.training import ModelConfig, OptimConfig, RuntimeConfig, TrainConfig
from alrp_cli.detection.checkpoint import load_checkpoint, load_weights, set_rng_state
from alrp_cli.detection.data import CocoDataset, coco_layout, collate, resolve_data
from alrp_cli.detection.data.annotations import CROWD, box_counts, describe
from alrp_cli.detection.data.coco import image_problem
from alrp_cli.detection.distributed import Dist, init_distributed, sync_batch_norm
from alrp_cli.detection.engine import TrainState
from alrp_cli.detection.head_losses import make_loss_module
from alrp_cli.detection.metrics_log import MetricsLog
from alrp_cli.detection.model import Detector
from alrp_cli.detection.pretrained import backbone_state_dict
from alrp_cli.errors import UserError
from alrp_cli.run_dir import (
    check_new_run_dir,
    create_run_dir,
    resume_checkpoint,
)

EventFn = Callable[[dict[str, Any]], None]


@dataclass
class Run:
    """A set-up training run. ``model`` is the detector, ``forward`` what the loop calls
    (its DistributedDataParallel wrapper under several processes, else ``model``);
    ``log`` is None on every process but rank 0; ``collective`` is the loss's (None for a
    per-process loss)."""

    cfg: TrainConfig
    run_dir: Path
    dist: Dist
    device: torch.device
    amp_dtype: torch.dtype | None
    train_ds: CocoDataset
    val_ds: CocoDataset
    iters_per_epoch: int
    model: Detector
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loss_module: nn.Module | None
    collective: Any
    state: TrainState
    log: MetricsLog | None
    meta: dict[str, Any]
    loaders: dict[str, torch.utils.data.DataLoader] = field(default_factory=dict)

    @property
    def batch_per_rank(self) -> int:
        """Images per process and step: the global batch over the world size."""
        assert self.cfg.optim.batch_size is not None
        return self.cfg.optim.batch_size // self.dist.world_size


def lr_factor(iteration: int, *, optim: OptimConfig, iters_per_epoch: int) -> float:
    """Multiplier of the base learning rate at a global ``iteration`` (0-based).

    Linear warmup from ``warmup_ratio`` over ``warmup_iters``, then ×``lr_gamma`` at each
    fraction in ``lr_steps`` of the epochs (the paper's 75/95 of 100 epochs, scaled).
    """
    o = optim
    assert o.epochs is not None and o.warmup_iters is not None and o.warmup_ratio is not None
    factor = 1.0
    if iteration < o.warmup_iters:
        factor = o.warmup_ratio + (1.0 - o.warmup_ratio) * iteration / o.warmup_iters
    epoch = iteration // iters_per_epoch
    for frac in o.lr_steps or []:
        if epoch >= round(frac * o.epochs):
            factor *= o.lr_gamma
    return factor


def build_model(
    model: ModelConfig, num_classes: int, *, backbone_weights: Mapping[str, Tensor] | None = None
) -> Detector:
    """The detector a (resolved) model group describes; ``backbone_weights`` (ImageNet
    weights from :func:`pretrained_backbone`) start a new pretrained run, else the weights
    come from a checkpoint or a random initialisation."""
    m = model
    assert m.backbone is not None and m.head_channels is not None and m.assigner is not None
    assert m.anchor_scales_per_octave is not None and m.anchor_ratios is not None
    return Detector(
        num_classes,
        backbone=m.backbone,
        assigner=m.assigner,
        head_channels=m.head_channels,
        group_norm=bool(m.group_norm),
        pretrained=bool(m.pretrained),
        backbone_weights=backbone_weights,
        p6_from=m.p6_from or "c5",
        anchors=(m.anchor_scales_per_octave, tuple(m.anchor_ratios)),
    )


def pretrained_backbone(model: ModelConfig, dist: Dist, emit: EventFn) -> dict[str, Tensor] | None:
    """The ImageNet weights of a new pretrained run (None when not pretrained).

    Rank 0 goes first (it downloads into torch's cache once), then the others read the file
    (another node with an empty cache downloads its own copy). All processes agree: a
    UserError on one is raised on every one, before any run directory exists.
    """
    if not model.pretrained:
        return None
    assert model.backbone is not None

    def downloading(url: str, path: Path) -> None:
        emit({"type": "message", "text": f"downloading the ImageNet weights {url} to {path}"})

    state, error = None, None
    for first in (True, False):
        if dist.is_main == first:
            try:
                state = backbone_state_dict(
                    model.backbone,
                    weights_file=model.backbone_weights,
                    progress=dist.is_main,
                    on_download=downloading,
                )
            except UserError as err:
                error = str(err)
        if dist.any(error is not None):
            raise UserError(error or "the backbone weights failed on another process")
    return state


def resolve_amp_dtype(runtime: RuntimeConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp`` (None without it): ``--amp-dtype``, or 'auto':
    bfloat16 on a CPU and on a GPU that supports it, float16 otherwise."""
    if not runtime.amp:
        return None
    if runtime.amp_dtype == "float16":
        return torch.float16
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    if runtime.amp_dtype == "bfloat16":
        if not bf16_ok:
            raise UserError("--amp-dtype bfloat16: this GPU does not support bfloat16")
        return torch.bfloat16
    return torch.bfloat16 if bf16_ok else torch.float16


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stored_config(checkpoint: dict[str, Any], source: Path) -> TrainConfig:
    """The configuration a checkpoint holds (a UserError naming ``source`` if it is not
    one this version writes)."""
    return TrainConfig.from_dict(checkpoint["config"], f"{source} (config)")


def planned_config(config: TrainConfig) -> TrainConfig:
    """The configuration a run of ``config`` trains with (what ``--print-config`` shows):
    resolved, or on ``--resume`` the run's own (its ``last.pt``'s)."""
    resume = config.runtime.resume
    if resume is None:
        return config.resolved()
    _, checkpoint_file = resume_checkpoint(resume)
    return stored_config(load_checkpoint(checkpoint_file), checkpoint_file)


def _resolve_config(
    config: TrainConfig,
) -> tuple[TrainConfig, Path | None, Path | None, dict[str, Any] | None]:
    """The run's config, its directory (None until a new one is created), and on
    ``--resume`` the checkpoint file and its contents: every process reads it."""
    if config.runtime.resume is None:
        cfg = config.resolved()
        check_new_run_dir(cfg.runtime.out)  # claimed later, once data and model are known good
        return cfg, None, None, None
    run_dir, checkpoint_file = resume_checkpoint(config.runtime.resume)
    checkpoint = load_checkpoint(checkpoint_file)
    cfg = stored_config(checkpoint, checkpoint_file)
    cfg.runtime.resume = str(run_dir)
    return cfg, run_dir, checkpoint_file, checkpoint


def _join_world(cfg: TrainConfig, resumed: bool, emit: EventFn) -> tuple[Dist, torch.device]:
    """Join the process group; record the world in ``cfg``; say what a new world size means."""
    rt, batch = cfg.runtime, cfg.optim.batch_size
    assert batch is not None
    dist, device = init_distributed(rt.device)
    before = rt.world_size
    cfg.check_world_size(dist.world_size)
    rt.world_size, rt.backend = dist.world_size, dist.backend
    if resumed and before != dist.world_size:
        text = (
            f"resumed on {dist.world_size} processes (the run started on {before}): the "
            f"global batch stays {batch} ({batch // dist.world_size} per process)"
        )
        if cfg.optim.ranking == "local":
            text += (
                "; with --ranking local the loss itself changes: each process now ranks "
                f"{batch // dist.world_size} images instead of {batch // before}"
            )
        emit({"type": "message", "text": text})
    return dist, device


def _open_run_dir(cfg: TrainConfig, run_dir: Path | None, dist: Dist) -> Path:
    """Rank 0 claims a new run directory (exclusively) and writes ``config.json``; a resumed
    run keeps its ``config.json`` byte for byte (its checkpoints record the world it runs
    in now). Every process learns the directory."""
    rt = cfg.runtime
    if dist.is_main and run_dir is None:
        run_dir = create_run_dir(rt.out, cfg.model.loss)
        rt.out = str(run_dir)
        write_json(run_dir / "config.json", cfg.to_dict())
    run_dir = dist.broadcast_object(run_dir)
    rt.out = rt.out if rt.resume else str(run_dir)
    return run_dir


def _datasets(cfg: TrainConfig, emit: EventFn, dist: Dist) -> tuple[CocoDataset, CocoDataset]:
    """Training and validation sets; rank 0 first (it may build the synthetic set's cache)."""
    d = cfg.data
    assert d.image_size is not None and d.augmentation is not None
    if not dist.is_main:
        dist.barrier()
    paths = resolve_data(d.data, d.train_ann, d.train_images, d.val_ann, d.val_images)
    if paths is None:
        from alrp_cli.detection.data import synthetic_dataset_dir

        emit({"type": "message", "text": "using the built-in synthetic shapes dataset"})
        paths = coco_layout(synthetic_dataset_dir())
    if dist.is_main:
        dist.barrier()
    assert paths.train_ann and paths.train_images and paths.val_ann and paths.val_images
    common = {"image_size": d.image_size, "augmentation": d.augmentation}
    train_ds = CocoDataset(
        paths.train_images,
        paths.train_ann,
        train=True,
        keep_empty_images=d.keep_empty_images,
        **common,
    )
    val_ds = CocoDataset(
        paths.val_images, paths.val_ann, train=False, test_scale=cfg.eval.test_scale, **common
    )
    if train_ds.category_ids != val_ds.category_ids:
        raise UserError(
            f"{paths.val_ann}: categories differ from the training annotations {paths.train_ann}"
        )
    _check_boxes(train_ds, emit)
    _check_images(train_ds, "train", skip=d.skip_bad_images, emit=emit, dist=dist)
    _check_images(val_ds, "val", skip=False, emit=emit, dist=dist)
    return train_ds, val_ds


def _check_boxes(ds: CocoDataset, emit: EventFn) -> None:
    """Refuse training data without a single usable box (it would train 'loss 0.000'); say
    which images and boxes the official rules leave out (:mod:`.data.annotations`)."""
    counts = box_counts(ds.coco, ds.ids)
    images = ", ".join(f"{n} {why}" for why, n in sorted(ds.dropped_images.items()))
    if not counts["usable"]:
        total = counts.total()
        what = f"{total} boxes, none usable ({describe(counts)})" if total else "no boxes"
        left = f"; left out: {images}" if images else ""
        raise UserError(
            f"{ds.ann_file}: nothing to train on: {len(ds)} training images, {what}{left}"
        )
    if images:
        empty = ds.dropped_images["without annotations"]
        hint = " (--keep-empty-images keeps them)" if empty else ""
        emit({"type": "message", "text": f"left out training images: {images}{hint}"})
    unusable = Counter({r: n for r, n in counts.items() if r not in ("usable", CROWD)})
    if unusable:
        emit(
            {
                "type": "message",
                "text": f"{ds.ann_file}: {unusable.total()} of {counts.total()} training boxes "
                f"are not used: {describe(unusable)}",
            }
        )


def _check_images(ds: CocoDataset, split: str, *, skip: bool, emit: EventFn, dist: Dist) -> None:
    """Check every image file before training starts (exists, header, not truncated).

    Rank 0 reads the files and tells the others. A bad image is a UserError naming it;
    with ``skip`` (training images only: a validation image left out would change the
    evaluation) bad images are dropped and counted.
    """
    bad: list[tuple[int, Path, str]] = []
    if dist.is_main:
        paths = ds.image_paths()
        emit({"type": "scan_start", "split": split, "images": len(paths)})
        for image_id, path in paths.items():
            problem = image_problem(path)
            if problem is not None:
                bad.append((image_id, path, problem))
            emit({"type": "scan"})
        emit({"type": "scan_end", "split": split})
    bad = dist.broadcast_object(bad)
    if not bad:
        return
    _, path, problem = bad[0]
    more = f" (and {len(bad) - 1} more of the {split} images)" if len(bad) > 1 else ""
    if not skip:
        hint = "; --skip-bad-images leaves bad training images out" if split == "train" else ""
        raise UserError(f"{path}: {problem}{more}{hint}")
    ds.exclude(i for i, _, _ in bad)
    emit(
        {
            "type": "message",
            "text": f"skipped {len(bad)} bad training images (first: {path}: {problem})",
        }
    )


def trains_batch_norm(model: Detector) -> bool:
    """Whether ``model`` has BatchNorm that learns batch statistics in training (then
    several processes need SyncBatchNorm). A pretrained backbone's BatchNorm stays in eval
    mode (``norm_eval``): fixed statistics, the same on every process."""
    return not model.norm_eval and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
    )


def _wrap_model(
    model: Detector, dist: Dist, device: torch.device, *, ran_on_several: bool = False
) -> nn.Module:
    """DistributedDataParallel over several processes, with BatchNorm statistics of the global
    batch where BatchNorm trains (so N processes × batch B compute what one process computes
    at batch N·B); the model itself alone. A CPU run that ran on several processes and now
    runs on one (``ran_on_several``: resumed) keeps the ranks' BatchNorm arithmetic
    (:class:`~.distributed.CpuSyncBatchNorm`), so that it continues to rounding; a fresh
    process alone keeps torch's faster kernel."""
    several = dist.distributed or (ran_on_several and device.type != "cuda")
    if trains_batch_norm(model) and several:
        sync_batch_norm(model, device)
    if not dist.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def setup(config: TrainConfig, emit: EventFn) -> Run:
    """Everything a run needs, fresh or restored from ``--resume``'s checkpoint."""
    cfg, run_dir, checkpoint_file, checkpoint = _resolve_config(config)
    cfg.check_machine()
    dist, device = _join_world(cfg, checkpoint is not None, emit)
    try:
        return _setup(cfg, run_dir, checkpoint_file, checkpoint, dist, device, emit)
    except BaseException:
        dist.close()
        raise


def _setup(
    cfg: TrainConfig,
    run_dir: Path | None,
    checkpoint_file: Path | None,
    checkpoint: dict[str, Any] | None,
    dist: Dist,
    device: torch.device,
    emit: EventFn,
) -> Run:
    optim, rt = cfg.optim, cfg.runtime
    assert optim.batch_size and optim.epochs
    if rt.threads:
        torch.set_num_threads(rt.threads)
    _seed_everything(rt.seed)
    train_ds, val_ds = _datasets(cfg, emit, dist)
    iters_per_epoch = len(train_ds) // optim.batch_size
    if iters_per_epoch == 0:
        raise UserError(
            f"{train_ds.ann_file}: {len(train_ds)} training images, fewer than one batch "
            f"(--batch-size {optim.batch_size})"
        )
    # ImageNet weights of a new run: after the data checks, before any run directory exists
    backbone_weights = pretrained_backbone(cfg.model, dist, emit) if checkpoint is None else None
    model = build_model(cfg.model, train_ds.num_classes, backbone_weights=backbone_weights)
    model.to(device)
    del backbone_weights
    if checkpoint is not None:
        assert checkpoint_file is not None
        load_weights(model, checkpoint["model"], checkpoint_file)
    run_dir = _open_run_dir(cfg, run_dir, dist)
    ran_on_several = checkpoint is not None and checkpoint["config"]["runtime"]["world_size"] > 1
    forward = _wrap_model(model, dist, device, ran_on_several=ran_on_several)
    optimizer, scheduler = _optimizer(model, optim, iters_per_epoch)
    amp_dtype = resolve_amp_dtype(rt, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    collective = dist.collective() if optim.ranking == "global" else None
    loss_module = make_loss_module(
        cfg.model.loss,
        period=iters_per_epoch * optim.sb_period_epochs,
        init_weight=optim.sb_init,
        fixed=optim.sb_fixed,
        collective=collective,
    )
    if loss_module is not None:
        loss_module.to(device)
    state = TrainState()
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        if loss_module is not None:
            loss_module.load_state_dict(checkpoint["loss"])
        state = TrainState(**checkpoint["train_state"])
        set_rng_state(checkpoint["rng"])
    log = _metrics_log(run_dir, state, checkpoint is not None, optim.epochs, dist, emit)
    meta = {
        "num_classes": train_ds.num_classes,
        "category_ids": train_ds.category_ids,
        "category_names": train_ds.category_names,
        "iters_per_epoch": iters_per_epoch,
    }
    return Run(
        cfg=cfg,
        run_dir=run_dir,
        dist=dist,
        device=device,
        amp_dtype=amp_dtype,
        train_ds=train_ds,
        val_ds=val_ds,
        iters_per_epoch=iters_per_epoch,
        model=model,
        forward=forward,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        loss_module=loss_module,
        collective=collective,
        state=state,
        log=log,
        meta=meta,
    )


def _optimizer(
    model: nn.Module, optim: OptimConfig, iters_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD over the trainable parameters at the batch's learning rate, and its schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=optim.scaled_lr, momentum=optim.momentum, weight_decay=optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, optim=optim, iters_per_epoch=iters_per_epoch)
    )
    return optimizer, scheduler


def _metrics_log(
    run_dir: Path, state: TrainState, resumed: bool, epochs: int, dist: Dist, emit: EventFn
) -> MetricsLog | None:
    """Rank 0's ``metrics.jsonl``: a new one, or a resumed run's up to its checkpoint. None
    on the other ranks, and for a resumed run that is complete (said; nothing touched)."""
    if resumed and state.epoch >= epochs and not state.eval_pending:
        emit(
            {
                "type": "complete",
                "text": f"{run_dir}: the run is complete "
                f"({state.epoch} of {epochs} epochs); nothing to train",
            }
        )
        return None
    if not dist.is_main:
        return None
    if resumed:
        return MetricsLog.resume(run_dir / "metrics.jsonl", up_to_iter=state.global_iter)
    log = MetricsLog(run_dir / "metrics.jsonl")
    log.flush()
    return log


def _loader_options(run: Run) -> dict[str, Any]:
    """Workers kept alive across epochs and evaluations (no restart per epoch), and batches
    in pinned memory on CUDA (asynchronous copies to the GPU)."""
    workers = int(run.cfg.runtime.workers or 0)
    return {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": run.device.type == "cuda",
        "collate_fn": collate,
    }


def train_loader(run: Run) -> torch.utils.data.DataLoader:
    """This process's batches for the rest of the current epoch: its share of each global
    batch (see :class:`~alrp_cli.detection.engine.EpochSampler`), augmented as a function
    of (seed, epoch, image). One loader serves the whole run (its workers persist); each
    call moves its sampler to the current epoch and position."""
    from alrp_cli.detection.engine import EpochSampler, SeededSamples

    seed, batch, state, dist = run.cfg.runtime.seed, run.cfg.optim.batch_size, run.state, run.dist
    assert batch is not None
    start = state.epoch_iter * batch
    loader = run.loaders.get("train")
    if loader is not None:
        loader.sampler.set_epoch(state.epoch, start=start)  # type: ignore[attr-defined]
        return loader
    sampler = EpochSampler(
        len(run.train_ds),
        seed=seed,
        epoch=state.epoch,
        start=start,
        rank=dist.rank,
        world_size=dist.world_size,
        batch_size=run.batch_per_rank,
        keyed=True,
    )
    loader = torch.utils.data.DataLoader(
        SeededSamples(run.train_ds, seed=seed, epoch=state.epoch),
        batch_size=run.batch_per_rank,
        sampler=sampler,
        drop_last=True,
        # worker seeds from (seed, epoch), not from the global RNG
        generator=torch.Generator().manual_seed(seed * 7919 + state.epoch),
        **_loader_options(run),
    )
    run.loaders["train"] = loader
    return loader


def val_loader(run: Run) -> torch.utils.data.DataLoader:
    """This process's shard of the validation set: images rank, rank + W, rank + 2W, ...,
    in batches of the global batch size (inference holds no gradients); one loader for the
    whole run."""
    if "val" not in run.loaders:
        shard = torch.utils.data.Subset(
            run.val_ds, range(run.dist.rank, len(run.val_ds), run.dist.world_size)
        )
        run.loaders["val"] = torch.utils.data.DataLoader(
            shard, batch_size=run.cfg.optim.batch_size, **_loader_options(run)
        )
    return run.loaders["val"]
