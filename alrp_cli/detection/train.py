"""Training orchestration: the epoch loop, checkpoints, evaluation, logging and signals.

``train(config)`` is what ``alrp train`` calls, in one process or in each of the processes
``torchrun`` starts (one code path: :func:`alrp_cli.detection.build.setup` builds the run,
:func:`fit` loops over epochs). It reports progress through ``on_event`` (dict events; the
CLI draws them) and rank 0 alone writes the run directory:

- ``config.json``: the resolved config, by group (every setting, with ``world_size`` and
  ``backend`` in ``runtime``);
- ``metrics.jsonl``: step, epoch and eval records (losses averaged over the processes);
- ``last.pt`` every epoch, before its evaluation (and on SIGINT/SIGTERM), and again after
  it; ``best.pt`` by COCO AP;
- ``eval/epoch_XXX/predictions.json`` and ``summary.json`` at each evaluation;
- ``loss_inputs.pt`` with ``record_loss_inputs`` > 0 (rank 0's share of each batch).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alrp_cli.atomic import atomic_path, write_json
from alrp_cli.config.training import TrainConfig
from alrp_cli.detection.build import EventFn, Run, setup, train_loader, val_loader
from alrp_cli.detection.checkpoint import save_checkpoint
from alrp_cli.detection.engine import evaluate, predict_loader, train_one_epoch
from alrp_cli.detection.recording import loss_inputs_meta, loss_inputs_recorder
from alrp_cli.errors import AlrpError


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

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal that stopped the run (the shell's convention)."""
        return 128 + self.signal if self.interrupted and self.signal else 0


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Callable[[], int | bool]]:
    """Turn the first SIGINT/SIGTERM into a stop request (checked after each iteration);
    the callable returns the signal number once one arrived, else False.

    A second signal stops at once, unless it comes within a second of the first: torchrun
    forwards the Ctrl-C that the terminal already sent to every process.
    """
    flag: dict[str, Any] = {"stop": False, "at": 0.0}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: flag["stop"]
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            if time.monotonic() - flag["at"] < 1.0:
                return
            raise KeyboardInterrupt  # a second signal: stop now
        flag["stop"], flag["at"] = signum, time.monotonic()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: flag["stop"]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def checkpoint_state(run: Run) -> dict[str, Any]:
    """What ``last.pt`` holds (plus the RNG states :func:`save_checkpoint` adds)."""
    return {
        "config": run.cfg.to_dict(),
        "meta": run.meta,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "loss": run.loss_module.state_dict() if run.loss_module is not None else {},
        "train_state": asdict(run.state),
    }


def save_last(run: Run, *, best: bool = False) -> None:
    """Rank 0 writes ``last.pt`` (and copies it to ``best.pt`` when ``best``)."""
    if not run.dist.is_main:
        return
    save_checkpoint(run.run_dir / "last.pt", checkpoint_state(run))
    if best:
        with atomic_path(run.run_dir / "best.pt") as tmp:
            shutil.copyfile(run.run_dir / "last.pt", tmp)


def log_record(run: Run, record: dict[str, Any], emit: EventFn) -> None:
    """Append to ``metrics.jsonl`` (rank 0) and report the record."""
    if run.log is not None:
        run.log.append(record)
    emit(record)


def evaluate_epoch(run: Run, emit: EventFn) -> dict[str, Any]:
    """Each process predicts its shard of the validation set; rank 0 gathers the shards in
    dataset order, writes ``predictions.json`` and ``summary.json`` and scores them; every
    process returns the eval record."""
    ev, state, val_ds, dist = run.cfg.eval, run.state, run.val_ds, run.dist
    emit({"type": "eval_start", "epoch": state.epoch, "images": len(val_ds)})
    shard = predict_loader(
        run.model,
        val_loader(run),
        val_ds.category_ids,
        device=run.device,
        amp=run.amp_dtype is not None,
        amp_dtype=run.amp_dtype,
        pre_nms_topk=ev.pre_nms_topk,
        score_threshold=ev.score_threshold,
        nms_iou=ev.nms_iou,
        max_detections=ev.max_detections,
        on_batch=lambda n: emit({"type": "eval_batch", "images": n * dist.world_size}),
    )
    shards = dist.gather_objects(shard)
    record = None
    if shards is not None:
        position = {image_id: i for i, image_id in enumerate(val_ds.image_paths())}
        predictions = sorted(
            (p for part in shards for p in part), key=lambda p: position[p["image_id"]]
        )  # stable: each image's detections keep their order
        folder = run.run_dir / "eval" / f"epoch_{state.epoch:03d}"
        write_json(folder / "predictions.json", predictions, indent=None)
        summary = {
            "epoch": state.epoch,
            "iter": state.global_iter,
            "gt": str(val_ds.ann_file),
            **evaluate(predictions, val_ds.ann_file),
        }
        write_json(folder / "summary.json", summary)
        record = {
            "type": "eval",
            **{k: v for k, v in summary.items() if k not in ("gt", "per_class_lrp")},
        }
    record = dist.broadcast_object(record)
    emit(record)
    return record


def _sb_weight(run: Run) -> float | None:
    return float(run.loss_module.weight) if run.loss_module is not None else None


def _evaluate_saved(run: Run, emit: EventFn) -> dict[str, Any]:
    """Evaluate the epoch that ``last.pt`` holds (saved with ``eval_pending``), log the
    result, and save ``last.pt`` again (copied to ``best.pt`` when the AP improved).

    A failure leaves the saved epoch: an :class:`AlrpError` says so and how to resume.
    """
    state = run.state
    try:
        record = evaluate_epoch(run, emit)
    except Exception as err:
        raise AlrpError(
            f"{run.run_dir}: the evaluation of epoch {state.epoch} failed "
            f"({type(err).__name__}: {err}); the epoch is saved in last.pt, and "
            f"`alrp train --resume {run.run_dir}` evaluates it first"
        ) from err
    if run.log is not None:
        run.log.append(record)
    ap = record["AP"]  # None when undefined (no ground truth to evaluate)
    improved = ap is not None and ap > state.best_ap
    if improved:
        state.best_ap = ap
    state.eval_pending = False
    save_last(run, best=improved)
    return record


def _end_epoch(run: Run, emit: EventFn, sb_used: float | None) -> dict[str, Any] | None:
    """Log the epoch (with the self-balance weight it trained with, ``sb_used``, and the one
    the next epoch gets), save ``last.pt``, then evaluate when due (and save again)."""
    state = run.state
    n = max(1, state.epoch_iter)
    log_record(
        run,
        {
            "type": "epoch",
            "epoch": state.epoch + 1,
            "iter": state.global_iter,
            "loss": state.sums["loss"] / n,
            "cls": state.sums["cls"] / n,
            "loc": state.sums["loc"] / n,
            "sb_weight": sb_used,
            "sb_weight_next": _sb_weight(run),
            "lr": state.last_lr,
            "seconds": state.epoch_seconds,
        },
        emit,
    )
    state.epoch += 1
    state.epoch_iter = 0
    state.sums = {"loss": 0.0, "cls": 0.0, "loc": 0.0}
    state.epoch_seconds = 0.0
    # Saved before the evaluation, so that a crash in it loses no training.
    every, epochs = run.cfg.eval.eval_every, run.cfg.optim.epochs
    state.eval_pending = state.epoch % every == 0 or state.epoch == epochs
    save_last(run)
    return _evaluate_saved(run, emit) if state.eval_pending else None


def _finish_pending_evaluation(run: Run, emit: EventFn) -> dict[str, Any] | None:
    """On resume: the evaluation that the run's last epoch did not finish, first (an eval
    record it had logged already is replaced)."""
    state = run.state
    if not state.eval_pending:
        return None
    emit({"type": "message", "text": f"evaluating epoch {state.epoch} (it did not finish)"})
    if run.log is not None:
        run.log.records = [
            r for r in run.log.records if not (r["type"] == "eval" and r["epoch"] == state.epoch)
        ]
        run.log.flush()
    return _evaluate_saved(run, emit)


def fit(run: Run, emit: EventFn) -> TrainResult:
    """Train ``run`` to its last epoch, or until a signal on any process stops it."""
    started = time.perf_counter()
    cfg, state, dist = run.cfg, run.state, run.dist
    epochs, loss, assigner = cfg.optim.epochs, cfg.model.loss, cfg.model.assigner
    record = cfg.runtime.record_loss_inputs if dist.is_main else 0
    assert epochs is not None and assigner is not None
    if state.epoch >= epochs and not state.eval_pending:  # a finished run: touch nothing
        return _result(run, stopped_by=None, last_eval=None, seconds=0.0)
    record_inputs, flush_inputs = loss_inputs_recorder(
        run.run_dir / "loss_inputs.pt",
        record,
        loss_inputs_meta(run.meta, loss, assigner),
        state.global_iter,
    )

    def on_step(record: dict[str, Any]) -> None:
        if record["type"] == "step" and run.log is not None:
            run.log.append(record)
        emit(record)

    emit(
        {
            "type": "start",
            "run_dir": str(run.run_dir),
            "device": str(run.device),
            "world_size": dist.world_size,
            "epochs": epochs,
            "iters_per_epoch": run.iters_per_epoch,
            "total_iters": run.iters_per_epoch * epochs,
            "start_iter": state.global_iter,
            "config": cfg.to_dict(),
        }
    )
    last_eval = _finish_pending_evaluation(run, emit)
    interrupted = False
    with _stop_on_signals() as should_stop:
        while state.epoch < epochs:
            # SB updates fall on epoch ends (period = K epochs): this weight is the epoch's.
            sb_used = _sb_weight(run)
            finished = train_one_epoch(
                run.model,
                train_loader(run),
                run.optimizer,
                run.scheduler,
                run.scaler,
                run.loss_module,
                state,
                loss=loss,
                assigner=assigner,
                device=run.device,
                amp=run.amp_dtype is not None,
                amp_dtype=run.amp_dtype,
                grad_clip=cfg.optim.grad_clip,
                log_every=cfg.runtime.log_every,
                on_step=on_step,
                on_loss_inputs=record_inputs if record else None,
                should_stop=should_stop,
                dist=dist,
                forward=run.forward,
                collective=run.collective,
            )
            if not finished:
                interrupted = True
                break
            last_eval = _end_epoch(run, emit, sb_used) or last_eval
            if dist.any(should_stop()):
                interrupted = state.epoch < epochs
                break
        if interrupted and state.epoch_iter > 0:
            save_last(run)
        flush_inputs()
        stopped_by = int(should_stop() or signal.SIGTERM) if interrupted else None
    return _result(
        run, stopped_by=stopped_by, last_eval=last_eval, seconds=time.perf_counter() - started
    )


def _result(
    run: Run, *, stopped_by: int | None, last_eval: dict[str, Any] | None, seconds: float
) -> TrainResult:
    """Where ``run`` stands, stopped by signal ``stopped_by`` (None: not interrupted)."""
    state = run.state
    return TrainResult(
        run_dir=run.run_dir,
        epochs_done=state.epoch,
        global_iter=state.global_iter,
        interrupted=stopped_by is not None,
        signal=stopped_by,
        best_ap=state.best_ap if state.best_ap >= 0 else None,
        last_eval=last_eval,
        seconds=seconds,
    )


def train(config: TrainConfig, *, on_event: EventFn | None = None) -> TrainResult:
    """Train (or resume) a detector as ``config`` says; see the module docstring.

    Under torchrun every process calls this; only rank 0 reports events and writes files.
    """
    started = time.perf_counter()
    report: EventFn = on_event or (lambda event: None)
    silent: EventFn = lambda event: None  # noqa: E731
    from alrp_cli.detection.distributed import env_rank

    run = setup(config, report if env_rank() == 0 else silent)
    try:
        result = fit(run, report if run.dist.is_main else silent)
    finally:
        run.dist.close()
    result.seconds = time.perf_counter() - started
    return result
