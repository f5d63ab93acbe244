"""Inference with a trained checkpoint over a folder of images -> COCO results JSON.

With an annotation file the image ids and categories come from it (so ``alrp analyze`` can
score the results against it); without one every image file of the folder is read and its
id is the number in its file name (COCO's ``000000397133.jpg`` -> 397133), or its 1-based
position in sorted order when a name has no number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as F

from alrp_cli.atomic import write_json
from alrp_cli.detection.build import build_model, stored_config
from alrp_cli.detection.checkpoint import checkpoint_file, load_checkpoint, load_weights
from alrp_cli.detection.data import CocoDataset, build_transforms, collate
from alrp_cli.detection.data.coco import image_problem
from alrp_cli.detection.data.decode import read_rgb
from alrp_cli.detection.engine import predict_loader
from alrp_cli.device import resolve_device
from alrp_cli.errors import UserError
from alrp_cli.limits import check_per_core

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _check_image(path: Path) -> None:
    """A UserError naming ``path`` when it is no usable image (header and end marker only:
    cheap, and a bad file fails before any work starts)."""
    problem = image_problem(path)
    if problem is not None:
        raise UserError(f"{path}: {problem}")


class ImageFolder(Dataset):
    """Every image file of a folder (or one image file), through the evaluation pipeline.

    Items are ``(image Tensor[3, H', W'] float32, {"image_id": int, "scale": Tensor[2]
    (sx, sy), "size": Tensor[2] (H', W')})``, the image resized as
    :func:`~alrp_cli.detection.data.build_transforms` does for evaluation (the aspect ratio
    kept, within ``test_scale``). A file that is not a readable image is a UserError.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        image_size: int,
        test_scale: tuple[int, int] | list[int] | None = None,
        augmentation: str = "mild",
    ) -> None:
        folder = Path(folder)
        if folder.is_file():
            files = [folder]
        elif folder.is_dir():
            files = sorted(
                p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
            )
        else:
            raise UserError(f"{folder}: no such image folder or image file")
        if not files:
            raise UserError(f"{folder}: no image files")
        for p in files:
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise UserError(
                    f"{p}: not an image file (expected one of {sorted(IMAGE_SUFFIXES)})"
                )
            _check_image(p)
        numbers = [re.findall(r"\d+", p.stem) for p in files]
        if all(numbers) and len({int(n[-1]) for n in numbers}) == len(files):
            self.ids = [int(n[-1]) for n in numbers]
        else:
            self.ids = list(range(1, len(files) + 1))
        self.files = files
        self.image_size = image_size
        self.transform = build_transforms(
            train=False, image_size=image_size, augmentation=augmentation, test_scale=test_scale
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        image = read_rgb(self.files[index])
        h, w = F.get_size(image)
        out = self.transform(image)
        out_h, out_w = F.get_size(out)
        return out.as_subclass(torch.Tensor), {
            "image_id": self.ids[index],
            "size": torch.tensor([out_h, out_w], dtype=torch.int64),
            "scale": torch.tensor([out_w / w, out_h / h], dtype=torch.float32),
        }


@dataclass
class PredictResult:
    """What :func:`predict` wrote: the file, image count and detection count."""

    output: Path
    images: int
    detections: int


def predict(
    checkpoint: str | Path,
    images: str | Path,
    output: str | Path,
    *,
    ann: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 8,
    workers: int = 0,
    score_threshold: float | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> PredictResult:
    """Run ``checkpoint`` over ``images`` and write COCO results to ``output``.

    Boxes are in original image coordinates and categories are the training set's COCO
    category ids. The detector is rebuilt from the checkpoint's ``model`` group, images are
    resized as its evaluation did (``eval.test_scale``; antialiased unless
    ``data.augmentation`` is the official pipeline) and the inference settings (top-k,
    threshold, NMS, max detections) are its ``eval`` group's, ``score_threshold``
    overriding its threshold. ``device``: as
    :func:`~alrp_cli.device.resolve_device` reads it (auto, cpu, cuda, cuda:N).
    """
    if batch_size < 1:
        raise UserError(f"--batch-size: must be >= 1, got {batch_size}")
    if workers < 0:
        raise UserError(f"--workers: must be >= 0, got {workers}")
    check_per_core(workers, "--workers", what="worker processes")
    checkpoint = checkpoint_file(checkpoint)
    state = load_checkpoint(checkpoint)
    cfg = stored_config(state, checkpoint)
    ev, meta = cfg.eval, state["meta"]
    assert cfg.data.image_size is not None and cfg.data.augmentation is not None
    resize: dict[str, Any] = {
        "image_size": cfg.data.image_size,
        "test_scale": ev.test_scale,
        "augmentation": cfg.data.augmentation,
    }
    dataset: Dataset
    if ann is not None:
        dataset = CocoDataset(images, ann, train=False, **resize)
        for path in dataset.image_paths().values():
            _check_image(path)
        if dataset.category_ids != list(meta["category_ids"]):
            raise UserError(
                f"{ann}: category ids {dataset.category_ids} differ from the checkpoint's "
                f"{list(meta['category_ids'])}"
            )
    else:
        dataset = ImageFolder(images, **resize)
    dev = resolve_device(device)
    model = build_model(cfg.model, int(meta["num_classes"]))
    load_weights(model, state["model"], checkpoint)
    model.to(dev)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
    )
    if on_start is not None:
        on_start(len(dataset))
    results = predict_loader(
        model,
        loader,
        list(meta["category_ids"]),
        device=dev,
        amp=cfg.runtime.amp and dev.type == "cuda",
        pre_nms_topk=ev.pre_nms_topk,
        score_threshold=ev.score_threshold if score_threshold is None else score_threshold,
        nms_iou=ev.nms_iou,
        max_detections=ev.max_detections,
        on_batch=on_batch,
    )
    write_json(output, results, indent=None)
    return PredictResult(output=Path(output), images=len(dataset), detections=len(results))
