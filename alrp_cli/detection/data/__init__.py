"""Detection data: COCO-format datasets, transforms, and the built-in synthetic shapes set.

- :mod:`.layout`: where the files are (``--data DIR`` or explicit paths) -> :class:`DataPaths`.
- :mod:`.synthetic`: the synthetic shapes dataset, written to disk in the COCO layout and cached;
  :mod:`.shapes` draws its images.
- :mod:`.coco`: :class:`CocoDataset` (images via :mod:`.decode`, boxes by the official
  loader's rules in :mod:`.annotations`, transforms v2).
- :mod:`.transforms`: :func:`build_transforms`, the train and eval pipelines ("official" and
  "mild"), and :func:`collate`; :mod:`.official`: the official transforms torchvision lacks.
- :mod:`.preview`: a contact sheet of a dataset's images with their boxes.
"""

from alrp_cli.detection.data.coco import CocoDataset, coco_summary, load_coco
from alrp_cli.detection.data.layout import DataPaths, coco_layout, resolve_data
from alrp_cli.detection.data.synthetic import (
    HARD_CLASSES,
    SYNTH_CLASSES,
    make_synthetic_coco,
    synthetic_dataset_dir,
)
from alrp_cli.detection.data.transforms import AUGMENTATIONS, MEAN, build_transforms, collate

__all__ = [
    "AUGMENTATIONS",
    "HARD_CLASSES",
    "MEAN",
    "SYNTH_CLASSES",
    "CocoDataset",
    "DataPaths",
    "build_transforms",
    "coco_layout",
    "coco_summary",
    "collate",
    "load_coco",
    "make_synthetic_coco",
    "resolve_data",
    "synthetic_dataset_dir",
]
