"""Recorded loss inputs (``alrp train --record-loss-inputs``): write, read and validate.

The file is a ``torch.save`` of plain tensors and numbers only (DESIGN.md)::

    {"version": 1,
     "batches": [{"logits": Tensor[N], "targets": Tensor[N], "loc_errors": Tensor[P]}, ...],
     "meta": {...}}

``targets`` hold 1 (positive), 0 (negative), -1 (ignored); ``loc_errors`` has one entry
per positive, in the order the positives appear in ``logits``. It is read back with
``torch.load(..., weights_only=True)``: loading never runs code from the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from alrp_cli.atomic import atomic_path
from alrp_cli.balance.problems import Problem
from alrp_cli.errors import UserError
from alrp_cli.torchfile import read_torch_file

FORMAT_VERSION = 1


@dataclass(frozen=True)
class LossInputs:
    """One recorded batch: ``logits`` (N,) float, ``targets`` (N,) int64 in {1, 0, -1},
    ``loc_errors`` (P,) float."""

    logits: Tensor
    targets: Tensor
    loc_errors: Tensor


@dataclass(frozen=True)
class RecordedInputs:
    """The batches of a recorded file and its free-form ``meta`` dict."""

    batches: list[LossInputs]
    meta: dict[str, Any] = field(default_factory=dict)


def save_loss_inputs(
    path: str | os.PathLike[str],
    batches: Sequence[LossInputs | Mapping[str, Tensor]],
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``batches`` in the recorded-inputs format, atomically; tensors go to the CPU."""
    records = []
    for b in batches:
        get = (lambda k, b=b: b[k]) if isinstance(b, Mapping) else (lambda k, b=b: getattr(b, k))
        records.append({k: get(k).detach().cpu() for k in ("logits", "targets", "loc_errors")})
    obj = {"version": FORMAT_VERSION, "batches": records, "meta": dict(meta or {})}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _check_batch(name: str, i: int, batch: Any) -> LossInputs:
    where = f"{name}: batch {i}"
    if not isinstance(batch, Mapping):
        raise UserError(f"{where}: expected a dict, got {type(batch).__name__}")
    for key in ("logits", "targets", "loc_errors"):
        if key not in batch:
            raise UserError(f"{where}: missing {key!r}")
        if not isinstance(batch[key], Tensor):
            raise UserError(f"{where}: {key!r} is {type(batch[key]).__name__}, not a tensor")
        if batch[key].dim() != 1:
            raise UserError(f"{where}: {key!r} has shape {tuple(batch[key].shape)}, not (n,)")
    logits, targets, loc = batch["logits"], batch["targets"], batch["loc_errors"]
    if not logits.is_floating_point():
        raise UserError(f"{where}: 'logits' has dtype {logits.dtype}, not a float dtype")
    if not loc.is_floating_point():
        raise UserError(f"{where}: 'loc_errors' has dtype {loc.dtype}, not a float dtype")
    if targets.numel() != logits.numel():
        raise UserError(
            f"{where}: 'targets' has {targets.numel()} entries but 'logits' has {logits.numel()}"
        )
    if targets.is_complex() or targets.dtype == torch.bool:
        raise UserError(f"{where}: 'targets' has dtype {targets.dtype}; expected 1, 0 or -1")
    bad = ~((targets == 1) | (targets == 0) | (targets == -1))
    if bool(bad.any()):
        value = targets[bad][0].item()
        raise UserError(f"{where}: 'targets' holds {value}; expected 1, 0 or -1")
    targets = targets.to(torch.int64)
    num_pos = int((targets == 1).sum())
    if loc.numel() != num_pos:
        raise UserError(
            f"{where}: 'loc_errors' has {loc.numel()} entries but there are {num_pos} positives"
        )
    if not bool(torch.isfinite(logits).all()):
        raise UserError(f"{where}: 'logits' holds NaN or infinite values")
    if not bool(torch.isfinite(loc).all()):
        raise UserError(f"{where}: 'loc_errors' holds NaN or infinite values")
    return LossInputs(logits.detach().cpu(), targets.cpu(), loc.detach().cpu())


def load_loss_inputs(path: str | os.PathLike[str]) -> RecordedInputs:
    """Read and validate a recorded-inputs file.

    Raises :class:`UserError` ``"<path>: <what is wrong>"`` (one line) when the file is
    missing, unreadable, not a ``torch.save`` file of plain tensors, or malformed.
    """
    name = str(path)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{name}: no such file" if not p.exists() else f"{name}: not a file")
    obj = read_torch_file(p, "recorded loss-inputs")
    if not isinstance(obj, Mapping):
        raise UserError(f"{name}: expected a dict with 'version' and 'batches'")
    if obj.get("version") != FORMAT_VERSION:
        raise UserError(
            f"{name}: unsupported version {obj.get('version')!r} (this alrp reads version 1)"
        )
    batches = obj.get("batches")
    if not isinstance(batches, list | tuple):
        raise UserError(f"{name}: 'batches' is missing or not a list")
    if not batches:
        raise UserError(f"{name}: 'batches' is empty")
    meta = obj.get("meta", {})
    if not isinstance(meta, Mapping):
        raise UserError(f"{name}: 'meta' is {type(meta).__name__}, not a dict")
    checked = [_check_batch(name, i, b) for i, b in enumerate(batches)]
    return RecordedInputs(checked, dict(meta))


def recorded_problems(
    recorded: RecordedInputs,
    deltas: Sequence[float],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Iterator[Problem]:
    """One problem per (batch, δ): trial index = batch × len(deltas) + the δ's position."""
    trial = 0
    for b, batch in enumerate(recorded.batches):
        for delta in deltas:
            yield Problem(
                trial=trial,
                seed=-1,
                logits=batch.logits.to(device=device, dtype=dtype),
                targets=batch.targets.to(device=device),
                loc_errors=batch.loc_errors.to(device=device, dtype=dtype),
                delta=float(delta),
                regime="recorded",
                batch=b,
            )
            trial += 1
