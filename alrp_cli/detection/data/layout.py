"""Where a COCO-format dataset's files are: ``--data DIR`` or explicit paths.

The COCO layout of ``DIR``::

    DIR/annotations/instances_train2017.json   DIR/train2017/   (the training images)
    DIR/annotations/instances_val2017.json     DIR/val2017/     (the validation images)

Explicit ``--train-ann/--train-images/--val-ann/--val-images`` override the parts of the
layout they name (or stand alone without ``--data``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alrp_cli.errors import UserError

PathLike = str | os.PathLike[str]
LAYOUT_HINT = "the COCO layout is annotations/instances_{train,val}2017.json, train2017/, val2017/"


@dataclass(frozen=True)
class DataPaths:
    """The four paths of a detection dataset; a split not asked for may be None."""

    train_ann: Path | None
    train_images: Path | None
    val_ann: Path | None
    val_images: Path | None


def coco_layout(data_dir: PathLike) -> DataPaths:
    """The paths of the COCO layout under ``data_dir`` (not checked; see :func:`resolve_data`)."""
    root = Path(data_dir)
    return DataPaths(
        train_ann=root / "annotations" / "instances_train2017.json",
        train_images=root / "train2017",
        val_ann=root / "annotations" / "instances_val2017.json",
        val_images=root / "val2017",
    )


def resolve_data(
    data_dir: PathLike | None = None,
    train_ann: PathLike | None = None,
    train_images: PathLike | None = None,
    val_ann: PathLike | None = None,
    val_images: PathLike | None = None,
    *,
    splits: tuple[str, ...] = ("train", "val"),
) -> DataPaths | None:
    """Resolve and check the dataset paths; ``None`` when no data option was given.

    ``None`` means "use the synthetic dataset": the caller then takes
    ``coco_layout(synthetic_dataset_dir(...))``. Only the ``splits`` asked for are
    required; their annotation files must exist and their image paths must be folders.
    Raises :class:`~alrp_cli.errors.UserError` naming the missing path otherwise.
    """
    given = {
        "train_ann": train_ann,
        "train_images": train_images,
        "val_ann": val_ann,
        "val_images": val_images,
    }
    if data_dir is None and all(v is None for v in given.values()):
        return None
    unknown = set(splits) - {"train", "val"}
    if unknown:
        raise ValueError(f"splits must be 'train' and/or 'val', got {sorted(unknown)}")
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise UserError(f"{root}: {_not_there(root, folder=True)} (--data)")
        base = coco_layout(root)
        paths = {k: Path(v) if v is not None else getattr(base, k) for k, v in given.items()}
        source = f" ({LAYOUT_HINT})"
    else:
        paths = {k: Path(v) if v is not None else None for k, v in given.items()}
        source = ""
    for split in ("train", "val"):
        ann, images = paths[f"{split}_ann"], paths[f"{split}_images"]
        if split not in splits:
            continue
        if ann is None or images is None:
            raise UserError(
                f"--{split}-ann and --{split}-images are both needed without --data "
                f"(got {'--' + split + '-ann' if ann else '--' + split + '-images'} only)"
                if (ann is None) != (images is None)
                else f"no {split} data: give --data DIR or --{split}-ann and --{split}-images"
            )
        if not ann.is_file():
            raise UserError(
                f"{ann}: {_not_there(ann, folder=False, what='annotation file')}{source}"
            )
        if not images.is_dir():
            raise UserError(
                f"{images}: {_not_there(images, folder=True, what='image directory')}{source}"
            )
    return DataPaths(**paths)


def _not_there(path: Path, *, folder: bool, what: str = "directory") -> str:
    """Why ``path`` is not the folder (or file) expected: the other kind, or nothing."""
    if folder and path.exists():
        return "is a file, expected a folder"
    if not folder and path.is_dir():
        return "is a folder, expected a file"
    return f"no such {what}"
