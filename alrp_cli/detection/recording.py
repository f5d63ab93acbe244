"""Recording the loss inputs of the first batches of a run (``loss_inputs.pt``).

The file is what ``alrp check-balance --from`` reads; its format, writer and reader are
:mod:`alrp_cli.loss_inputs_file`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alrp_cli import registry
from alrp_cli.loss_inputs import LossInputs
from alrp_cli.loss_inputs_file import Recorder


def loss_inputs_meta(meta: dict[str, Any], loss: str, assigner: str | None) -> dict[str, Any]:
    """The ``meta`` of a run's ``loss_inputs.pt``: the dataset's ``meta``, the loss, the
    assigner and the δ the loss trains with (none for a loss without a ranking)."""
    delta = registry.get(loss, "train").delta
    extra = {} if delta is None else {"delta": delta}
    return {**meta, "loss": loss, "assigner": assigner, **extra}


def loss_inputs_recorder(
    path: Path, count: int, meta: dict[str, Any], start: int
) -> tuple[Callable[[LossInputs], None], Callable[[], None]]:
    """``(record, write)`` for ``train --record-loss-inputs count``.

    ``record(inputs)`` keeps detached CPU copies of a batch's logits (float32), targets
    (int8), loc errors (float32) and, where the loss takes them, IoUs until ``count``
    batches are held, then writes them with ``meta`` atomically to ``path``; ``write()``
    writes what is held (a run shorter than ``count`` batches). Nothing is recorded when
    the run resumes at iteration ``start >= count``.
    """
    recorder = Recorder(count if start < count else 0)
    done = {"written": recorder.full}

    def write() -> None:
        if done["written"] or not recorder.batches:
            return
        done["written"] = True
        recorder.save(path, meta)

    def record(inputs: LossInputs) -> None:
        if done["written"]:
            return
        assert inputs.loc_errors is not None
        recorder.record(inputs.logits, inputs.targets, inputs.loc_errors, inputs.ious)
        if recorder.full:
            write()

    return record, write
