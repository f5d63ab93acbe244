"""Detection data: COCO-format datasets, transforms, and the built-in synthetic shapes set.

- :mod:`.layout`: where the files are (``--data DIR`` or explicit paths) -> :class:`DataPaths`.
- :mod:`.synthetic`: the synthetic shapes dataset, written to disk in the COCO layout and cached;
  :mod:`.shapes` draws its images.
- :mod:`.coco`: :class:`CocoDataset` (torchvision ``CocoDetection`` + transforms v2) and
  :func:`collate`.
- :mod:`.transforms`: :func:`build_transforms`, the train and eval pipelines.
- :mod:`.preview`: a contact sheet of a dataset's images with their boxes.
"""

from alrp_cli.detection.data.coco import CocoDataset, coco_summary, collate, load_coco
from alrp_cli.detection.data.layout import DataPaths, coco_layout, resolve_data
from alrp_cli.detection.data.synthetic import (
    HARD_CLASSES,
    SYNTH_CLASSES,
    make_synthetic_coco,
    synthetic_dataset_dir,
)
from alrp_cli.detection.data.transforms import build_transforms

__all__ = [
    "HARD_CLASSES",
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
