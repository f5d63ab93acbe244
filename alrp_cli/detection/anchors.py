"""Anchors exactly as the official aLRP code (mmdetection 2.x ``AnchorGenerator``) makes them.

torchvision's :class:`~torchvision.models.detection.anchor_utils.AnchorGenerator` rounds the
base anchors to whole pixels (a 45.25 px anchor becomes 46 px); mmdetection's does not. The
only difference is that rounding, so :class:`ExactAnchorGenerator` overrides the one method.
Both centre a level's anchors on ``(x · stride, y · stride)`` and order them ratio-major,
scale-minor at each location, locations row-major.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator

STRIDES = (8, 16, 32, 64, 128)  # P3–P7
OCTAVE_BASE_SCALE = 4  # official configs, e.g. configs/_base_/models/retinanet_r50_fpn.py:32


def anchor_sizes(
    scales_per_octave: int, *, strides: tuple[int, ...] = STRIDES
) -> tuple[tuple[float, ...], ...]:
    """Anchor sizes (square side, px) per level: ``4 · stride · 2^(k / scales_per_octave)``.

    As mmdetection's ``octave_base_scale=4`` with ``scales_per_octave`` scales per level.
    """
    if scales_per_octave < 1:
        raise ValueError(f"scales_per_octave must be >= 1, got {scales_per_octave}")
    return tuple(
        tuple(
            OCTAVE_BASE_SCALE * s * 2 ** (k / scales_per_octave) for k in range(scales_per_octave)
        )
        for s in strides
    )


class ExactAnchorGenerator(AnchorGenerator):
    """torchvision's ``AnchorGenerator`` without the rounding of the base anchors."""

    def generate_anchors(
        self,
        scales: list[int] | list[float],
        aspect_ratios: list[float],
        dtype: torch.dtype = torch.float32,
        device: torch.device = torch.device("cpu"),
    ) -> Tensor:
        """Base anchors Tensor[len(ratios) · len(scales), 4] XYXY centred on 0, unrounded.

        Ratio = height / width; width = scale / sqrt(ratio), height = scale · sqrt(ratio).
        """
        scales_t = torch.as_tensor(scales, dtype=torch.float64, device=device)
        ratios_t = torch.as_tensor(aspect_ratios, dtype=torch.float64, device=device)
        h_ratios = torch.sqrt(ratios_t)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales_t[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales_t[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).to(dtype)
