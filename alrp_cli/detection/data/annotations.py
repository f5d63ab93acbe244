"""Which images and boxes train: the official loader's rules, and what they leave out.

The official loader (github.com/kemaloksuz/aLRPLoss at 2cfaa8e, mmdet/datasets/coco.py):

- a box is left out when its annotation has ``ignore`` set, when it does not overlap the
  image at all, or when ``area <= 0``, ``w < 1`` or ``h < 1`` (``_parse_ann_info``,
  coco.py:139-149); a crowd box (``iscrowd``) is not a training target but an "ignore" box
  (coco.py:152-153), which the min-IoU crop still takes into account (transforms.py:832);
- a training image is left out when no annotation at all refers to it (``filter_empty_gt``,
  coco.py:92-93: an image whose only annotations are crowd or unusable boxes stays, and
  trains as an image without objects), and when ``min(width, height) < 32`` (coco.py:87, 94;
  sizes from the JSON).

The validation images are all kept (mmdet's ``test_mode``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pycocotools.coco import COCO

MIN_IMAGE_SIZE = 32  # coco.py:87
# Why a box is not a training target, in the order the official loader checks.
IGNORED = "ignore flag"
OUTSIDE = "outside the image"
DEGENERATE = "zero area or under 1 px"
CROWD = "crowd"
REASONS = (IGNORED, OUTSIDE, DEGENERATE, CROWD)


def box_reason(ann: dict[str, Any], width: float | None, height: float | None) -> str | None:
    """Why the official loader does not train on ``ann``'s box (one of :data:`REASONS`), or
    None when it does. ``width``/``height``: the image's (None: unknown, not checked)."""
    if ann.get("ignore", False):
        return IGNORED
    x, y, w, h = ann["bbox"]
    if width is not None and height is not None:
        inter_w = max(0, min(x + w, width) - max(x, 0))
        inter_h = max(0, min(y + h, height) - max(y, 0))
        if inter_w * inter_h == 0:
            return OUTSIDE
    if ann.get("area", w * h) <= 0 or w < 1 or h < 1:
        return DEGENERATE
    if ann.get("iscrowd", 0):
        return CROWD
    return None


def _image_size(info: dict[str, Any]) -> tuple[float | None, float | None]:
    w, h = info.get("width"), info.get("height")
    ok = all(isinstance(v, (int, float)) and v > 0 for v in (w, h))
    return (w, h) if ok else (None, None)


def training_image_ids(coco: COCO, *, keep_empty: bool) -> tuple[list[int], Counter[str]]:
    """The training images the official loader keeps, in id order, and the count of the
    others by reason ("without annotations", "smaller than 32 px"). ``keep_empty`` keeps
    images that no annotation refers to."""
    with_ann = {a["image_id"] for a in coco.anns.values()}
    kept: list[int] = []
    dropped: Counter[str] = Counter()
    for image_id in sorted(coco.imgs):
        if not keep_empty and image_id not in with_ann:
            dropped["without annotations"] += 1
            continue
        w, h = _image_size(coco.imgs[image_id])
        if w is not None and h is not None and min(w, h) < MIN_IMAGE_SIZE:
            dropped[f"smaller than {MIN_IMAGE_SIZE} px"] += 1
            continue
        kept.append(image_id)
    return kept, dropped


def box_counts(coco: COCO, image_ids: Iterable[int]) -> Counter[str]:
    """The boxes of these images by :func:`box_reason` ("usable" for training targets)."""
    counts: Counter[str] = Counter()
    for image_id in image_ids:
        w, h = _image_size(coco.imgs[image_id])
        for ann in coco.imgToAnns.get(image_id, []):
            counts[box_reason(ann, w, h) or "usable"] += 1
    return counts


def describe(counts: Counter[str]) -> str:
    """ "3 crowd, 2 outside the image" (reasons in :data:`REASONS` order, zero counts left out)."""
    return ", ".join(f"{counts[r]} {r}" for r in REASONS if counts[r]) or "none"
