"""``loss_inputs.pt``: recorded loss inputs, written and read in one place.

``alrp train --record-loss-inputs``, the torchvision heads' ``record=`` and
:func:`save_loss_inputs` all write through :class:`Recorder` / :func:`save_loss_inputs`;
``alrp check-balance --from`` reads with :func:`load_loss_inputs`. The file is a
``torch.save`` of plain tensors and numbers only::

    {"version": 1,
     "batches": [{"logits": Tensor[N], "targets": Tensor[N], "loc_errors": Tensor[P],
                  "ious": Tensor[P] (optional)}, ...],
     "meta": {...}}

``targets`` hold 1 (positive), 0 (negative), -1 (ignored); ``loc_errors`` has one entry
per positive, in the order the positives appear in ``logits``; ``ious``, present when the
training loss takes continuous targets, the IoU of each positive's box with its ground
truth, in the same order (files without it stay valid). It is read back with
``torch.load(..., weights_only=True)``: loading never runs code from the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from alrp_cli.atomic import atomic_path
from alrp_cli.errors import UserError
from alrp_cli.torchfile import read_torch_file

FORMAT_VERSION = 1
#: The tensors of a batch record; "ious" is optional.
REQUIRED = ("logits", "targets", "loc_errors")
OPTIONAL = ("ious",)


@dataclass(frozen=True)
class LossInputs:
    """One recorded batch: ``logits`` (N,) float, ``targets`` (N,) int64 in {1, 0, -1},
    ``loc_errors`` (P,) float, and optionally ``ious`` (P,) float in [0, 1]."""

    logits: Tensor
    targets: Tensor
    loc_errors: Tensor
    ious: Tensor | None = None


@dataclass(frozen=True)
class RecordedInputs:
    """The batches of a recorded file and its free-form ``meta`` dict."""

    batches: list[LossInputs]
    meta: dict[str, Any] = field(default_factory=dict)


def _record(batch: LossInputs | Mapping[str, Tensor | None]) -> dict[str, Tensor]:
    get = batch.get if isinstance(batch, Mapping) else lambda k: getattr(batch, k, None)
    record = {k: get(k) for k in REQUIRED}
    record.update({k: get(k) for k in OPTIONAL if get(k) is not None})
    return {k: v.detach().cpu() for k, v in record.items()}


def save_loss_inputs(
    path: str | os.PathLike[str],
    batches: Sequence[LossInputs | Mapping[str, Tensor | None]],
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``batches`` (records or dicts of tensors) in this format, atomically; tensors
    go to the CPU; an absent or None "ious" is left out."""
    obj = {
        "version": FORMAT_VERSION,
        "batches": [_record(b) for b in batches],
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class Recorder:
    """Detached float32 CPU copies of the loss inputs of the first ``limit`` batches.

    ``batches`` holds one dict per recorded batch ("logits", "targets", "loc_errors" and,
    when given, "ious"); :meth:`save` writes them with :func:`save_loss_inputs`.
    """

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.batches: list[dict[str, Tensor]] = []

    @property
    def full(self) -> bool:
        """Whether ``limit`` batches are held (no more are kept)."""
        return len(self.batches) >= self.limit

    def record(
        self, logits: Tensor, targets: Tensor, loc_errors: Tensor, ious: Tensor | None = None
    ) -> None:
        """Keep copies of one batch's Tensor[N] logits and targets and Tensor[P] loc errors
        (and IoUs), unless full."""
        if self.full:
            return
        batch = {
            "logits": logits.detach().float().cpu().clone(),
            "targets": targets.detach().cpu().clone(),
            "loc_errors": loc_errors.detach().float().cpu().clone(),
        }
        if ious is not None:
            batch["ious"] = ious.detach().float().cpu().clone()
        self.batches.append(batch)

    def save(self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None) -> None:
        """Write the held batches to ``path`` (atomically)."""
        save_loss_inputs(path, self.batches, meta)


def _per_positive(where: str, key: str, value: Tensor, num_pos: int) -> None:
    if not value.is_floating_point():
        raise UserError(f"{where}: {key!r} has dtype {value.dtype}, not a float dtype")
    if value.numel() != num_pos:
        raise UserError(
            f"{where}: {key!r} has {value.numel()} entries but there are {num_pos} positives"
        )


def _check_batch(name: str, i: int, batch: Any) -> LossInputs:
    where = f"{name}: batch {i}"
    if not isinstance(batch, Mapping):
        raise UserError(f"{where}: expected a dict, got {type(batch).__name__}")
    keys = [*REQUIRED, *(k for k in OPTIONAL if batch.get(k) is not None)]
    for key in keys:
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
    _per_positive(where, "loc_errors", loc, num_pos)
    if not bool(torch.isfinite(logits).all()):
        raise UserError(f"{where}: 'logits' holds NaN or infinite values")
    if not bool(torch.isfinite(loc).all()):
        raise UserError(f"{where}: 'loc_errors' holds NaN or infinite values")
    ious = batch.get("ious")
    if ious is not None:
        _per_positive(where, "ious", ious, num_pos)
        if not bool(((ious >= 0) & (ious <= 1)).all()):
            raise UserError(f"{where}: 'ious' holds values outside [0, 1]")
        ious = ious.detach().cpu()
    return LossInputs(logits.detach().cpu(), targets.cpu(), loc.detach().cpu(), ious)


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
            f"{name}: unsupported version {obj.get('version')!r} "
            f"(this alrp reads version {FORMAT_VERSION})"
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
