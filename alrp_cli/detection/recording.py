"""Recording the loss inputs of the first batches of a run (``loss_inputs.pt``).

The file is what ``alrp check-balance --from`` reads (format in DESIGN.md): plain tensors,
numbers and strings, loadable with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from alrp_cli.atomic import atomic_path
from alrp_cli.detection.head_losses import LossInputs


def loss_inputs_recorder(
    path: Path, count: int, meta: dict[str, Any], start: int
) -> tuple[Callable[[LossInputs], None], Callable[[], None]]:
    """``(record, write)`` for ``train --record-loss-inputs count``.

    ``record(inputs)`` keeps detached CPU copies of a batch's logits (float32), targets
    (int8) and loc errors (float32) until ``count`` batches are held, then writes
    ``{"version": 1, "batches": [...], "meta": meta}`` atomically to ``path``; ``write()``
    writes what is held (a run shorter than ``count`` batches). Nothing is recorded when
    the run resumes at iteration ``start >= count``.
    """
    batches: list[dict[str, torch.Tensor]] = []
    done = {"written": count == 0 or start >= count}

    def write() -> None:
        if done["written"] or not batches:
            return
        done["written"] = True
        payload = {"version": 1, "batches": batches, "meta": meta}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def record(inputs: LossInputs) -> None:
        if done["written"]:
            return
        batches.append(
            {
                "logits": inputs.logits.detach().float().cpu().clone(),
                "targets": inputs.targets.detach().cpu().clone(),
                "loc_errors": inputs.loc_errors.detach().float().cpu().clone(),
            }
        )
        if len(batches) >= count:
            write()

    return record, write
