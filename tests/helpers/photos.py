"""Real photographs from scikit-image's wheel (``skimage.data``, no download) as a small
COCO dataset: JPEGs as COCO has them (one grayscale, one CMYK), boxes labelled by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# file in skimage/data -> [(category, [x, y, w, h])], labelled by hand on a 50 px grid
PHOTOS: dict[str, list[tuple[str, list[float]]]] = {
    "astronaut.png": [("person", [20, 15, 345, 497]), ("rocket", [355, 0, 115, 285])],
    "camera.png": [("person", [0, 65, 330, 447])],  # grayscale
    "chelsea.png": [("cat", [0, 0, 420, 300])],
    "coffee.png": [("cup", [175, 20, 240, 285])],  # written as a CMYK JPEG
    "rocket.jpg": [("rocket", [305, 125, 35, 285])],
    "motorcycle_left.png": [("motorcycle", [90, 95, 595, 355])],
}
CATEGORIES = ["person", "cat", "cup", "rocket", "motorcycle"]


def photo_dir() -> Path:
    """Where scikit-image keeps the photographs of its wheel."""
    import skimage.data

    return Path(skimage.data.__file__).parent


def write_photo_coco(root: Path, *, size: tuple[int, int] | None = None) -> Path:
    """``root`` in the COCO layout: the photographs as JPEGs (quality 90) in train2017/ and
    val2017/ with their boxes. ``size`` (w, h) resizes every photo to it (boxes scaled),
    e.g. COCO's usual 640 x 480; otherwise they keep their own sizes."""
    images, anns = [], []
    for image_id, (name, objects) in enumerate(PHOTOS.items(), start=1):
        photo = Image.open(photo_dir() / name)
        photo.load()
        sx = sy = 1.0
        if size is not None:
            sx, sy = size[0] / photo.width, size[1] / photo.height
            photo = photo.resize(size, Image.Resampling.BILINEAR)
        mode = {"camera.png": "L", "coffee.png": "CMYK"}.get(name, "RGB")
        file_name = f"{image_id:012d}.jpg"
        for split in ("train2017", "val2017"):
            (root / split).mkdir(parents=True, exist_ok=True)
            photo.convert(mode).save(root / split / file_name, quality=90)
        images.append({"id": image_id, "file_name": file_name,
                       "width": photo.width, "height": photo.height})  # fmt: skip
        for cat, (x, y, w, h) in objects:
            box = [x * sx, y * sy, w * sx, h * sy]
            anns.append({"id": len(anns) + 1, "image_id": image_id,
                         "category_id": CATEGORIES.index(cat) + 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
    data = {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CATEGORIES)]}  # fmt: skip
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


def as_array(path: Path) -> np.ndarray:
    """PIL's RGB pixels of an image file (the reference for decoding)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))
