"""The train and eval pipelines, built from torchvision transforms v2.

Train (SSD-style augmentation, mild enough to learn the synthetic set in minutes on a CPU):
photometric distortion, zoom-out (p = 0.3, up to 1.5x), min-IoU crop (p = 0.3), resize to a
square ``image_size``, horizontal flip, then ``SanitizeBoundingBoxes``
drops boxes that became degenerate (under 1 px) or left the image, with their labels.

Eval: a plain resize to ``image_size`` x ``image_size`` (aspect not kept, no letterbox), so
a box maps back to the original image by dividing x by ``sx = S / W`` and y by ``sy = S / H``.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def build_transforms(*, train: bool, image_size: int) -> v2.Compose:
    """The v2 pipeline for ``(image, {"boxes", "labels", ...})`` samples.

    Input: a PIL image (or uint8 tensor image) and a target with ``boxes`` as
    ``tv_tensors.BoundingBoxes`` and ``labels`` Tensor[K]. Output: image float32
    [3, image_size, image_size] in [0, 1], boxes in resized pixel coordinates; with
    ``train=True`` boxes that became invalid are removed together with their labels.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    size = (image_size, image_size)
    if not train:
        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(size, antialias=True),
                v2.SanitizeBoundingBoxes(min_size=1.0),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomZoomOut(fill=114, side_range=(1.0, 1.5), p=0.3),
            v2.RandomApply([v2.RandomIoUCrop()], p=0.3),
            v2.Resize(size, antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
            v2.SanitizeBoundingBoxes(min_size=1.0),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
