"""Recorded loss inputs: round trip, and every malformed file is a one-line UserError."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from alrp_cli.balance.recorded import recorded_problems
from alrp_cli.errors import UserError
from alrp_cli.loss_inputs_file import LossInputs, load_loss_inputs, save_loss_inputs


def _batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    targets = torch.tensor([1, 0, 0, -1, 1, 0, 0, 0][:n])
    return {
        "logits": torch.randn(n, generator=gen),
        "targets": targets,
        "loc_errors": torch.rand(int((targets == 1).sum()), generator=gen),
    }


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "inputs.pt"
    batches = [_batch(seed=1), _batch(seed=2)]
    save_loss_inputs(path, batches, {"delta": 0.5, "run": "x"})
    rec = load_loss_inputs(path)
    assert rec.meta == {"delta": 0.5, "run": "x"}
    assert len(rec.batches) == 2
    for got, want in zip(rec.batches, batches, strict=True):
        for key in ("logits", "targets", "loc_errors"):
            assert torch.equal(getattr(got, key), want[key])
    problems = list(recorded_problems(rec, (0.0, 1.0), dtype=torch.float64))
    assert [(p.trial, p.batch, p.delta, p.seed) for p in problems] == [
        (0, 0, 0.0, -1),
        (1, 0, 1.0, -1),
        (2, 1, 0.0, -1),
        (3, 1, 1.0, -1),
    ]
    assert problems[0].logits.dtype == torch.float64
    assert torch.equal(problems[3].logits, batches[1]["logits"].double())


def test_float_targets_are_accepted(tmp_path: Path) -> None:
    b = _batch()
    b["targets"] = b["targets"].float()
    save_loss_inputs(tmp_path / "f.pt", [LossInputs(**b)])
    assert load_loss_inputs(tmp_path / "f.pt").batches[0].targets.dtype == torch.int64


def _save_raw(path: Path, obj: Any) -> None:
    torch.save(obj, path)


class NotPlain:  # a class torch.load(weights_only=True) refuses to build
    pass


def _set(key: str, value: Any) -> Callable[[dict], dict]:
    def edit(b: dict) -> dict:
        return {**b, key: value}

    return edit


BAD_BATCHES: list[tuple[Callable[[dict], Any], str]] = [
    (lambda b: [1, 2], "batch 0: expected a dict"),
    (lambda b: {k: v for k, v in b.items() if k != "targets"}, "batch 0: missing 'targets'"),
    (_set("logits", [0.1] * 8), "'logits' is list, not a tensor"),
    (_set("logits", torch.zeros(2, 4)), "'logits' has shape (2, 4)"),
    (_set("logits", torch.zeros(8, dtype=torch.int64)), "'logits' has dtype torch.int64"),
    (_set("targets", torch.zeros(7, dtype=torch.int64)), "'targets' has 7 entries but"),
    (_set("targets", torch.tensor([1, 0, 0, 2, 1, 0, 0, 0])), "'targets' holds 2"),
    (_set("loc_errors", torch.rand(3)), "'loc_errors' has 3 entries but there are 2 positives"),
    (_set("logits", torch.tensor([0.0] * 7 + [float("nan")])), "'logits' holds NaN"),
    (_set("loc_errors", torch.tensor([0.1, float("inf")])), "'loc_errors' holds NaN"),
]


@pytest.mark.parametrize(("edit", "message"), BAD_BATCHES)
def test_malformed_batches(tmp_path: Path, edit: Callable[[dict], Any], message: str) -> None:
    path = tmp_path / "bad.pt"
    _save_raw(path, {"version": 1, "batches": [edit(_batch())], "meta": {}})
    with pytest.raises(UserError) as err:
        load_loss_inputs(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


BAD_FILES: list[tuple[Callable[[Path], None], str]] = [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "not a file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("hello"), "not a PyTorch file"),
    (lambda p: p.write_bytes(pickle.dumps({"version": 1})), "not a PyTorch file"),
    (lambda p: _save_raw(p, {"version": 1, "batches": [NotPlain()]}), "holds objects other than"),
    (lambda p: _save_raw(p, [1, 2]), "expected a dict with 'version'"),
    (lambda p: _save_raw(p, {"version": 2, "batches": []}), "unsupported version 2"),
    (lambda p: _save_raw(p, {"batches": []}), "unsupported version None"),
    (lambda p: _save_raw(p, {"version": 1}), "'batches' is missing or not a list"),
    (lambda p: _save_raw(p, {"version": 1, "batches": []}), "'batches' is empty"),
    (lambda p: _save_raw(p, {"version": 1, "batches": [_batch()], "meta": 3}), "'meta' is int"),
]


@pytest.mark.parametrize(("make", "message"), BAD_FILES)
def test_malformed_files(tmp_path: Path, make: Callable[[Path], None], message: str) -> None:
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(UserError) as err:
        load_loss_inputs(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
