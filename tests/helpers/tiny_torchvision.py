"""Tiny torchvision RetinaNet / FCOS models and synthetic batches for the integration tests.

A two-level conv backbone (strides 8 and 16, 32 channels) on 64-px images keeps a training
step at a few milliseconds on a CPU; the detectors are torchvision's own classes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator

SIZE = 64
NUM_CLASSES = 3
COLOURS = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]])


class TinyBackbone(nn.Module):
    """Two feature maps, strides 8 and 16, ``channels`` channels each."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.out_channels = channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.p3 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.p4 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        p3 = self.p3(self.stem(x))
        return OrderedDict([("p3", p3), ("p4", self.p4(torch.relu(p3)))])


def _tiny(detector: type, anchors: AnchorGenerator, seed: int) -> Any:
    torch.manual_seed(seed)
    return detector(
        TinyBackbone(),
        NUM_CLASSES,
        min_size=SIZE,
        max_size=SIZE,
        anchor_generator=anchors,
        score_thresh=0.01,
    )


def tiny_retinanet(seed: int = 0) -> RetinaNet:
    """torchvision's RetinaNet on :class:`TinyBackbone`, 3 anchors per location."""
    anchors = AnchorGenerator(sizes=((16,), (32,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    return _tiny(RetinaNet, anchors, seed)


def tiny_fcos(seed: int = 0) -> FCOS:
    """torchvision's FCOS on :class:`TinyBackbone` (one anchor per location, size = stride)."""
    anchors = AnchorGenerator(sizes=((8,), (16,)), aspect_ratios=((1.0,),) * 2)
    return _tiny(FCOS, anchors, seed)


def synthetic_batch(
    n: int, seed: int = 0, max_objects: int = 3
) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """``n`` noisy 64-px images with 1..max_objects filled boxes whose colour is the class."""
    gen = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n):
        img = torch.rand(3, SIZE, SIZE, generator=gen) * 0.3
        k = int(torch.randint(1, max_objects + 1, (1,), generator=gen))
        boxes, labels = [], []
        for _ in range(k):
            w, h = (torch.randint(14, 34, (2,), generator=gen)).tolist()
            x0 = int(torch.randint(0, SIZE - w, (1,), generator=gen))
            y0 = int(torch.randint(0, SIZE - h, (1,), generator=gen))
            c = int(torch.randint(0, NUM_CLASSES, (1,), generator=gen))
            img[:, y0 : y0 + h, x0 : x0 + w] = COLOURS[c, :, None, None]
            boxes.append([x0, y0, x0 + w, y0 + h])
            labels.append(c)
        images.append(img)
        targets.append(
            {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}
        )
    return images, targets
