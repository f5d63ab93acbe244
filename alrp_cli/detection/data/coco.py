"""COCO-format detection data as a torch Dataset: torchvision ``CocoDetection`` + transforms v2.

Images come from ``CocoDetection`` (PIL), targets are converted to ``tv_tensors`` by
``torchvision.datasets.wrap_dataset_for_transforms_v2`` and then pass through
:func:`~alrp_cli.detection.data.transforms.build_transforms`. Crowd annotations
(``iscrowd = 1``) are left out of the training targets, as in torchvision's references;
evaluation uses the annotation file itself (:attr:`CocoDataset.coco`).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from pycocotools.coco import COCO
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.transforms.v2 import functional as F

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


class _CocoDetection(CocoDetection):
    """CocoDetection over an already loaded COCO; crowd boxes dropped; clear missing-file errors."""

    def __init__(self, images_dir: Path, coco: COCO) -> None:
        # Deliberately not calling CocoDetection.__init__: it would parse the JSON again.
        super(CocoDetection, self).__init__(str(images_dir))
        self.coco = coco
        self.ids = sorted(coco.imgs.keys())

    def _load_image(self, id: int) -> Any:
        path = Path(self.root) / self.coco.loadImgs(id)[0]["file_name"]
        if not path.is_file():
            raise UserError(f"{path}: image file listed in the annotations is missing")
        try:
            return super()._load_image(id)
        except (UnidentifiedImageError, OSError) as err:
            raise UserError(f"{path}: not a readable image ({err})") from None

    def _load_target(self, id: int) -> list[Any]:
        return [ann for ann in super()._load_target(id) if not ann.get("iscrowd", 0)]


class CocoDataset(Dataset):
    """A COCO-format detection dataset yielding fixed-size training/eval samples.

    Each item is ``(image, target)``:

    - ``image``: Tensor[3, S, S] float32 in [0, 1], S = ``image_size``, a plain resize
      (aspect ratio not kept, no letterbox);
    - ``target["boxes"]``: Tensor[K, 4] float32, XYXY in resized pixel coordinates;
    - ``target["labels"]``: Tensor[K] int64, contiguous 0..C-1 (see :attr:`category_ids`);
    - ``target["image_id"]``: int, the COCO image id;
    - ``target["orig_size"]``: Tensor[2] int64, (h, w) of the original image;
    - ``target["scale"]``: Tensor[2] float32, (sx, sy) = (S / w, S / h): original to resized.
      With ``train=False`` a box maps back by ``x / sx, y / sy``; with ``train=True`` the
      random zoom/crop make the mapping random, and ``scale`` is still (S / w, S / h).

    With ``train=True`` the augmentation of :func:`build_transforms` applies and boxes
    made invalid by it are dropped. Crowd annotations never appear in ``boxes``.
    """

    def __init__(
        self,
        images_dir: PathLike,
        ann_file: PathLike,
        *,
        train: bool,
        image_size: int,
    ) -> None:
        images_dir = Path(images_dir)
        if not images_dir.is_dir():
            raise UserError(f"{images_dir}: no such image directory")
        self.coco = load_coco(ann_file)
        self.ann_file = Path(ann_file)
        self.images_dir = images_dir
        self.train = train
        self.image_size = image_size
        cats = sorted(self.coco.cats.values(), key=lambda c: c["id"])
        self.category_ids: list[int] = [c["id"] for c in cats]
        self.category_names: list[str] = [str(c.get("name", c["id"])) for c in cats]
        self._label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        base = _CocoDetection(images_dir, self.coco)
        self._base = base
        if base.ids:  # fail early when --*-images points at the wrong folder
            first = images_dir / self.coco.imgs[base.ids[0]]["file_name"]
            if not first.is_file():
                raise UserError(f"{first}: image file listed in the annotations is missing")
        self._ds = wrap_dataset_for_transforms_v2(base, target_keys={"image_id", "boxes", "labels"})
        self._transforms = build_transforms(train=train, image_size=image_size)

    def image_paths(self) -> dict[int, Path]:
        """Image id -> image file, for every image of the dataset."""
        return {i: self.images_dir / self.coco.imgs[i]["file_name"] for i in self._base.ids}

    def exclude(self, image_ids: Iterable[int]) -> None:
        """Leave these images out of the dataset (e.g. unreadable ones)."""
        dropped = set(image_ids)
        self._base.ids = [i for i in self._base.ids if i not in dropped]

    @property
    def num_classes(self) -> int:
        """Number of categories C."""
        return len(self.category_ids)

    def __len__(self) -> int:
        return len(self._ds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image, target = self._ds[index]
        h, w = F.get_size(image)
        image_id = int(target["image_id"])
        if "boxes" not in target:  # the wrapper returns only the id for an image without boxes
            target["boxes"] = tv_tensors.BoundingBoxes(
                torch.zeros(0, 4), format="XYXY", canvas_size=(h, w)
            )
            target["labels"] = torch.zeros(0, dtype=torch.int64)
        # integer bboxes in the JSON give an int64 tensor, which resizing would truncate
        target["boxes"] = tv_tensors.wrap(target["boxes"].to(torch.float32), like=target["boxes"])
        target["labels"] = torch.as_tensor(
            [self._label_of[int(c)] for c in target["labels"]], dtype=torch.int64
        )
        with _one_thread():
            image, target = self._transforms(image, target)
        s = self.image_size
        return image.as_subclass(torch.Tensor), {
            "boxes": target["boxes"].as_subclass(torch.Tensor).to(torch.float32),
            "labels": target["labels"],
            "image_id": image_id,
            "orig_size": torch.tensor([h, w], dtype=torch.int64),
            "scale": torch.tensor([s / w, s / h], dtype=torch.float32),
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


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack images to Tensor[B, 3, S, S]; keep targets as a list of B dicts."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


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
