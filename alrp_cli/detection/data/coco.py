"""COCO-format detection data as a torch Dataset: images decoded by ``torchvision.io``,
boxes as ``tv_tensors``, transforms v2.

Images are read by :func:`~.decode.read_rgb`; boxes follow the official loader's rules
(:mod:`.annotations`) and pass, with the image, through
:func:`~alrp_cli.detection.data.transforms.build_transforms`. Evaluation uses the
annotation file itself (:attr:`CocoDataset.coco`).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from pycocotools.coco import COCO
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from alrp_cli.detection.data.annotations import CROWD, box_reason, training_image_ids
from alrp_cli.detection.data.decode import read_rgb
from alrp_cli.detection.data.transforms import build_transforms
from alrp_cli.errors import UserError
from analysis.ground_truth import load_gt
from analysis.jsonio import read_json

PathLike = str | os.PathLike[str]


def load_coco(ann_file: PathLike) -> COCO:
    """Load and check a COCO annotation file; :class:`UserError` naming the file if it is not one.

    The checks are `alrp analyze`'s (:func:`analysis.io.load_gt`: one source of truth for
    what a valid instances file is), plus what reading images needs: every image entry has
    a ``file_name``. pycocotools' "loading annotations" chatter is silenced.
    """
    path = Path(ann_file)
    if not path.is_file() and not path.is_dir():
        raise UserError(f"{path}: no such annotation file")
    data = read_json(path, "COCO instances")
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a COCO instances file: top level is not an object")
    # load_gt names the file it validates from the object's annotation_file
    load_gt(SimpleNamespace(dataset=data, annotation_file=str(path)))
    coco = COCO()
    coco.dataset = data
    for n, img in enumerate(data["images"]):
        if not isinstance(img.get("file_name"), str):
            raise UserError(f"{path}: images[{n}]: missing 'file_name' (the image's file)")
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the transforms on one intra-op thread, then restore the setting.

    The per-image ops are too small to gain from threads: with 2 threads on a busy 2-core
    machine a training sample took about 10x longer (benchmarks/bench_data.py). DataLoader
    workers already run on one thread; this makes ``num_workers=0`` as fast.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class CocoDataset(Dataset):
    """A COCO-format detection dataset yielding training or evaluation samples.

    Each item is ``(image, target)``:

    - ``image``: Tensor[3, H', W'] float32 (value / 255): with ``train=True``
      ``image_size`` × ``image_size``; with ``train=False`` the aspect ratio kept, as large as
      fits in ``test_scale`` (long, short; default ``(image_size, image_size)``), unpadded
      (:func:`collate` pads a batch);
    - ``target["boxes"]``: Tensor[K, 4] float32, XYXY in the item's pixel coordinates;
    - ``target["labels"]``: Tensor[K] int64, contiguous 0..C-1 (see :attr:`category_ids`);
    - ``target["image_id"]``: int, the COCO image id;
    - ``target["orig_size"]``: Tensor[2] int64, (h, w) of the original image;
    - ``target["size"]``: Tensor[2] int64, (H', W') of the image before any padding;
    - ``target["scale"]``: Tensor[2] float32, (sx, sy) = (W' / w, H' / h), the actual
      per-axis factors: with ``train=False`` a box maps back by ``x / sx, y / sy`` (mmdet's
      ``scale_factor``); with ``train=True`` the random expand/crop make the mapping random.

    Boxes the official loader does not train on (:mod:`.annotations`: crowd, ignored,
    outside the image, zero area or under 1 px) never appear in ``boxes``; with
    ``augmentation="official"`` crowd boxes still take part in the crop, as there. With
    ``train=True`` the images that no annotation refers to are left out unless
    ``keep_empty_images``, and images under 32 px always (:attr:`dropped_images` counts them).
    """

    def __init__(
        self,
        images_dir: PathLike,
        ann_file: PathLike,
        *,
        train: bool,
        image_size: int,
        augmentation: str = "mild",
        test_scale: tuple[int, int] | list[int] | None = None,
        keep_empty_images: bool = False,
    ) -> None:
        images_dir = Path(images_dir)
        if not images_dir.is_dir():
            raise UserError(f"{images_dir}: no such image directory")
        self.coco = load_coco(ann_file)
        self.ann_file = Path(ann_file)
        self.images_dir = images_dir
        self.train = train
        self.image_size = image_size
        self.augmentation = augmentation
        self.test_scale = tuple(test_scale) if test_scale is not None else None
        cats = sorted(self.coco.cats.values(), key=lambda c: c["id"])
        self.category_ids: list[int] = [c["id"] for c in cats]
        self.category_names: list[str] = [str(c.get("name", c["id"])) for c in cats]
        self._label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.dropped_images: Counter[str] = Counter()
        if train:
            self.ids, self.dropped_images = training_image_ids(
                self.coco, keep_empty=keep_empty_images
            )
        else:
            self.ids = sorted(self.coco.imgs)
        if self.ids:  # fail early when --*-images points at the wrong folder
            first = images_dir / self.coco.imgs[self.ids[0]]["file_name"]
            if not first.is_file():
                raise UserError(f"{first}: image file listed in the annotations is missing")
        self._transforms = build_transforms(
            train=train, image_size=image_size, augmentation=augmentation, test_scale=test_scale
        )

    def image_paths(self) -> dict[int, Path]:
        """Image id -> image file, for every image of the dataset."""
        return {i: self.images_dir / self.coco.imgs[i]["file_name"] for i in self.ids}

    def exclude(self, image_ids: Iterable[int]) -> None:
        """Leave these images out of the dataset (e.g. unreadable ones)."""
        dropped = set(image_ids)
        self.ids = [i for i in self.ids if i not in dropped]

    @property
    def num_classes(self) -> int:
        """Number of categories C."""
        return len(self.category_ids)

    def __len__(self) -> int:
        return len(self.ids)

    def _target(self, image_id: int, h: int, w: int) -> dict[str, Any]:
        """Boxes (XYXY float32), labels and crowd flags of the boxes that take part."""
        official_train = self.train and self.augmentation == "official"
        rows, labels, crowd = [], [], []
        for ann in self.coco.imgToAnns.get(image_id, []):
            reason = box_reason(ann, w, h)
            if reason is not None and not (reason == CROWD and official_train):
                continue
            x, y, bw, bh = ann["bbox"]
            rows.append([x, y, x + bw, y + bh])
            labels.append(self._label_of[ann["category_id"]])
            crowd.append(reason == CROWD)
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor(rows, dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=(h, w),
            # the official pipeline clips boxes only in its crop and resize (T:206-213)
            clamping_mode=None if official_train else "soft",
        )
        target = {"boxes": boxes, "labels": torch.tensor(labels, dtype=torch.int64)}
        if official_train:
            target["iscrowd"] = torch.tensor(crowd, dtype=torch.bool)
        return target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image_id = self.ids[index]
        image = read_rgb(self.images_dir / self.coco.imgs[image_id]["file_name"])
        h, w = F.get_size(image)
        target = self._target(image_id, h, w)
        with _one_thread():
            image, target = self._transforms(image, target)
        boxes, labels = target["boxes"].as_subclass(torch.Tensor), target["labels"]
        if "iscrowd" in target:  # crowd boxes took part in the crop; they are no targets
            boxes, labels = boxes[~target["iscrowd"]], labels[~target["iscrowd"]]
        out_h, out_w = F.get_size(image)
        return image.as_subclass(torch.Tensor), {
            "boxes": boxes.to(torch.float32),
            "labels": labels,
            "image_id": image_id,
            "orig_size": torch.tensor([h, w], dtype=torch.int64),
            "size": torch.tensor([out_h, out_w], dtype=torch.int64),
            "scale": torch.tensor([out_w / w, out_h / h], dtype=torch.float32),
        }


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable image, or None: missing, not an image, a header that
    declares more pixels than PIL decodes (a decompression bomb), or truncated.

    Cheap: the header is read and, for PNG and JPEG, the file's last bytes are checked for
    the end marker (``IEND`` / ``FFD9``); nothing is decoded.
    """
    if not path.is_file():
        return "image file listed in the annotations is missing"
    try:
        with Image.open(path) as img:
            fmt = img.format
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 64))
            tail = f.read()
    except Image.DecompressionBombError as err:
        return f"refused as a decompression bomb ({err})"
    except (UnidentifiedImageError, OSError) as err:
        return f"not a readable image ({err})"
    if fmt == "PNG" and b"IEND" not in tail[-12:]:
        return "truncated PNG (no IEND chunk at the end)"
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    return None


def coco_summary(coco: COCO) -> dict[str, Any]:
    """Counts of a loaded COCO dataset, as plain numbers (JSON-ready).

    Keys: ``images``; ``boxes`` (non-crowd) and ``crowd_boxes``; ``boxes_per_category``
    (name -> non-crowd boxes, every category listed, in id order); ``boxes_by_size``
    (COCO's ranges by ``area``: small < 32², medium < 96², large).
    """
    anns = list(coco.anns.values())
    plain = [a for a in anns if not a.get("iscrowd", 0)]
    per_cat = {str(c.get("name", cid)): 0 for cid, c in sorted(coco.cats.items())}
    for a in plain:
        per_cat[str(coco.cats[a["category_id"]].get("name", a["category_id"]))] += 1
    areas = [float(a.get("area", a["bbox"][2] * a["bbox"][3])) for a in plain]
    return {
        "images": len(coco.imgs),
        "boxes": len(plain),
        "crowd_boxes": len(anns) - len(plain),
        "boxes_per_category": per_cat,
        "boxes_by_size": {
            "small": sum(a < 32**2 for a in areas),
            "medium": sum(32**2 <= a < 96**2 for a in areas),
            "large": sum(a >= 96**2 for a in areas),
        },
    }
