"""Turn the detector's head outputs and assignments into the inputs of its loss.

Every loss sees the same assignment and the same flattened (anchor, class) logits
(:func:`alrp_cli.loss_inputs.flatten_head_outputs`), so comparisons between them are fair:
only the loss differs. What each loss computes from them, and the state it keeps, is its
registry entry's :class:`~alrp_cli.registry.TrainForm` (:mod:`alrp_cli.registry`): aLRP
Loss with self-balance, AP Loss + smooth L1 as the official AP-Loss configuration, focal
loss + GIoU loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from alrp_cli import registry
from alrp_cli.detection.assigners import IGNORED, assign
from alrp_cli.detection.model import Detector, HeadOutput
from alrp_cli.loss_inputs import LossInputs, flatten_head_outputs
from alrp_cli.registry import LossParts


def build_loss_inputs(
    model: Detector,
    out: HeadOutput,
    targets: list[dict[str, Tensor]],
    *,
    assigner: str,
    ious: bool = False,
) -> LossInputs:
    """Assign anchors of every image and flatten the batch into float32 loss inputs.

    ``out`` holds cls Tensor[B, A, C] and reg Tensor[B, A, 4]; ``targets[i]`` has "boxes"
    Tensor[K, 4] XYXY (input-image coordinates) and "labels" Tensor[K] int64 in 0..C-1.
    The inputs carry e = 1 − GIoU and the encoded box targets of every positive, and with
    ``ious`` (a loss with continuous targets) their IoUs.
    """
    anchors = out.anchors
    with torch.no_grad():
        assigned = torch.stack(
            [assign(assigner, anchors, out.level_counts, t["boxes"].to(anchors)) for t in targets]
        )  # [B, A]
    return flatten_head_outputs(
        out.cls.float(),
        out.reg.float(),
        anchors,
        assigned,
        targets,
        decode=model.decode,
        encode=model.box_coder.encode_single,
        ignore_value=IGNORED,
        ious=ious,
    )


def count_non_finite(inputs: LossInputs) -> Tensor:
    """Tensor[2] float32: the numbers of non-finite logits and localisation errors (and box
    deltas), on the inputs' device, so that processes can sum them before any loss runs."""
    assert inputs.loc_errors is not None
    return torch.stack(
        [
            (~torch.isfinite(inputs.logits)).sum(),
            (~torch.isfinite(inputs.loc_errors)).sum() + (~torch.isfinite(inputs.deltas)).sum(),
        ]
    ).float()


def make_loss_module(
    kind: str,
    *,
    period: int,
    init_weight: float = 50.0,
    fixed: bool = False,
    collective: Any = None,
) -> nn.Module | None:
    """The state of loss ``kind`` (a registry name) that lasts from step to step: for aLRP
    its self-balance (with ``period`` steps per update — the training loop passes
    iterations per epoch × ``sb_period_epochs``; ``fixed=True`` holds the weight at
    ``init_weight``), ``None`` for a stateless loss. ``collective`` makes it rank the
    global batch."""
    form = registry.get(kind, "train").train
    assert form is not None
    if form.make_state is None:
        return None
    return form.make_state(
        period=period, init_weight=init_weight, fixed=fixed, collective=collective
    )


def compute_loss(
    kind: str, inputs: LossInputs, module: nn.Module | None, *, collective: Any = None
) -> LossParts:
    """The loss of ``kind`` (a registry name) on one batch's inputs, in float32.

    ``collective`` (see ``alrp_cli.losses.collective``): the loss of the global batch of all
    processes: ranking losses rank the global batch, and sums divided by the number of
    positives divide by the global number (see :class:`LossParts` for what is returned).
    """
    form = registry.get(kind, "train").train
    assert form is not None
    return form.compute(inputs, module, collective)
