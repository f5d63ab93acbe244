"""The official training augmentation (detection/data/official.py) against the official
definitions, written out here: mmdet/datasets/pipelines/transforms.py of the aLRP repository
("T:") with the values of configs/_base_/datasets/coco500_detection_augm.py ("coco500:").

Deterministic parts are compared with independent formulations (Python's colorsys, OpenCV's
sector table, hand-made cases); random parts by the statistics of many draws, with
tolerances of about four standard errors.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import box_iou

from alrp_cli.detection.data import MEAN, build_transforms
from alrp_cli.detection.data.official import (
    Expand,
    MinIoURandomCrop,
    PhotoMetricDistortion,
    hsv_round_trip_cv,
    hsv_to_rgb_cv,
    rgb_to_hsv_cv,
)

# tiny tensor ops on two threads of a busy 2-core machine are many times slower
pytestmark = pytest.mark.usefixtures("one_thread")

# --- colour space -----------------------------------------------------------------------

# OpenCV's HSV2RGB_f (imgproc/src/color_hsv.simd.hpp), literally: (b, g, r) indices into
# tab = (v, v(1 - s), v(1 - s f), v(1 - s (1 - f))) per sector.
SECTOR_DATA = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1, 0))


def opencv_hsv2rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    h = h * 6 / 360
    while h < 0:
        h += 6
    while h >= 6:
        h -= 6
    sector = math.floor(h)
    f = h - sector
    tab = (v, v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f)))
    b, g, r = (tab[i] for i in SECTOR_DATA[sector])
    return r, g, b


def test_rgb_to_hsv_is_colorsys_for_positive_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 6, 9, generator=g) * 255 + 0.5
    hsv = rgb_to_hsv_cv(image)
    for y in range(6):
        for x in range(9):
            h, s, v = colorsys.rgb_to_hsv(*image[:, y, x].tolist())
            assert hsv[:, y, x].tolist() == pytest.approx([h * 360, s, v], rel=1e-5, abs=1e-4)


def test_hsv_to_rgb_is_opencvs_sector_table_also_out_of_range() -> None:
    g = torch.Generator().manual_seed(1)
    h = torch.rand(200, generator=g) * 1000 - 400  # hues below 0 and above 360
    s = torch.rand(200, generator=g) * 1.6  # saturation scaled past 1
    v = torch.rand(200, generator=g) * 300 - 40  # negative values after the brightness
    rgb = hsv_to_rgb_cv(torch.stack([h, s, v]).view(3, 20, 10)).view(3, 200)
    for i in range(200):
        expected = opencv_hsv2rgb(h[i].item(), s[i].item(), v[i].item())
        assert rgb[:, i].tolist() == pytest.approx(expected, abs=2e-3)


def test_the_hsv_round_trip_mirrors_pixels_whose_largest_channel_is_negative() -> None:
    # (-32, -32, -2): v = -2, diff = 30, s = diff / |v| = 15; back: v (1 - s) = 28 on r and g
    pixel = torch.tensor([-32.0, -32.0, -2.0]).view(3, 1, 1)
    assert hsv_to_rgb_cv(rgb_to_hsv_cv(pixel)).flatten().tolist() == pytest.approx(
        [28, 28, -2], abs=1e-3
    )
    g = torch.Generator().manual_seed(2)
    image = torch.rand(3, 8, 8, generator=g) * 300 - 60
    for factor in (1.0, 0.6, 1.4):
        hsv = rgb_to_hsv_cv(image)
        hsv[1] *= factor
        torch.testing.assert_close(
            hsv_round_trip_cv(image, factor), hsv_to_rgb_cv(hsv), atol=2e-3, rtol=0
        )


# --- photometric distortion ---------------------------------------------------------------


def test_photometric_parameters_follow_the_official_definition() -> None:
    t = PhotoMetricDistortion(32, (0.5, 1.5), (0.5, 1.5), 18)
    torch.manual_seed(0)
    n = 6000
    draws = [t.make_params([]) for _ in range(n)]
    tol = 4 * math.sqrt(0.25 / n)

    def share(pred) -> float:
        return sum(map(pred, draws)) / n

    # each step with probability 1/2 (randint(2), T:638-683)
    for key in ("brightness", "contrast", "saturation", "hue", "permutation"):
        assert share(lambda d, k=key: d[k] is not None) == pytest.approx(0.5, abs=tol)
    assert share(lambda d: d["contrast_first"]) == pytest.approx(0.5, abs=tol)
    for key, low, high in (
        ("brightness", -32, 32),  # coco500:10
        ("contrast", 0.5, 1.5),  # coco500:11
        ("saturation", 0.5, 1.5),  # coco500:12
        ("hue", -18, 18),  # coco500:13
    ):
        values = np.array([d[key] for d in draws if d[key] is not None])
        assert values.min() >= low and values.max() <= high
        # uniform: each quarter of the range holds a quarter of the draws
        quarters = np.histogram(values, bins=4, range=(low, high))[0] / len(values)
        assert quarters == pytest.approx([0.25] * 4, abs=4 * math.sqrt(0.1875 / len(values)))
    perms = [tuple(d["permutation"]) for d in draws if d["permutation"] is not None]
    assert len(set(perms)) == 6  # every order of the 3 channels


def _reference_photometric(pixel: list[float], p: dict) -> list[float]:
    """One pixel through T:637-683 with Python's colorsys for the HSV steps."""
    px = [c + (p["brightness"] or 0.0) for c in pixel]
    if p["contrast_first"] and p["contrast"] is not None:
        px = [c * p["contrast"] for c in px]
    h, s, v = colorsys.rgb_to_hsv(*px)
    if p["saturation"] is not None:
        s *= p["saturation"]
    if p["hue"] is not None:
        h = (h + p["hue"] / 360) % 1.0
    px = list(colorsys.hsv_to_rgb(h, s, v))
    if not p["contrast_first"] and p["contrast"] is not None:
        px = [c * p["contrast"] for c in px]
    if p["permutation"] is not None:
        px = [px[i] for i in p["permutation"]]
    return px


@pytest.mark.parametrize("seed", range(6))
def test_photometric_pixels_follow_the_official_steps(seed: int) -> None:
    torch.manual_seed(seed)
    t = PhotoMetricDistortion()
    params = t.make_params([])
    g = torch.Generator().manual_seed(seed)
    image = tv_tensors.Image(torch.rand(3, 4, 5, generator=g) * 0.6 + 0.2)  # stays positive
    out = t.transform(image, params)
    assert type(out) is tv_tensors.Image
    for y in range(4):
        for x in range(5):
            expected = _reference_photometric((image[:, y, x] * 255).tolist(), params)
            assert (out[:, y, x] * 255).tolist() == pytest.approx(expected, abs=2e-3)


def test_photometric_distortion_does_not_clamp() -> None:
    t = PhotoMetricDistortion()
    bright = {"brightness": 32.0, "contrast": 1.5, "contrast_first": False,
              "saturation": None, "hue": None, "permutation": None}  # fmt: skip
    out = t.transform(tv_tensors.Image(torch.full((3, 2, 2), 0.9)), bright)
    assert out.flatten().tolist() == pytest.approx([(0.9 * 255 + 32) * 1.5 / 255] * 12)
    assert out.max() > 1  # as the official float32 pixels go past 255


# --- expand -------------------------------------------------------------------------------


def test_expand_probability_ratio_and_offsets() -> None:
    w, h = 60, 40
    image = tv_tensors.Image(torch.zeros(3, h, w))
    t = Expand(fill=list(MEAN), side_range=(1.0, 4.0), p=0.5)
    torch.manual_seed(0)
    n = 1500
    shapes = [tuple(t(image).shape[-2:]) for _ in range(n)]
    expanded = [s for s in shapes if s != (h, w)]
    assert len(expanded) / n == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / n) + 0.01)
    ratios = np.array([cw / w for _, cw in expanded])
    assert ratios.min() >= 1 and ratios.max() < 4
    # r ~ U(1, 4) (coco500:18): mean 2.5, standard deviation sqrt(3) / 2
    assert ratios.mean() == pytest.approx(2.5, abs=4 * 0.866 / math.sqrt(len(ratios)))
    for ch, cw in expanded:  # canvas int(h r) x int(w r), the same r on both sides
        assert ch == int(h * (cw / w)) or abs(ch / h - cw / w) < 2 / w
    # offsets: left = int(U(0, w r - w)); top likewise
    lefts = []
    for _ in range(400):
        left, top, right, bottom = t.make_params([image])["padding"]
        assert left >= 0 and top >= 0 and right >= 0 and bottom >= 0
        lefts.append(left / max(1, left + right))
    assert np.mean(lefts) == pytest.approx(0.5, abs=0.06)


def test_expand_places_the_image_on_a_mean_canvas_and_moves_the_boxes() -> None:
    g = torch.Generator().manual_seed(3)
    image = tv_tensors.Image(torch.rand(3, 20, 30, generator=g))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[2.0, 3.0, 12.0, 15.0]]), format="XYXY", canvas_size=(20, 30),
        clamping_mode=None,
    )  # fmt: skip
    t = Expand(fill=list(MEAN), side_range=(2.0, 3.0), p=1.0)
    torch.manual_seed(4)
    out, out_boxes = t(image, boxes)
    ys, xs = torch.nonzero((out - torch.tensor(MEAN).view(3, 1, 1)).abs().sum(0) > 0, as_tuple=True)
    top, left = int(ys.min()), int(xs.min())
    assert torch.equal(out[:, top : top + 20, left : left + 30], image)
    assert out_boxes.tolist() == [[2.0 + left, 3.0 + top, 12.0 + left, 15.0 + top]]
    assert out_boxes.canvas_size == tuple(out.shape[-2:])


# --- min-IoU crop -------------------------------------------------------------------------


def _reference_crop(boxes: np.ndarray, h: int, w: int, rng: np.random.RandomState):
    """T:821-911 (the patch choice), with numpy's legacy RNG as the official code."""
    modes = (1, 0.1, 0.3, 0.5, 0.7, 0.9, 0)
    while True:
        mode = modes[rng.randint(len(modes))]
        if mode == 1:
            return None
        for _ in range(50):
            new_w = rng.uniform(0.3 * w, w)
            new_h = rng.uniform(0.3 * h, h)
            if new_h / new_w < 0.5 or new_h / new_w > 2:
                continue
            left = rng.uniform(w - new_w)  # numpy: uniform(low=w - new_w, high=1.0)
            top = rng.uniform(h - new_h)
            patch = np.array((int(left), int(top), int(left + new_w), int(top + new_h)))
            if patch[2] == patch[0] or patch[3] == patch[1]:
                continue
            if len(boxes):
                ix = np.maximum(
                    0, np.minimum(patch[2], boxes[:, 2]) - np.maximum(patch[0], boxes[:, 0])
                )
                iy = np.maximum(
                    0, np.minimum(patch[3], boxes[:, 3]) - np.maximum(patch[1], boxes[:, 1])
                )
                inter = ix * iy
                area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                union = (patch[2] - patch[0]) * (patch[3] - patch[1]) + area - inter
                if (inter / union).min() < mode:
                    continue
                cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
                inside = (cx > patch[0]) & (cy > patch[1]) & (cx < patch[2]) & (cy < patch[3])
                if not inside.any():
                    continue
            return tuple(int(v) for v in patch)  # fmt: skip


def _crop_stats(patches: list, boxes: np.ndarray, h: int, w: int) -> dict[str, float]:
    crops = [p for p in patches if p is not None]
    area = [(p[2] - p[0]) * (p[3] - p[1]) / (w * h) for p in crops]
    min_iou = [
        float(box_iou(torch.tensor([p], dtype=torch.float32), torch.from_numpy(boxes)).min())
        for p in crops
    ]
    return {
        "no crop": 1 - len(crops) / len(patches),
        "area": float(np.mean(area)),
        "min IoU >= 0.5": float(np.mean([m >= 0.5 for m in min_iou])),
        "min IoU >= 0.1": float(np.mean([m >= 0.1 for m in min_iou])),
        "left": float(np.mean([p[0] / w for p in crops])),
    }


def test_min_iou_crop_matches_the_official_definition_in_distribution() -> None:
    h, w = 160, 200
    boxes = np.array([[10, 10, 90, 80], [100, 60, 190, 150], [30, 90, 80, 150]], np.float32)
    t = MinIoURandomCrop()
    torch.manual_seed(0)
    n = 1000
    ours = _crop_stats([t.draw_patch(torch.from_numpy(boxes), (h, w)) for _ in range(n)],
                       boxes, h, w)  # fmt: skip
    rng = np.random.RandomState(0)
    official = _crop_stats([_reference_crop(boxes, h, w, rng) for _ in range(n)], boxes, h, w)
    for key in ours:
        # two samples of n: the difference has twice the variance of one (shares <= 0.25/n)
        assert ours[key] == pytest.approx(official[key], abs=4 * math.sqrt(2 * 0.25 / n)), key


def test_min_iou_crop_needs_every_box_not_just_one() -> None:
    # A box covering the image and a tiny one: no patch of >= 0.3 x 0.3 of the image has IoU
    # >= 0.1 with the tiny box, so only mode 0 ever crops, and no-crop (mode 1) is half the
    # outcomes. torchvision's RandomIoUCrop (the largest IoU among boxes whose centre the
    # crop holds) would crop in the modes up to 0.9 through the big box: no-crop 1/7.
    boxes = torch.tensor([[0.0, 0.0, 200.0, 200.0], [190.0, 190.0, 198.0, 198.0]])
    t = MinIoURandomCrop()
    torch.manual_seed(1)
    n = 1500
    patches = [t.draw_patch(boxes, (200, 200)) for _ in range(n)]
    assert sum(p is None for p in patches) / n == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / n))


def test_min_iou_crop_without_boxes_crops_in_six_modes_of_seven() -> None:
    t = MinIoURandomCrop()
    torch.manual_seed(2)
    n = 3000
    h, w = 100, 150
    patches = [t.draw_patch(torch.zeros(0, 4), (h, w)) for _ in range(n)]
    crops = [p for p in patches if p is not None]
    assert 1 - len(crops) / n == pytest.approx(1 / 7, abs=4 * math.sqrt(1 / 7 * 6 / 7 / n))
    for x1, y1, x2, y2 in crops:
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert x2 - x1 >= int(0.3 * w) - 1 and y2 - y1 >= int(0.3 * h) - 1
        assert 0.5 - 0.02 <= (y2 - y1) / (x2 - x1) <= 2 + 0.05  # h'/w' in [0.5, 2] before int()


class _FixedPatch(MinIoURandomCrop):
    def __init__(self, patch: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.patch = patch

    def draw_patch(self, boxes, size):
        return self.patch


def test_min_iou_crop_keeps_boxes_by_centre_clips_them_and_filters_their_fields() -> None:
    image = tv_tensors.Image(torch.arange(3 * 50 * 60, dtype=torch.float32).view(3, 50, 60))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[5.0, 5, 25, 25], [30, 10, 58, 40], [0, 30, 12, 48], [18, 18, 22, 22]]),
        format="XYXY", canvas_size=(50, 60), clamping_mode=None,
    )  # fmt: skip
    target = {"boxes": boxes, "labels": torch.tensor([1, 2, 3, 4]),
              "iscrowd": torch.tensor([False, False, True, False]), "image_id": 7}  # fmt: skip
    out_image, out = _FixedPatch((10, 8, 40, 45))(image, target)
    # centres (15, 15) in, (44, 25) out, (6, 39) out, (20, 20) in
    assert out["labels"].tolist() == [1, 4] and out["iscrowd"].tolist() == [False, False]
    assert out["boxes"].tolist() == [[0.0, 0.0, 15.0, 17.0], [8.0, 10.0, 12.0, 14.0]]
    assert out["boxes"].canvas_size == (37, 30) and out["image_id"] == 7
    assert torch.equal(out_image, image[:, 8:45, 10:40])


# --- the whole pipeline: boxes stay on their pixels ------------------------------------

COLOURS = {0: (1.0, 0.0, 0.0), 1: (0.0, 0.9, 0.0), 2: (0.1, 0.1, 1.0)}


def test_official_pipeline_boxes_cover_exactly_their_colour() -> None:
    """Filled boxes of distinct colours on a background of the fill colour; after the
    official geometric steps (expand, crop, resize, flip) each box still covers exactly
    the pixels nearer its colour than the background, within a pixel."""
    h, w = 150, 200
    mean = torch.tensor(MEAN).view(3, 1, 1)
    image = mean.repeat(1, h, w)
    rects = [(20, 15, 90, 70), (120, 30, 185, 135), (30, 95, 100, 140)]
    for label, (x1, y1, x2, y2) in enumerate(rects):
        image[:, y1:y2, x1:x2] = torch.tensor(COLOURS[label]).view(3, 1, 1)
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor(rects, dtype=torch.float32), format="XYXY", canvas_size=(h, w),
        clamping_mode=None,
    )  # fmt: skip
    pipeline = build_transforms(train=True, image_size=128, augmentation="official")
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ["ToImage", "ToDtype", "PhotoMetricDistortion", "Expand",
                     "MinIoURandomCrop", "Resize", "ClampBoundingBoxes",
                     "RandomHorizontalFlip"]  # fmt: skip
    geometric = type(pipeline)(pipeline.transforms[3:])  # the colours must stay known
    torch.manual_seed(0)
    checked = 0
    for _ in range(60):
        target = {"boxes": boxes, "labels": torch.tensor([0, 1, 2]),
                  "iscrowd": torch.zeros(3, dtype=torch.bool)}  # fmt: skip
        out, t = geometric(tv_tensors.Image(image), target)
        assert out.shape == (3, 128, 128)
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            colour = torch.tensor(COLOURS[label]).view(3, 1, 1)
            nearer = ((out - colour) ** 2).sum(0) < ((out - mean) ** 2).sum(0)
            ys, xs = torch.nonzero(nearer, as_tuple=True)
            found = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert found == pytest.approx(box, abs=1.0), (box, found)
            checked += 1
    assert checked > 60
