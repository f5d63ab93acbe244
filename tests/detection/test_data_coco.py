"""CocoDataset, transforms, collate, load_coco and resolve_data on hand-made and synthetic sets."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alrp_cli.detection.data import (
    MEAN,
    CocoDataset,
    DataPaths,
    build_transforms,
    coco_layout,
    coco_summary,
    collate,
    load_coco,
    make_synthetic_coco,
    resolve_data,
)
from alrp_cli.errors import UserError


@pytest.fixture(scope="module")
def hand_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 images of different sizes; category ids 3 and 7 (not contiguous); a crowd box;
    image 30 has no annotations at all."""
    root = tmp_path_factory.mktemp("hand")
    (root / "img").mkdir()
    sizes = {10: (80, 60), 20: (40, 100), 30: (50, 50)}  # id -> (w, h)
    rng = np.random.default_rng(0)
    for image_id, (w, h) in sizes.items():
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{image_id}.png")
    data = {
        "images": [
            {"id": i, "file_name": f"{i}.png", "width": w, "height": h}
            for i, (w, h) in sizes.items()
        ],
        "categories": [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [8, 6, 40, 30], "area": 1200,
             "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [50.5, 10, 20, 25.5], "area": 510,
             "iscrowd": 0},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 30, 30], "area": 900,
             "iscrowd": 1},
            {"id": 4, "image_id": 20, "category_id": 3, "bbox": [4, 20, 30, 60], "area": 1800,
             "iscrowd": 0},
        ],
    }  # fmt: skip
    (root / "ann.json").write_text(json.dumps(data))
    return root


# The official test resize keeps the ratio (coco500:33-36): at test scale (96, 96) the three
# images (w, h) = (80, 60), (40, 100), (50, 50) become, by mmcv's rescale_size (factor
# min(96 / long, 96 / short), sides rounded to nearest), 96 x 72, 38 x 96 and 96 x 96.
EVAL_SIZES = {10: (96, 72), 20: (38, 96), 30: (96, 96)}  # id -> (w', h')


def test_eval_items_have_the_documented_shapes_and_exact_scaled_boxes(hand_coco: Path) -> None:
    ds = CocoDataset(hand_coco / "img", hand_coco / "ann.json", train=False, image_size=96)
    assert len(ds) == 3 and ds.num_classes == 2
    assert ds.category_ids == [3, 7] and ds.category_names == ["three", "seven"]
    assert ds.coco.getImgIds() == [10, 20, 30]
    raw = json.loads((hand_coco / "ann.json").read_text())
    for index, image_id in enumerate([10, 20, 30]):
        image, target = ds[index]
        out_w, out_h = EVAL_SIZES[image_id]
        assert image.dtype == torch.float32 and image.shape == (3, out_h, out_w)
        assert type(image) is torch.Tensor and image.min() >= 0 and image.max() <= 1
        info = next(i for i in raw["images"] if i["id"] == image_id)
        w, h = info["width"], info["height"]
        assert target["image_id"] == image_id
        assert target["orig_size"].tolist() == [h, w] and target["orig_size"].dtype == torch.int64
        assert target["size"].tolist() == [out_h, out_w]
        assert target["scale"].dtype == torch.float32
        sx, sy = out_w / w, out_h / h  # the actual per-axis factors, not the rescale factor
        assert target["scale"].tolist() == pytest.approx([sx, sy])
        anns = [a for a in raw["annotations"] if a["image_id"] == image_id and not a["iscrowd"]]
        expected = [
            [x * sx, y * sy, (x + bw) * sx, (y + bh) * sy]
            for x, y, bw, bh in (a["bbox"] for a in anns)
        ]
        boxes, labels = target["boxes"], target["labels"]
        assert type(boxes) is torch.Tensor and boxes.dtype == torch.float32
        assert boxes.shape == (len(anns), 4) and labels.dtype == torch.int64
        torch.testing.assert_close(
            boxes, torch.tensor(expected, dtype=torch.float32).reshape(-1, 4), atol=1e-4, rtol=0
        )
        assert labels.tolist() == [{3: 0, 7: 1}[a["category_id"]] for a in anns]
        # predictions map back to the original image by dividing by scale
        back = boxes / target["scale"].repeat(2)
        original = [[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)]
        torch.testing.assert_close(
            back, torch.tensor(original, dtype=torch.float32).reshape(-1, 4), atol=1e-4, rtol=0
        )


def test_eval_image_is_a_plain_resize(hand_coco: Path) -> None:
    ds = CocoDataset(hand_coco / "img", hand_coco / "ann.json", train=False, image_size=50)
    image, _ = ds[2]  # image 30 is 50 x 50: resizing to 50 is the identity
    original = np.array(Image.open(hand_coco / "img" / "30.png"))
    expected = torch.from_numpy(original).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(image, expected, atol=1e-6, rtol=0)


def test_train_augmentation_keeps_boxes_valid(tmp_path: Path) -> None:
    root = make_synthetic_coco(tmp_path / "s", seed=5, num_train=12, num_val=1, image_size=64)
    paths = coco_layout(root)
    ds = CocoDataset(paths.train_images, paths.train_ann, train=True, image_size=80)
    torch.manual_seed(0)
    changed = 0
    for _ in range(3):
        for index in range(len(ds)):
            image, target = ds[index]
            assert image.shape == (3, 80, 80) and image.dtype == torch.float32
            assert image.min() >= 0 and image.max() <= 1
            boxes, labels = target["boxes"], target["labels"]
            assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
            assert boxes.shape == (len(labels), 4)
            assert bool((boxes[:, 2:] - boxes[:, :2] >= 1).all())
            assert bool((boxes >= 0).all() and (boxes <= 80).all())
            assert set(labels.tolist()) <= set(range(5))
            n_ann = len(ds.coco.getAnnIds(imgIds=target["image_id"]))
            assert len(labels) <= n_ann
            eval_boxes = ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=target["image_id"]))
            scaled = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in
                                   (a["bbox"] for a in eval_boxes)]) * 80 / 64  # fmt: skip
            changed += boxes.shape != scaled.shape or not torch.allclose(boxes, scaled)
    assert changed > 0  # the augmentation does something


def test_images_without_boxes_and_collate(hand_coco: Path) -> None:
    for train in (False, True):
        ds = CocoDataset(
            hand_coco / "img", hand_coco / "ann.json", train=train, image_size=32,
            keep_empty_images=True,
        )  # fmt: skip
        _, target = ds[2]  # no annotations
        assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
        assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
        items = [ds[0], ds[1], ds[2]]
        images, targets = collate(items)
        assert images.shape == (3, 3, 32, 32) and [t["image_id"] for t in targets] == [10, 20, 30]
        for (image, _), padded in zip(items, images, strict=True):
            h, w = image.shape[-2:]  # each image at the top left, the rest the official mean
            assert torch.equal(padded[:, :h, :w], image)
            mean = torch.tensor(MEAN).view(3, 1, 1)
            assert torch.equal(padded[:, h:, :], mean.expand(3, 32 - h, 32))
            assert torch.equal(padded[:, :, w:], mean.expand(3, 32, 32 - w))


def test_training_leaves_out_images_without_annotations_unless_asked(hand_coco: Path) -> None:
    # image 30 has no annotation at all: the official loader's filter_empty_gt drops it
    ds = CocoDataset(hand_coco / "img", hand_coco / "ann.json", train=True, image_size=32)
    assert [ds[i][1]["image_id"] for i in range(len(ds))] == [10, 20]
    assert ds.dropped_images == {"without annotations": 1}
    kept = CocoDataset(
        hand_coco / "img", hand_coco / "ann.json", train=True, image_size=32,
        keep_empty_images=True,
    )  # fmt: skip
    assert len(kept) == 3 and not kept.dropped_images
    evaluation = CocoDataset(hand_coco / "img", hand_coco / "ann.json", train=False, image_size=32)
    assert len(evaluation) == 3  # evaluation keeps every image


def test_build_transforms_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="image_size"):
        build_transforms(train=False, image_size=0)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


_IMG = '"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1}]'


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level is not an object"),
        ('{"images": [], "categories": [{"id": 1}]}', "no 'annotations' key"),
        ('{"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]}', "file_name"),
        (
            "{" + _IMG + ', "annotations": [{"id": 1, "image_id": 1, "category_id": 1, '
            '"bbox": [1, 2, 3]}]}',
            r"annotations\[0\]: 'bbox' must be a list of 4 numbers",
        ),
        (
            "{" + _IMG + ', "annotations": [{"id": 1, "image_id": 1, "category_id": 2, '
            '"bbox": [1, 2, 3, 4]}]}',
            "category_id 2 is not in 'categories'",
        ),
        (
            "{" + _IMG + ', "annotations": [{"id": 1, "image_id": 5, "category_id": 1, '
            '"bbox": [1, 2, 3, 4]}]}',
            "image_id 5 is not in 'images'",
        ),
    ],
)
def test_load_coco_names_the_file_and_the_problem(tmp_path: Path, text: str, match: str) -> None:
    ann = _write(tmp_path / "bad.json", text)
    with pytest.raises(UserError, match=match) as err:
        load_coco(ann)
    assert str(err.value).startswith(f"{ann}: ") and "\n" not in str(err.value)


def test_missing_files_are_user_errors(hand_coco: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"{tmp_path / 'nope.json'}: no such annotation file"):
        load_coco(tmp_path / "nope.json")
    with pytest.raises(UserError, match=f"{tmp_path / 'imgs'}: no such image directory"):
        CocoDataset(tmp_path / "imgs", hand_coco / "ann.json", train=False, image_size=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        UserError, match=r"10\.png: image file listed in the annotations is missing"
    ):
        CocoDataset(tmp_path / "empty", hand_coco / "ann.json", train=False, image_size=32)


def test_summary_counts(hand_coco: Path) -> None:
    s = coco_summary(load_coco(hand_coco / "ann.json"))
    assert s == {
        "images": 3,
        "boxes": 3,
        "crowd_boxes": 1,
        "boxes_per_category": {"three": 2, "seven": 1},
        "boxes_by_size": {"small": 1, "medium": 2, "large": 0},  # areas 510; 1200, 1800
    }


def test_real_coco_annotations_load(shared_coco: Path) -> None:
    coco = load_coco(shared_coco / "instances_val2014_100.json")
    s = coco_summary(coco)
    assert s["images"] == len(coco.dataset["images"]) == 100
    assert s["boxes"] + s["crowd_boxes"] == len(coco.dataset["annotations"])
    assert sum(s["boxes_per_category"].values()) == s["boxes"]


def _layout(root: Path) -> DataPaths:
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}2017.json").write_text("{}")
        (root / f"{split}2017").mkdir()
    return coco_layout(root)


def test_resolve_data(tmp_path: Path) -> None:
    assert resolve_data() is None  # -> the caller uses the synthetic dataset
    paths = _layout(tmp_path / "coco")
    assert resolve_data(tmp_path / "coco") == paths
    assert resolve_data(str(tmp_path / "coco")) == paths
    other = _write(tmp_path / "other.json", "{}")
    assert resolve_data(tmp_path / "coco", val_ann=other) == DataPaths(
        paths.train_ann, paths.train_images, other, paths.val_images
    )
    explicit = resolve_data(
        train_ann=paths.train_ann, train_images=paths.train_images,
        val_ann=paths.val_ann, val_images=paths.val_images,
    )  # fmt: skip
    assert explicit == paths
    only_val = resolve_data(val_ann=paths.val_ann, val_images=paths.val_images, splits=("val",))
    assert only_val == DataPaths(None, None, paths.val_ann, paths.val_images)


@pytest.mark.parametrize(
    "make_args, match",
    [
        (lambda r: {"data_dir": r / "missing"}, "missing: no such directory"),
        (lambda r: {"data_dir": r / "half"}, "instances_val2017.json: no such annotation file"),
        (lambda r: {"data_dir": r / "coco", "train_images": r / "nowhere"}, "nowhere: no such"),
        (lambda r: {"train_ann": r / "coco/annotations/instances_train2017.json"}, "both needed"),
        (
            lambda r: {"train_ann": r / "coco/annotations/instances_train2017.json",
                       "train_images": r / "coco/train2017"},
            "no val data",
        ),
    ],
)  # fmt: skip
def test_resolve_data_errors(tmp_path: Path, make_args, match: str) -> None:
    _layout(tmp_path / "coco")
    half = _layout(tmp_path / "half")
    half.val_ann.unlink()
    with pytest.raises(UserError, match=match):
        resolve_data(**make_args(tmp_path))


def test_dataset_pickles_for_spawned_dataloader_workers(hand_coco: Path) -> None:
    ds = CocoDataset(hand_coco / "img", hand_coco / "ann.json", train=False, image_size=32)
    copy = pickle.loads(pickle.dumps(ds))
    image, target = copy[0]
    expected_image, expected = ds[0]
    assert torch.equal(image, expected_image) and torch.equal(target["boxes"], expected["boxes"])
    assert copy.category_ids == ds.category_ids
