"""Recorded loss inputs (``alrp train --record-loss-inputs``) as balance-check problems.

The file format, its one writer and its reader live in :mod:`alrp_cli.loss_inputs_file`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from alrp_cli.balance.problems import Problem
from alrp_cli.loss_inputs_file import RecordedInputs


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
                ious=None if batch.ious is None else batch.ious.to(device=device, dtype=dtype),
            )
            trial += 1
