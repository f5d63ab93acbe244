"""A small detector batch for Rank & Sort Loss's detector loss (the RS-ATSS head), shared by
the one-process, threaded and gloo tests: head outputs over a grid of anchors, boxes near
anchors, and the flattening ``alrp train`` uses."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torchvision.models.detection import _utils as det_utils

from alrp_cli.detection.head_losses import build_loss_inputs
from alrp_cli.detection.model import BOX_CODER_WEIGHTS, HeadOutput
from alrp_cli.loss_inputs import LossInputs


def rich_case(images: int = 4, seed: int = 0) -> tuple[HeadOutput, list[dict[str, torch.Tensor]]]:
    """A 6 x 6 grid of 12-px anchors per image, 2 to 3 boxes near anchors, random outputs
    (``cls`` Tensor[images, 36, 3] and ``reg`` Tensor[images, 36, 4], leaves)."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.stack(torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij"), -1)
    corner = xy.reshape(-1, 2) * 8
    anchors = torch.cat([corner, corner + 12], dim=1)
    targets = []
    for _ in range(images):
        k = int(torch.randint(2, 4, (), generator=gen))
        base = anchors[torch.randperm(36, generator=gen)[:k]]
        boxes = base + torch.randn(k, 4, generator=gen) * 1.5
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 4)
        targets.append({"boxes": boxes, "labels": torch.randint(0, 3, (k,), generator=gen)})
    out = HeadOutput(
        cls=torch.randn(images, 36, 3, generator=gen).requires_grad_(),
        reg=(torch.randn(images, 36, 4, generator=gen) * 0.2).requires_grad_(),
        anchors=anchors,
        level_counts=[36],
    )
    return out, targets


def part_of(out: HeadOutput, part: slice) -> HeadOutput:
    """The images ``part`` of a batch, with fresh leaf outputs (a process's share)."""
    return HeadOutput(
        cls=out.cls.detach()[part].clone().requires_grad_(),
        reg=out.reg.detach()[part].clone().requires_grad_(),
        anchors=out.anchors,
        level_counts=out.level_counts,
    )


def rs_inputs(out: HeadOutput, targets: list[dict[str, torch.Tensor]]) -> LossInputs:
    """Max-IoU assignment and the flattening of ``alrp train``, with IoUs: the detector's
    box coder without building a detector."""
    coder = det_utils.BoxCoder(BOX_CODER_WEIGHTS)

    def decode(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        return coder.decode_single(deltas.reshape(-1, 4), anchors.reshape(-1, 4)).reshape(
            deltas.shape
        )

    model = SimpleNamespace(decode=decode, box_coder=coder)
    return build_loss_inputs(model, out, targets, assigner="maxiou", ious=True)  # type: ignore[arg-type]
