"""The synthetic shapes dataset: deterministic, valid COCO, boxes on the drawn pixels, cached."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from alrp_cli.detection.data import SYNTH_CLASSES, coco_layout, make_synthetic_coco, shapes
from alrp_cli.detection.data import synthetic as synth
from alrp_cli.errors import UserError


def _coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.fixture(scope="module")
def synth128(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_coco(
        tmp_path_factory.mktemp("synth") / "ds", seed=3, num_train=40, num_val=8, image_size=128
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kw = {"num_train": 5, "num_val": 3, "image_size": 64}
    a = _files(make_synthetic_coco(tmp_path / "a", seed=7, **kw))
    b = _files(make_synthetic_coco(tmp_path / "b", seed=7, **kw))
    c = _files(make_synthetic_coco(tmp_path / "c", seed=8, **kw))
    assert a.keys() == b.keys() == c.keys()
    assert "annotations/instances_train2017.json" in a and "val2017/000003.png" in a
    assert a == b  # annotation JSON and every PNG byte-identical
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0o700
    ann = "annotations/instances_train2017.json"
    assert a[ann] != c[ann]
    for name in a:
        if name.endswith(".png"):  # pixels, not only bytes, differ with the seed
            pa = np.asarray(Image.open(tmp_path / "a" / name))
            pc = np.asarray(Image.open(tmp_path / "c" / name))
            assert pa.shape == pc.shape == (64, 64, 3)
            assert not np.array_equal(pa, pc)


def test_more_training_images_only_append(tmp_path: Path) -> None:
    small = make_synthetic_coco(tmp_path / "s", seed=1, num_train=3, num_val=2, image_size=64)
    big = make_synthetic_coco(tmp_path / "b", seed=1, num_train=6, num_val=2, image_size=64)
    for name in ("train2017/000001.png", "train2017/000003.png", "val2017/000002.png"):
        assert (small / name).read_bytes() == (big / name).read_bytes()


def test_valid_coco_with_the_documented_fields(synth128: Path) -> None:
    paths = coco_layout(synth128)
    for ann_file, count in ((paths.train_ann, 40), (paths.val_ann, 8)):
        coco = _coco(ann_file)
        cats = coco.loadCats(coco.getCatIds())
        assert [(c["id"], c["name"]) for c in cats] == [
            (i + 1, n) for i, n in enumerate(SYNTH_CLASSES)
        ]
        assert len(coco.imgs) == count
        for img in coco.imgs.values():
            assert (img["width"], img["height"]) == (128, 128)
            n = len(coco.getAnnIds(imgIds=img["id"]))
            assert 1 <= n <= shapes.MAX_OBJECTS
        for ann in coco.anns.values():
            x, y, w, h = ann["bbox"]
            assert ann["iscrowd"] == 0
            assert min(x, y) >= 0 and w > 0 and h > 0
            assert x + w <= 128 and y + h <= 128
            assert 0 < ann["area"] <= w * h
            assert coco.annToMask(ann).sum() == ann["area"]
    # objects span ~12 to ~60 px and some boxes overlap (occlusion happens)
    coco = _coco(paths.train_ann)
    sides = [max(a["bbox"][2:]) for a in coco.anns.values()]
    assert min(sides) < 20 and max(sides) > 40 and max(sides) <= 61
    overlapping = 0
    for img_id in coco.imgs:
        boxes = [a["bbox"] for a in coco.imgToAnns[img_id]]
        overlapping += any(_intersects(p, q) for i, p in enumerate(boxes) for q in boxes[:i])
    assert overlapping >= 4


def _intersects(p: list[float], q: list[float]) -> bool:
    return p[0] < q[0] + q[2] and q[0] < p[0] + p[2] and p[1] < q[1] + q[3] and q[1] < p[1] + p[3]


def test_boxes_match_the_drawn_pixels(synth128: Path) -> None:
    """Independent of the generator's masks: find each isolated solid shape by its colour."""
    paths = coco_layout(synth128)
    coco = _coco(paths.train_ann)
    checked = 0
    for img_id, anns in coco.imgToAnns.items():
        pixels = np.asarray(Image.open(paths.train_images / coco.imgs[img_id]["file_name"]))
        pixels = pixels.astype(np.int32)
        for ann in anns:
            name = coco.cats[ann["category_id"]]["name"]
            others = [a["bbox"] for a in anns if a is not ann]
            if name == "ring" or any(_intersects(ann["bbox"], o) for o in others):
                continue  # a ring's centre is its hole; touching shapes could share colours
            x, y, w, h = (int(v) for v in ann["bbox"])
            cy, cx = y + h // 2, x + w // 2
            colour = pixels[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).mean(0)
            # look in a margin around the box: the shape must end exactly at the box edges
            y0, x0 = max(0, y - 4), max(0, x - 4)
            window = pixels[y0 : y + h + 4, x0 : x + w + 4]
            fg = np.abs(window - colour).max(-1) <= 16
            ys, xs = np.nonzero(fg)
            found = [xs.min() + x0, ys.min() + y0, xs.max() + 1 + x0, ys.max() + 1 + y0]
            assert found == [x, y, x + w, y + h], (img_id, name)
            assert abs(int(fg.sum()) - ann["area"]) <= 0.02 * ann["area"] + 1
            checked += 1
    assert checked >= 30


def test_class_subset_and_seeded_drawing(tmp_path: Path) -> None:
    out = make_synthetic_coco(
        tmp_path / "d", seed=0, num_train=4, num_val=2, image_size=48, classes=("ring", "cross")
    )
    coco = _coco(coco_layout(out).train_ann)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["ring", "cross"]
    assert {a["category_id"] for a in coco.anns.values()} <= {1, 2}
    assert json.loads((out / synth.MARKER).read_text())["classes"] == ["ring", "cross"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": -1}, "--seed"),
        ({"num_train": 0}, "--num-train"),
        ({"image_size": 16}, "--image-size"),
        ({"classes": ("circle", "hexagon")}, "--classes"),
        ({"classes": ("circle", "circle")}, "--classes"),
        ({"classes": ()}, "--classes"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        make_synthetic_coco(tmp_path / "x", **{"num_train": 2, "num_val": 1, **kwargs})
    assert not (tmp_path / "x").exists()


def test_refuses_to_overwrite_foreign_folders_and_replaces_its_own(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=f"{foreign}: exists, is not empty"):
        make_synthetic_coco(foreign, num_train=2, num_val=1, image_size=32)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        make_synthetic_coco(a_file, num_train=2, num_val=1, image_size=32)

    empty = tmp_path / "empty"
    empty.mkdir()
    make_synthetic_coco(empty, num_train=2, num_val=1, image_size=32)
    make_synthetic_coco(empty, num_train=3, num_val=1, image_size=32)  # its own: replaced
    assert len(list((empty / "train2017").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "mine"]  # no debris


def test_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_synthetic_coco(tmp_path / "d", num_train=4, num_val=2, image_size=32, progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_cache_location_and_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALRP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert synth.cache_root() == tmp_path / "xdg" / "alrp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert synth.cache_root() == tmp_path / "home" / ".cache" / "alrp"
    monkeypatch.setenv("ALRP_CACHE", str(tmp_path / "cache"))
    assert synth.cache_root() == tmp_path / "cache"

    kw = {"seed": 2, "num_train": 3, "num_val": 2, "image_size": 32}
    first = synth.synthetic_dataset_dir(**kw)
    assert first.parent == tmp_path / "cache" and (first / synth.MARKER).is_file()
    reference = make_synthetic_coco(tmp_path / "ref", **kw)
    assert _files(first) == _files(reference)

    def must_not_build(*args: object, **kwargs: object) -> Path:
        raise AssertionError("rebuilt a cached dataset")

    monkeypatch.setattr(synth, "make_synthetic_coco", must_not_build)
    assert synth.synthetic_dataset_dir(**kw) == first
    with pytest.raises(AssertionError):  # other parameters, other key
        synth.synthetic_dataset_dir(**{**kw, "seed": 3})
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [first.name]


def test_unwritable_places_are_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match=f"{a_file}: cannot create a folder there"):
        make_synthetic_coco(a_file / "ds", num_train=2, num_val=1, image_size=32)
    monkeypatch.setenv("ALRP_CACHE", str(a_file))
    with pytest.raises(UserError, match="set ALRP_CACHE to a writable folder"):
        synth.synthetic_dataset_dir(num_train=2, num_val=1, image_size=32)
    assert a_file.read_text() == "x"


def test_hard_preset_is_deterministic_and_as_documented(tmp_path: Path) -> None:
    import colorsys

    from alrp_cli.detection.data import HARD_CLASSES
    from alrp_cli.detection.data.shapes_hard import (
        HARD_COLOURS,
        MIN_VISIBLE_HARD,
        OBJECTS,
        render_image_hard,
    )

    assert len(HARD_CLASSES) == 20 and len(set(HARD_CLASSES)) == 20
    assert "circle-red-wide" in HARD_CLASSES and "ring-amber-tall" in HARD_CLASSES
    for index in range(6):
        a = render_image_hard(np.random.default_rng([0, 0, index]), 128)
        b = render_image_hard(np.random.default_rng([0, 0, index]), 128)
        assert np.array_equal(a[0], b[0]) and len(a[1]) == len(b[1])
        pixels, objects = a
        # At most OBJECTS[1] annotated (a placement may fail after 20 tries: not more).
        assert 1 <= len(objects) <= OBJECTS[1]
        owner = np.full((128, 128), -1)
        for k, (cls, mask) in enumerate(objects):
            assert mask.any() and not (owner[mask] >= 0).any()  # visible masks are disjoint
            owner[mask] = k
            # The visible pixels carry the class colour: their median hue is in its family.
            r, g, bl = np.median(pixels[mask].astype(float), axis=0) / 255
            hue = colorsys.rgb_to_hsv(r, g, bl)[0]
            lo, hi = HARD_COLOURS[HARD_CLASSES[cls].split("-")[1]]
            assert lo - 0.03 <= hue <= hi + 0.03 or lo - 0.03 <= hue - 1 <= hi + 0.03
    assert MIN_VISIBLE_HARD < shapes.MIN_VISIBLE  # heavier occlusion than the default set

    out = make_synthetic_coco(tmp_path / "hard", num_train=6, num_val=2, preset="hard")
    again = make_synthetic_coco(tmp_path / "again", num_train=6, num_val=2, preset="hard")
    ann = out / "annotations" / "instances_train2017.json"
    assert ann.read_bytes() == (again / "annotations" / ann.name).read_bytes()
    coco = json.loads(ann.read_text())
    assert [c["name"] for c in coco["categories"]] == list(HARD_CLASSES)
    params = json.loads((out / "alrp-synth.json").read_text())
    assert params["preset"] == "hard" and params["classes"] == list(HARD_CLASSES)
    with pytest.raises(UserError, match="--preset hard"):
        make_synthetic_coco(tmp_path / "x", num_train=1, num_val=1, preset="hard", classes=["ring"])
    with pytest.raises(UserError, match="--preset"):
        make_synthetic_coco(tmp_path / "y", num_train=1, num_val=1, preset="hardest")
