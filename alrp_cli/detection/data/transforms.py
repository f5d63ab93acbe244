"""The train and eval pipelines, built from torchvision transforms v2.

Two training pipelines (``augmentation``):

- ``"official"`` (the COCO preset): the official aLRP training pipeline,
  configs/_base_/datasets/coco500_detection_augm.py:5-28 ("coco500"): photometric distortion
  (coco500:9-13), expand ×1–4 filled with the mean, p = 0.5 (:14-18), min-IoU crop on every
  image (:19-22), resize to ``image_size`` × ``image_size`` without keeping the ratio (:23),
  horizontal flip p = 0.5 (:24). The first three are written by hand
  (:mod:`.official`: no torchvision transform matches them); pixels are float and unclamped
  from the start, as there (coco500:6, ``to_float32=True``); the resize is bilinear
  without antialiasing, as mmcv's (cv2) resize. No box is dropped (the official pipeline
  drops none: every box keeps a positive size).
- ``"mild"`` (the synthetic preset): SSD-style but milder, to learn the synthetic set in
  minutes on a CPU: torchvision's photometric distortion, zoom-out (p = 0.3, up to 1.5×),
  IoU crop (p = 0.3), antialiased resize to ``image_size``, flip, then
  ``SanitizeBoundingBoxes`` drops boxes under 1 px or outside the image, with their labels.

Eval (both): the official test resize (coco500:29-43): keep the aspect ratio, as large as
fits in ``test_scale`` = (long, short) (:func:`~.official.rescale_size`); :func:`collate`
pads a batch to its largest image, rounded up to a multiple of 32 (``Pad(size_divisor=32)``,
coco500:39). A box maps back to the original image by dividing by the actual per-axis
factors ``(w' / w, h' / h)`` (mmdet's ``scale_factor``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import v2

from alrp_cli.detection.data.official import (
    Expand,
    KeepRatioResize,
    MinIoURandomCrop,
    PhotoMetricDistortion,
)

AUGMENTATIONS = ("official", "mild")
# The official mean, coco500:3-4 (123.675, 116.28, 103.53) / 255: what Expand fills with and
# what padding shows (the official pads the normalised image with 0, i.e. with the mean).
MEAN = (0.485, 0.456, 0.406)
SIZE_DIVISOR = 32  # coco500:39


def build_transforms(
    *,
    train: bool,
    image_size: int,
    augmentation: str = "mild",
    test_scale: tuple[int, int] | list[int] | None = None,
) -> v2.Compose:
    """The v2 pipeline for ``(image, {"boxes", "labels", ...})`` samples.

    Input: a uint8 image (``tv_tensors.Image`` or PIL) and a target with ``boxes`` as XYXY
    ``tv_tensors.BoundingBoxes`` and ``labels`` Tensor[K] (and, official, ``iscrowd``
    Tensor[K] bool, filtered with the boxes). Output: image float32 [3, H', W'] (value / 255;
    the official pipeline does not clamp), boxes in the output's pixel coordinates.
    Train: H' = W' = ``image_size``. Eval: (H', W') = :func:`~.official.rescale_size` of
    ``test_scale`` (default ``(image_size, image_size)``).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {augmentation!r}")
    size = (image_size, image_size)
    official = augmentation == "official"
    if not train:
        scale = tuple(test_scale) if test_scale is not None else size
        return v2.Compose(
            [
                v2.ToImage(),
                KeepRatioResize(scale, antialias=not official),  # type: ignore[arg-type]
                v2.ToDtype(torch.float32, scale=True),
            ]
        )
    if official:
        return v2.Compose(
            [
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                PhotoMetricDistortion(32, (0.5, 1.5), (0.5, 1.5), 18),
                Expand(fill=list(MEAN), side_range=(1.0, 4.0), p=0.5),
                MinIoURandomCrop((0.1, 0.3, 0.5, 0.7, 0.9), 0.3),
                v2.Resize(size, antialias=False),
                v2.ClampBoundingBoxes("hard"),  # mmdet's Resize clips the boxes (T:206-213)
                v2.RandomHorizontalFlip(p=0.5),
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


def collate(batch: list[tuple[Tensor, dict[str, Any]]]) -> tuple[Tensor, list[dict]]:
    """Images -> Tensor[B, 3, H, W]; targets stay a list of B dicts.

    Each image sits at the top left of a canvas of the batch's largest height and width,
    rounded up to a multiple of 32, filled with :data:`MEAN` (what the official pads with:
    0 after normalisation); images that already have that size are simply stacked.
    """
    images, targets = zip(*batch, strict=True)
    h = math.ceil(max(im.shape[-2] for im in images) / SIZE_DIVISOR) * SIZE_DIVISOR
    w = math.ceil(max(im.shape[-1] for im in images) / SIZE_DIVISOR) * SIZE_DIVISOR
    if all(im.shape[-2:] == (h, w) for im in images):
        return torch.stack(images), list(targets)
    out = torch.tensor(MEAN, dtype=images[0].dtype).view(1, 3, 1, 1).repeat(len(images), 1, h, w)
    for canvas, im in zip(out, images, strict=True):
        canvas[:, : im.shape[-2], : im.shape[-1]] = im
    return out, list(targets)
