"""Training on tiny synthetic data: run directory, exact resume, signals, divergence."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from alrp_cli.detection.build import lr_factor
from alrp_cli.detection.engine import NonFiniteLoss
from alrp_cli.detection.train import train
from alrp_cli.errors import UserError
from tests.helpers.tiny_training import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _interrupt_at(kind: str, epoch: int, iteration: int | None = None):
    def on_event(event: dict[str, Any]) -> None:
        at = iteration is None or event.get("iter") == iteration
        if event["type"] == kind and event.get("epoch") == epoch and at:
            os.kill(os.getpid(), signal.SIGINT)

    return on_event


def _params(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_run_directory_and_exact_resume_after_sigint(tiny_coco: Path, tmp_path: Path) -> None:
    straight = train(tiny_config(tiny_coco, tmp_path / "a", record_loss_inputs=2))
    assert not straight.interrupted and straight.epochs_done == 2 and straight.global_iter == 4

    # Interrupted by SIGINT in the middle of epoch 1, then at the end of it, resumed each time.
    cfg = tiny_config(tiny_coco, tmp_path / "b")
    first = train(cfg, on_event=_interrupt_at("step", 1, iteration=1))
    assert first.interrupted and first.signal == signal.SIGINT and first.global_iter == 1
    resume = tiny_config(tiny_coco, tmp_path / "ignored", resume=str(tmp_path / "b"))
    second = train(resume, on_event=_interrupt_at("epoch", 1))
    assert second.interrupted and second.global_iter == 2
    third = train(resume)
    assert not third.interrupted and third.global_iter == 4

    a, b = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ckpt_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    ckpt_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert torch.equal(ckpt_a["loss"]["weight"], ckpt_b["loss"]["weight"])  # self-balance state
    assert ckpt_a["scheduler"]["last_epoch"] == ckpt_b["scheduler"]["last_epoch"] == 4

    # Same log as the uninterrupted run, apart from timings.
    def records(run: Path) -> list[dict]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        timing = ("images_per_s", "data_s", "seconds")
        return [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines]

    assert records(tmp_path / "a") == records(tmp_path / "b")
    raw = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["data_s"] < 60 for r in raw if r["type"] == "step")
    recs = records(tmp_path / "a")
    assert [r["type"] for r in recs] == ["step", "step", "epoch", "step", "step", "epoch", "eval"]
    step = recs[0]
    assert set(step) == {"type", "epoch", "iter", "loss", "cls", "loc", "sb_weight", "lr"}
    assert step["sb_weight"] == 50.0
    assert step["loss"] == pytest.approx(step["cls"] + 50.0 * step["loc"], rel=1e-5)
    assert recs[2]["lr"] == recs[1]["lr"]  # an epoch's lr is the rate of its last step
    assert recs[0]["lr"] < recs[1]["lr"]  # warmup
    assert {"AP", "AP50", "AP75", "moLRP"} <= set(recs[-1])

    run = tmp_path / "a"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["backbone"] == "resnet18" and config["model"]["loss"] == "alrp"
    assert (run / "best.pt").is_file()
    summary = json.loads((run / "eval" / "epoch_002" / "summary.json").read_text())
    assert summary["AP"] == recs[-1]["AP"]
    predictions = json.loads((run / "eval" / "epoch_002" / "predictions.json").read_text())
    assert isinstance(predictions, list)

    recorded = torch.load(run / "loss_inputs.pt", weights_only=True)
    assert recorded["version"] == 1 and len(recorded["batches"]) == 2
    batch = recorded["batches"][0]
    assert batch["logits"].dtype == torch.float32
    assert batch["logits"].shape == batch["targets"].shape
    assert int((batch["targets"] == 1).sum()) == batch["loc_errors"].numel() > 0


def test_overfitting_one_batch_drives_the_loss_down(tiny_coco: Path, tmp_path: Path) -> None:
    from alrp_cli.detection.data import CocoDataset, coco_layout, collate
    from alrp_cli.detection.head_losses import build_loss_inputs, compute_loss
    from alrp_cli.detection.model import Detector

    torch.manual_seed(0)
    paths = coco_layout(tiny_coco)
    ds = CocoDataset(paths.train_images, paths.train_ann, train=False, image_size=64)
    images, targets = collate([ds[i] for i in range(4)])
    # GroupNorm as the synthetic preset (the official head without it learns slower at first)
    model = Detector(ds.num_classes, backbone="resnet18", head_channels=32, group_norm=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(12):
        out = model(images)
        parts = compute_loss("focal", build_loss_inputs(model, out, targets, assigner="atss"), None)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        losses.append(float(parts.total.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tiny_coco: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tiny_coco, tmp_path / "run", epochs=2, loss="focal")
    import alrp_cli.detection.engine as engine

    real = engine.compute_loss
    calls = {"n": 0}

    def poisoned(kind, inputs, module, **kwargs):
        calls["n"] += 1
        parts = real(kind, inputs, module, **kwargs)
        if calls["n"] == 3:  # first step of epoch 2
            parts.total = parts.total * float("nan")
            parts.cls = parts.value = float("nan")
        return parts

    monkeypatch.setattr(engine, "compute_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, iteration 3: loss=nan, cls=nan, loc="):
        train(cfg)
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["train_state"]["global_iter"] == 2  # the end of epoch 1


@pytest.mark.parametrize("loss", ["alrp", "ap", "focal"])
def test_non_finite_model_outputs_stop_every_loss_the_same_way(
    loss: str, tiny_coco: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NaN logits (what --lr 1e4 produces) stop the run before the loss sees them: aLRP and
    AP Loss would raise their own ValueError on non-finite logits."""
    import alrp_cli.detection.engine as engine

    real = engine.build_loss_inputs
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        inputs = real(*args, **kwargs)
        if calls["n"] == 3:  # first step of epoch 2
            inputs.logits = inputs.logits.clone()
            inputs.logits[:5] = float("nan")
        return inputs

    monkeypatch.setattr(engine, "build_loss_inputs", poisoned)
    message = r"epoch 2, iteration 3: loss=nan, cls=nan, loc=nan \(.* 5 non-finite logits"
    with pytest.raises(NonFiniteLoss, match=message):
        train(tiny_config(tiny_coco, tmp_path / "run", loss=loss))
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["train_state"]["global_iter"] == 2  # the end of epoch 1


def test_amp_on_cpu_trains_in_bfloat16_with_finite_losses(tiny_coco: Path, tmp_path: Path) -> None:
    from alrp_cli.config.training import RuntimeConfig, TrainConfig
    from alrp_cli.detection.build import resolve_amp_dtype

    cpu = torch.device("cpu")

    def runtime(**options: object) -> RuntimeConfig:
        return TrainConfig.from_options(**options).runtime

    assert resolve_amp_dtype(runtime(amp=True), cpu) == torch.bfloat16
    assert resolve_amp_dtype(runtime(amp=True, amp_dtype="float16"), cpu) == torch.float16
    assert resolve_amp_dtype(runtime(amp=False), cpu) is None

    import alrp_cli.detection.engine as engine

    seen: list[torch.dtype] = []
    real = engine.build_loss_inputs

    def spy(model, out, *args, **kwargs):
        seen.append(out.cls.dtype)  # what autocast made of the head's output
        inputs = real(model, out, *args, **kwargs)
        assert inputs.logits.dtype == inputs.loc_errors.dtype == torch.float32
        return inputs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "build_loss_inputs", spy)
        result = train(tiny_config(tiny_coco, tmp_path / "run", amp=True, epochs=1))
    assert result.global_iter == 2 and seen == [torch.bfloat16] * 2
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "step"]
    assert len(steps) == 2
    for r in steps:  # null in metrics.jsonl would mean non-finite
        assert all(isinstance(r[k], float) for k in ("loss", "cls", "loc"))
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())


@pytest.mark.slow
def test_amp_float16_trains_with_a_gradient_scaler_the_checkpoint_carries(
    tiny_coco: Path, tmp_path: Path
) -> None:
    train(tiny_config(tiny_coco, tmp_path / "f16", amp=True, amp_dtype="float16", epochs=1))
    scaler = torch.load(tmp_path / "f16" / "last.pt", weights_only=True)["scaler"]
    assert "scale" in scaler and scaler["scale"] > 0


def test_bad_options_and_occupied_run_directory(tiny_coco: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--loss"):
        train(tiny_config(tiny_coco, tmp_path / "x", loss="hinge"))
    with pytest.raises(UserError, match="--image-size"):
        train(tiny_config(tiny_coco, tmp_path / "x", image_size=70))
    with pytest.raises(UserError, match="no such directory"):
        train(tiny_config(tmp_path / "missing", tmp_path / "x"))
    with pytest.raises(UserError, match="fewer than one batch"):
        train(tiny_config(tiny_coco, tmp_path / "x", batch_size=64))
    with pytest.raises(UserError, match="no such run directory"):
        train(tiny_config(tiny_coco, tmp_path / "x", resume=str(tmp_path / "nothing")))


def test_schedule_warmup_and_steps() -> None:
    from alrp_cli.config.training import OptimConfig

    cfg = OptimConfig(epochs=100, warmup_iters=500, warmup_ratio=1 / 3, lr_steps=[0.75, 0.95])
    assert lr_factor(0, optim=cfg, iters_per_epoch=1000) == pytest.approx(1 / 3)
    assert lr_factor(250, optim=cfg, iters_per_epoch=1000) == pytest.approx(2 / 3)
    assert lr_factor(74_999, optim=cfg, iters_per_epoch=1000) == 1.0
    assert lr_factor(75_000, optim=cfg, iters_per_epoch=1000) == pytest.approx(0.1)  # epoch 75
    assert lr_factor(95_000, optim=cfg, iters_per_epoch=1000) == pytest.approx(0.01)  # epoch 95


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_amp_training_on_cuda_keeps_float32_weights(tiny_coco: Path, tmp_path: Path) -> None:
    result = train(tiny_config(tiny_coco, tmp_path / "run", device="cuda", amp=True))
    assert result.global_iter == 4 and not result.interrupted
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    for name, tensor in ckpt["model"].items():
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float32 and bool(torch.isfinite(tensor).all()), name
    assert ckpt["scaler"]  # the gradient scaler's state is saved for resuming
