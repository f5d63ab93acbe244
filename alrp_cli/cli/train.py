"""``alrp train``: parse options, run :func:`alrp_cli.detection.train.train`, draw progress."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from alrp_cli import registry
from alrp_cli.cli.options import JSON_HELP, SEED_MAX, table_console
from alrp_cli.errors import AlrpError, UserError
from alrp_cli.outputs import Outputs, write_json_output


class _ProgressView:
    """Draws training events as a Rich progress display on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self.train_task: Any = None
        self.scan_task: Any = None
        self.run_dir: str | None = None
        self.warnings: list[str] = []
        self.eval_task: Any = None
        self.epochs = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "message":
            self.console.print(event["text"])
        elif kind == "complete":  # a resumed run with nothing to do: no "start" follows
            self.say_warnings()
            self.console.print(event["text"])
        elif kind == "scan_start":
            self.progress.start()
            self.scan_task = self.progress.add_task(
                f"check {event['split']} images", total=event["images"], info=""
            )
        elif kind == "scan":
            self.progress.update(self.scan_task, advance=1)
        elif kind == "scan_end":
            self.progress.remove_task(self.scan_task)
        elif kind == "start":
            self.epochs = event["epochs"]
            self.run_dir = event["run_dir"]
            self.say_warnings()
            world = event.get("world_size", 1)
            self.console.print(
                f"run directory: {event['run_dir']} (device {event['device']}"
                + (f", {world} processes" if world > 1 else "")
                + ")"
            )
            self.progress.start()
            self.train_task = self.progress.add_task(
                "train", total=event["total_iters"], completed=event["start_iter"], info=""
            )
        elif kind in ("tick", "step"):
            w = event["sb_weight"]
            info = (
                f"ep {event['epoch']}/{self.epochs} loss {event['loss']:.3f} "
                f"cls {event['cls']:.3f} loc {event['loc']:.3f}"
                + (f" w {w:.1f}" if w is not None else "")
                + f" lr {event['lr']:.2e} {event.get('images_per_s', 0.0):.1f} img/s"
            )
            self.progress.update(self.train_task, advance=1, info=info)
        elif kind == "eval_start":
            self.eval_task = self.progress.add_task("eval", total=event["images"], info="")
        elif kind == "eval_batch":
            self.progress.update(self.eval_task, advance=event["images"])
        elif kind == "eval":
            self.progress.remove_task(self.eval_task)
            molrp = event.get("moLRP")
            self.progress.console.print(
                f"epoch {event['epoch']}: AP {_num(event['AP'])} AP50 {_num(event['AP50'])}"
                + (f" moLRP {molrp:.4f}" if molrp is not None else "")
            )

    def say_warnings(self) -> None:
        """Print the warnings once the run is known to start (or known to be complete)."""
        for text in self.warnings:
            self.console.print(f"[yellow]warning:[/] {text}", highlight=False)
        self.warnings = []

    def stop(self) -> None:
        if not self.progress.live.is_started:
            return
        if self.progress.tasks:
            self.progress.stop()
        else:  # nothing to leave (an error right after the image check): no blank line
            self.progress.live.transient = True
            self.progress.live.stop()


def _num(value: float | None) -> str:
    """A metric to 4 decimals; "–" when undefined (None: e.g. no ground truth to evaluate)."""
    return "–" if value is None else f"{value:.4f}"


def _summary_table(result: Any) -> Table:
    table = Table(title=f"alrp train: {result.run_dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("epochs", str(result.epochs_done))
    table.add_row("iterations", str(result.global_iter))
    table.add_row("seconds", f"{result.seconds:.1f}")
    if result.last_eval:
        for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "moLRP"):
            value = result.last_eval.get(key)
            table.add_row(key, "-" if value is None else f"{value:.4f}")
    if result.best_ap is not None:
        table.add_row("best AP", f"{result.best_ap:.4f}")
    return table


def resolved_config(config: Any) -> dict[str, Any]:
    """What ``config.json`` would hold: the resolved options (a resumed run's own config);
    ``out`` stays null when not given (the run would pick ``runs/<timestamp>-<loss>``)."""
    from alrp_cli.detection.checkpoint import load_checkpoint
    from alrp_cli.detection.config import TrainConfig

    if config.resume is not None:
        stored = TrainConfig.from_dict(load_checkpoint(Path(config.resume) / "last.pt")["config"])
        return stored.to_dict()
    return config.resolved().to_dict()


def _parse_steps(text: str) -> list[float]:
    try:
        steps = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--lr-steps: {text!r} is not a comma-separated list of numbers") from None
    if any(not 0 < s <= 1 for s in steps):
        raise UserError(f"--lr-steps: fractions of the epochs must be in (0, 1], got {text!r}")
    return steps


def _parse_scale(text: str) -> list[int]:
    try:
        scale = [int(part) for part in text.split(",")]
    except ValueError:
        scale = []
    if len(scale) != 2 or min(scale) < 1:
        raise UserError(f"--test-scale: {text!r} is not LONG,SHORT (two positive integers)")
    return scale


def _ignored_with_resume(ctx: typer.Context) -> list[str]:
    """The options typed on the command line that ``--resume`` ignores (it keeps config.json)."""
    kept = {"resume", "json_path", "nproc"}  # --nproc starts the processes
    names = []
    for param in ctx.command.params:
        if param.name in kept or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)
        if getattr(source, "name", None) == "COMMANDLINE":
            names.append(param.opts[0])
    return names


def train(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None,
        "--data",
        help="COCO-layout dataset folder (annotations/, train2017/, val2017/). "
        "Without any data option: the built-in synthetic shapes dataset.",
    ),
    train_ann: Path | None = typer.Option(None, "--train-ann", help="Training annotation file."),
    train_images: Path | None = typer.Option(None, "--train-images", help="Training images."),
    val_ann: Path | None = typer.Option(None, "--val-ann", help="Validation annotation file."),
    val_images: Path | None = typer.Option(None, "--val-images", help="Validation images."),
    skip_bad_images: bool = typer.Option(
        False,
        "--skip-bad-images",
        help="Leave unreadable or truncated training images out (counted) instead of stopping.",
    ),
    keep_empty_images: bool = typer.Option(
        False,
        "--keep-empty-images",
        help="Train also on images no annotation refers to (the official loader leaves them out).",
    ),
    augmentation: str | None = typer.Option(
        None,
        "--augmentation",
        help="official | mild: the training pipeline [synthetic: mild; COCO: official, "
        "the paper's SSD-style augmentation].",
    ),
    test_scale: str | None = typer.Option(
        None,
        "--test-scale",
        help="LONG,SHORT: evaluation keeps the aspect ratio within these sides "
        "[synthetic: the image size; COCO: 833,500].",
    ),
    loss: str = typer.Option(
        registry.DEFAULT_LOSS, "--loss", help=" | ".join(registry.names("train")) + "."
    ),
    assigner: str | None = typer.Option(
        None, "--assigner", help="atss | maxiou [synthetic: atss; COCO: per loss, see docs]."
    ),
    backbone: str | None = typer.Option(
        None, "--backbone", help="resnet18|34|50|101 [synthetic: resnet18, COCO: resnet50]."
    ),
    pretrained: bool | None = typer.Option(
        None,
        "--pretrained/--no-pretrained",
        help="Start the backbone from torchvision's ImageNet weights, downloaded once into "
        "torch's cache [synthetic: off, COCO: on]; --no-pretrained trains from scratch.",
    ),
    backbone_weights: Path | None = typer.Option(
        None,
        "--backbone-weights",
        help="A local copy of the ImageNet weights (a torchvision state dict, e.g. "
        "resnet50-0676ba61.pth) for machines without internet; implies --pretrained.",
    ),
    head_channels: int | None = typer.Option(
        None, "--head-channels", help="FPN/head width [synthetic: 64, COCO: 256]."
    ),
    group_norm: bool | None = typer.Option(
        None,
        "--group-norm/--no-group-norm",
        help="GroupNorm in the head towers [synthetic: on; COCO: off, as the official heads].",
    ),
    p6_from: str | None = typer.Option(
        None, "--p6-from", help="c5 | p5: input of the P6 conv [c5, as the official FPN]."
    ),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Square input size, multiple of 32 [synthetic: 128, COCO: 512]."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        help="Global batch: images per step over all processes, each takes its share "
        "[synthetic: 16, COCO: 32].",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="[synthetic: 8, COCO: 100]."),
    lr: float | None = typer.Option(
        None, "--lr", help="Learning rate at batch --lr-batch [synthetic: 0.04, COCO: 0.008]."
    ),
    lr_batch: int | None = typer.Option(
        None, "--lr-batch", help="Batch size --lr refers to (linear rule) [32; COCO focal: 16]."
    ),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", help="SGD weight decay."),
    warmup_iters: int | None = typer.Option(
        None, "--warmup-iters", help="Linear warmup iterations [synthetic: 100, COCO: 500]."
    ),
    lr_steps: str | None = typer.Option(
        None,
        "--lr-steps",
        help="Fractions of the epochs where lr drops ×0.1 [0.75,0.95; COCO: per loss].",
    ),
    grad_clip: float | None = typer.Option(None, "--grad-clip", help="Max gradient L2 norm."),
    sb_init: float = typer.Option(50.0, "--sb-init", help="Initial self-balance weight (aLRP)."),
    sb_fixed: bool = typer.Option(
        False, "--sb-fixed", help="Hold the aLRP loc weight at --sb-init (no self-balance)."
    ),
    sb_period_epochs: int = typer.Option(
        1, "--sb-period-epochs", help="Epochs per self-balance update (aLRP; official: 1)."
    ),
    pre_nms_topk: int = typer.Option(1000, "--pre-nms-topk", help="Top-k per level before NMS."),
    score_threshold: float = typer.Option(
        0.05, "--score-threshold", min=0.0, max=1.0, help="Inference threshold."
    ),
    nms_iou: float | None = typer.Option(
        None, "--nms-iou", help="NMS IoU threshold [0.5; COCO: per loss, see docs]."
    ),
    max_detections: int = typer.Option(100, "--max-detections", help="Detections per image."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    amp: bool = typer.Option(
        False,
        "--amp/--no-amp",
        help="Mixed precision (autocast; losses stay float32), on CUDA and CPU.",
    ),
    amp_dtype: str = typer.Option(
        "auto",
        "--amp-dtype",
        help="auto | bfloat16 | float16 (with a gradient scaler). "
        "auto: bfloat16 where supported (CPU too), else float16.",
    ),
    ranking: str = typer.Option(
        "global",
        "--ranking",
        help="Several processes: global = aLRP/AP Loss rank the global batch, exactly as "
        "one process would; local = each process ranks its own share (the official code).",
    ),
    nproc: int = typer.Option(
        1,
        "--nproc",
        help="Start N processes on this node through torch's launcher (as torchrun "
        "--standalone --nproc_per_node N); one per GPU.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Random seed."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Data-loading worker processes per training process "
        "[synthetic: 0; COCO: its CPUs less one, at most 8].",
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch CPU threads."),
    eval_every: int = typer.Option(1, "--eval-every", help="Evaluate every N epochs (and last)."),
    log_every: int = typer.Option(20, "--log-every", help="Step record every N iterations."),
    record_loss_inputs: int = typer.Option(
        0, "--record-loss-inputs", help="Save the loss inputs of N batches (loss_inputs.pt)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Run directory [runs/<timestamp>-<loss>]."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this directory exactly (other options ignored)."
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Write the result as JSON here." + JSON_HELP
    ),
    print_config: bool = typer.Option(
        False,
        "--print-config",
        help="Print the resolved configuration (config.json) as JSON and exit; no training.",
    ),
) -> None:
    """Train a RetinaNet-style detector with aLRP Loss (or AP / Focal Loss baselines)."""
    from alrp_cli.detection.config import TrainConfig
    from alrp_cli.detection.train import train as run_training

    config = TrainConfig(
        data=None if data is None else str(data),
        train_ann=None if train_ann is None else str(train_ann),
        val_ann=None if val_ann is None else str(val_ann),
        train_images=None if train_images is None else str(train_images),
        val_images=None if val_images is None else str(val_images),
        skip_bad_images=skip_bad_images,
        keep_empty_images=keep_empty_images,
        augmentation=augmentation,
        test_scale=None if test_scale is None else _parse_scale(test_scale),
        loss=loss,
        assigner=assigner,
        backbone=backbone,
        pretrained=pretrained,
        backbone_weights=None if backbone_weights is None else str(backbone_weights),
        head_channels=head_channels,
        group_norm=group_norm,
        p6_from=p6_from,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        lr_batch=lr_batch,
        momentum=momentum,
        weight_decay=weight_decay,
        warmup_iters=warmup_iters,
        lr_steps=None if lr_steps is None else _parse_steps(lr_steps),
        grad_clip=grad_clip,
        sb_init=sb_init,
        sb_fixed=sb_fixed,
        sb_period_epochs=sb_period_epochs,
        pre_nms_topk=pre_nms_topk,
        score_threshold=score_threshold,
        nms_iou=nms_iou,
        max_detections=max_detections,
        device=device,
        amp=amp,
        amp_dtype=amp_dtype,
        ranking=ranking,
        nproc=nproc,
        seed=seed,
        workers=workers,
        threads=threads,
        eval_every=eval_every,
        log_every=log_every,
        record_loss_inputs=record_loss_inputs,
        out=None if out is None else str(out),
        resume=None if resume is None else str(resume),
    )
    if print_config:
        typer.echo(json.dumps(resolved_config(config), indent=2))
        return
    outputs = Outputs(
        [data, train_ann, train_images, val_ann, val_images, resume, backbone_weights]
    )
    if resume is None:  # without --out: runs/ in the working directory
        outputs.folder(out or Path("runs"), "--out" if out else "--out (default runs/)")
    json_path = outputs.file(json_path, "--json", stdout=True)

    from alrp_cli.detection.distributed import env_rank, launched_by_torchrun

    if not launched_by_torchrun():
        config.validate()  # bad options: one line here, not once per process
        config.check_machine()
        if nproc > 1:
            from alrp_cli.detection.launch import launch_local

            raise typer.Exit(launch_local(nproc, sys.argv[1:]))
    elif env_rank() != 0:  # rank 0 alone prints
        try:
            run_training(config)
        except AlrpError as err:
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        return
    console = Console(stderr=True)
    view = _ProgressView(console)
    if resume is not None and (ignored := _ignored_with_resume(ctx)):
        view.warnings.append(
            f"--resume continues the run as its config.json says; ignoring {', '.join(ignored)}"
        )
    try:
        result = run_training(config, on_event=view)
    except KeyboardInterrupt:
        view.stop()
        where = f" ({view.run_dir}/last.pt)" if view.run_dir else ""
        console.print(
            f"second interrupt: stopped at once; nothing was saved since the last checkpoint{where}"
        )
        raise typer.Exit(130) from None
    finally:
        view.stop()
    table_console(json_path).print(_summary_table(result))
    if json_path is not None:
        payload = asdict(result)
        payload["run_dir"] = str(result.run_dir)
        write_json_output(json_path, payload)
    if result.interrupted:
        console.print(
            f"interrupted: checkpoint saved; continue with `alrp train --resume {result.run_dir}`"
        )
        raise typer.Exit(128 + (result.signal or 2))
