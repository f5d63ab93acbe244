"""Self-balance every K epochs: the weight recorded per epoch is the one used, and a run
resumed in the middle of a period continues the period exactly."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from alrp_cli.detection.train import train
from tests.helpers.tiny_training import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _records(run: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def _sb_reference(steps: list[dict[str, Any]], period: int) -> list[float]:
    """The weight each step used, recomputed from the steps' own L_cls and L_loc: 50 until a
    period ends, then (Σloc + Σcls) / Σloc over that period, applied from its last step on."""
    weight, cls_sum, loc_sum, used = 50.0, 0.0, 0.0, []
    for k, step in enumerate(steps, start=1):
        cls_sum += step["cls"]
        loc_sum += step["loc"]
        if k % period == 0:
            weight = (loc_sum + cls_sum) / loc_sum
            cls_sum = loc_sum = 0.0
        used.append(weight)
    return used


def test_sb_period_in_epochs_and_resume_mid_period(tiny_coco: Path, tmp_path: Path) -> None:
    # 2 iterations per epoch, 3 epochs, one update every 2 epochs (after iteration 4).
    options = {"epochs": 3, "sb_period_epochs": 2, "log_every": 1}
    straight = train(tiny_config(tiny_coco, tmp_path / "a", **options))
    assert straight.global_iter == 6 and not straight.interrupted
    steps = _records(tmp_path / "a", "step")
    assert [s["sb_weight"] for s in steps] == pytest.approx(_sb_reference(steps, period=4))
    epochs = _records(tmp_path / "a", "epoch")
    used = [e["sb_weight"] for e in epochs]
    nxt = [e["sb_weight_next"] for e in epochs]
    # Epochs 1-2 train with 50; the update at the end of epoch 2 is used in epoch 3.
    assert used[0] == used[1] == 50.0 and nxt[0] == 50.0
    assert nxt[1] != 50.0 and used[2] == nxt[1] == nxt[2] == pytest.approx(steps[3]["sb_weight"])
    # Each epoch's recorded weight is the one its steps used (all but the period's last step).
    for e, epoch in enumerate(epochs):
        assert steps[2 * e]["sb_weight"] == pytest.approx(epoch["sb_weight"])

    # Stopped by SIGINT after epoch 1 (mid-period), resumed: the same weights and parameters.
    def stop_after_epoch_1(event: dict[str, Any]) -> None:
        if event["type"] == "epoch" and event["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    first = train(tiny_config(tiny_coco, tmp_path / "b", **options), on_event=stop_after_epoch_1)
    assert first.interrupted and first.global_iter == 2
    ckpt = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert ckpt["loss"]["_extra_state"] == {"count": 2}  # half-way through the period
    train(tiny_config(tiny_coco, tmp_path / "x", resume=str(tmp_path / "b")))
    assert [e["sb_weight"] for e in _records(tmp_path / "b", "epoch")] == pytest.approx(used)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert torch.equal(a["loss"]["weight"], b["loss"]["weight"])
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
