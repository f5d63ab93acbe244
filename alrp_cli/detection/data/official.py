"""The transforms of the official training and test pipelines that torchvision lacks.

The official aLRP configuration (github.com/kemaloksuz/aLRPLoss at 2cfaa8e, an mmdetection
2.x fork) trains with ``configs/_base_/datasets/coco500_detection_augm.py:5-28`` and tests
with ``:29-43``; the transforms are in ``mmdet/datasets/pipelines/transforms.py`` ("T:" below).
torchvision's v2 transforms cover Resize to a fixed size and the flip exactly; none matches
these, so they are written here as v2 transforms (all randomness from torch's RNG):

- :class:`PhotoMetricDistortion` (T:598-689): additive brightness and a plain multiplicative
  contrast, saturation and hue through OpenCV's float HSV; torchvision's
  ``RandomPhotometricDistort`` scales brightness, blends contrast and saturation with the
  grey image and clamps to [0, 1].
- :class:`Expand` (T:704-778): torchvision's ``RandomZoomOut`` with the official offset rule.
- :class:`MinIoURandomCrop` (T:790-911): torchvision's ``RandomIoUCrop`` keeps a crop when
  the *largest* IoU with a box whose centre it holds reaches the threshold; the official one
  needs the *smallest* IoU over all boxes to reach it, and crops images without boxes too.
- :func:`rescale_size` / :class:`KeepRatioResize`: the test resize (``Resize(keep_ratio=True)``,
  T:181-204, mmcv's ``rescale_size``), which rounds the sides to nearest; ``v2.Resize`` with
  ``max_size`` truncates them, a pixel off on COCO's 640 x 480 images (666 instead of 667).

Pixel values follow the official code, which works on unclamped float32 pixels (mmdet loads
with ``to_float32=True``, coco500:6): here float32 in [0, 1] (value / 255), never clamped, so
distorted pixels may leave [0, 1] as they leave [0, 255] there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

# OpenCV's FLT_EPSILON in its float HSV conversion (imgproc/src/color_hsv.simd.hpp, RGB2HSV_f).
_FLT_EPSILON = 1.1920928955078125e-07
# n of the closed-form HSV -> RGB for (r, g, b): see hsv_to_rgb_cv.
_CHANNEL_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1)


def _size(flat_inputs: list[Any]) -> tuple[int, int]:
    for inpt in flat_inputs:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.BoundingBoxes)):
            h, w = F.get_size(inpt)
            return h, w
    raise TypeError("no image or bounding boxes in the sample")


def _uniform(low: float, high: float) -> float:
    """numpy's ``uniform(low, high)``: low + (high - low) U, also when high < low."""
    return low + (high - low) * float(torch.rand(()))


def _coin() -> bool:
    """numpy's ``randint(2)``: 0 or 1 with probability 1/2."""
    return bool(torch.randint(0, 2, ()))


def rgb_to_hsv_cv(image: Tensor) -> Tensor:
    """OpenCV's float ``cvtColor(RGB2HSV)``, unclamped: Tensor[..., 3, H, W] float -> (h, s, v).

    h in degrees [0, 360), s = (max - min) / (|max| + eps), v = max; as mmcv's ``bgr2hsv`` on
    the official float32 images (T:659).
    """
    r, g, b = image.unbind(-3)
    v = torch.maximum(torch.maximum(r, g), b)
    vmin = torch.minimum(torch.minimum(r, g), b)
    diff = v - vmin
    s = diff / (v.abs() + _FLT_EPSILON)
    k = 60.0 / (diff + _FLT_EPSILON)
    h = torch.where(v == r, (g - b) * k, torch.where(v == g, (b - r) * k + 120, (r - g) * k + 240))
    h = torch.where(h < 0, h + 360, h)
    return torch.stack([h, s, v], dim=-3)


def hsv_to_rgb_cv(hsv: Tensor) -> Tensor:
    """OpenCV's float ``cvtColor(HSV2RGB)``: Tensor[..., 3, H, W] (h in degrees, s, v) -> RGB.

    OpenCV picks, per 60° sector of the hue (taken modulo 360), each channel from ``(v, v(1
    - s), v(1 - s f), v(1 - s (1 - f)))`` (f: the position within the sector); the same
    piecewise-linear function in closed form: channel n in (5, 3, 1) for (r, g, b) is ``v (1
    - s clamp(min(k, 4 - k), 0, 1))``, k = (n + h / 60) mod 6. As mmcv's ``hsv2bgr`` (T:672).
    Round trip with :func:`rgb_to_hsv_cv` is the identity for pixels whose largest channel is
    positive (up to float rounding).
    """
    h, s, v = hsv.unsqueeze(-3).unbind(-4)
    k = torch.remainder(_CHANNEL_OFFSETS.to(hsv) + h * (6.0 / 360.0), 6.0)
    w = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return v * (1.0 - s * w)


def hsv_round_trip_cv(image: Tensor, saturation: float = 1.0) -> Tensor:
    """``hsv_to_rgb_cv`` of ``rgb_to_hsv_cv(image)`` with s scaled by ``saturation`` and the hue
    unchanged, in closed form: ``v + saturation × sign(v) × (c - v)`` per channel c (v: the
    largest channel). For v > 0 a move towards (or away from) the grey of value v; for v < 0
    (a pixel made negative by the brightness step) OpenCV's s = diff / |v| mirrors the
    channels about v — the official pipeline does this whenever the brightness step makes a
    dark pixel negative.
    """
    v = image.amax(dim=-3, keepdim=True)
    return v + (saturation * torch.sign(v)) * (image - v)


class PhotoMetricDistortion(v2.Transform):
    """mmdet's ``PhotoMetricDistortion`` (T:598-689) on a float image (pixel value / 255).

    In order, each step with probability 1/2 (``randint(2)``): brightness ``+ U(-delta,
    delta) / 255``; contrast ``× U(lo, hi)`` here or after the HSV steps (which one: 1/2);
    into OpenCV's float HSV (always); saturation ``s × U(lo, hi)``; hue ``h + U(-hue_delta,
    hue_delta)`` degrees; back to RGB (always); a random permutation of the channels. Nothing
    is clamped. Official values (coco500:9-13): 32, (0.5, 1.5), (0.5, 1.5), 18.
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18,
    ) -> None:
        super().__init__()
        self.brightness_delta = brightness_delta
        self.contrast_range = contrast_range
        self.saturation_range = saturation_range
        self.hue_delta = hue_delta

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draws in the official order (T:637-683); None where a step is skipped."""
        d = self.brightness_delta
        brightness = _uniform(-d, d) if _coin() else None
        contrast_first = _coin()  # the official ``mode == 1`` (T:646-652)
        contrast = None
        if contrast_first and _coin():
            contrast = _uniform(*self.contrast_range)
        saturation = _uniform(*self.saturation_range) if _coin() else None
        hue = _uniform(-self.hue_delta, self.hue_delta) if _coin() else None
        if not contrast_first and _coin():
            contrast = _uniform(*self.contrast_range)
        permutation = torch.randperm(3).tolist() if _coin() else None
        return {
            "brightness": brightness,
            "contrast": contrast,
            "contrast_first": contrast_first,
            "saturation": saturation,
            "hue": hue,
            "permutation": permutation,
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not inpt.is_floating_point():
            raise TypeError("PhotoMetricDistortion needs a float image (the official: to_float32)")
        img = inpt.as_subclass(Tensor) * 255.0  # the official scale: OpenCV's eps is absolute
        if params["brightness"] is not None:
            img = img + params["brightness"]
        if params["contrast_first"] and params["contrast"] is not None:
            img = img * params["contrast"]
        saturation = params["saturation"] if params["saturation"] is not None else 1.0
        if params["hue"] is None:  # the HSV round trip (always done, T:659, 672) in closed form
            img = hsv_round_trip_cv(img, saturation)
        else:
            h, s, v = rgb_to_hsv_cv(img).unbind(-3)
            # the official wrap into [0, 360] (T:666-667) is implied by hsv_to_rgb_cv's modulo
            img = hsv_to_rgb_cv(torch.stack([h + params["hue"], s * saturation, v], dim=-3))
        if not params["contrast_first"] and params["contrast"] is not None:
            img = img * params["contrast"]
        if params["permutation"] is not None:
            img = img[..., params["permutation"], :, :]
        return tv_tensors.wrap(img / 255.0, like=inpt)


class Expand(v2.RandomZoomOut):
    """mmdet's ``Expand`` (T:704-778): with probability ``p`` the image is placed on a canvas
    ``int(h r) × int(w r)``, r ~ U(ratio_range), filled with ``fill`` (the official: the
    dataset mean, coco500:14-18), at ``left = int(U(0, w r - w))``, ``top = int(U(0, h r -
    h))``. torchvision's ``RandomZoomOut`` draws the offsets in ``[0, int(w r) - w)``: up to
    a pixel narrower; only its offsets are replaced here."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _size(flat_inputs)
        ratio = _uniform(*self.side_range)
        canvas_w, canvas_h = int(w * ratio), int(h * ratio)
        left = int(_uniform(0, w * ratio - w))
        top = int(_uniform(0, h * ratio - h))
        return {"padding": [left, top, canvas_w - w - left, canvas_h - h - top]}


# Per-box tensors of the target that a crop filters with the boxes.
PER_BOX_KEYS = ("labels", "iscrowd")


class MinIoURandomCrop(v2.Transform):
    """mmdet's ``MinIoURandomCrop`` (T:790-911) for ``(image, target)`` samples.

    A mode is drawn uniformly from ``(1, *min_ious, 0)``; 1 leaves the sample as it is.
    Otherwise up to 50 patches are tried: ``w' ~ U(min_crop_size w, w)``, ``h' ~
    U(min_crop_size h, h)`` with ``h'/w'`` in [0.5, 2], ``left ~ uniform(w - w', 1)``, ``top ~
    uniform(h - h', 1)`` (numpy's ``uniform(low)`` draws between low and 1), the patch being the
    integer parts of (left, top, left + w', top + h'). It is taken when the IoU with *every*
    box is at least the mode and (with boxes) some box centre lies strictly inside; boxes
    whose centre does not are dropped with their ``target[k]`` for k in ``PER_BOX_KEYS``, the
    rest clipped to the patch. When 50 patches fail a new mode is drawn. An image without
    boxes is cropped by any patch. Official values (coco500:19-22): (0.1, 0.3, 0.5, 0.7,
    0.9), 0.3. Crowd boxes take part (the official ``gt_bboxes_ignore``, T:832-833).
    """

    def __init__(
        self,
        min_ious: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        trials: int = 50,
    ) -> None:
        super().__init__()
        self.min_ious = tuple(min_ious)
        self.sample_mode = (1, *self.min_ious, 0)
        self.min_crop_size = min_crop_size
        self.trials = trials

    def draw_patch(self, boxes: Tensor, size: tuple[int, int]) -> tuple[int, ...] | None:
        """The patch (x1, y1, x2, y2) in whole pixels, or None for no crop (mode 1).

        ``boxes`` Tensor[K, 4] XYXY float; ``size`` (h, w). The trials of a mode are drawn
        together and the first that passes is taken: the same distribution as the official
        one-by-one loop.
        """
        h, w = size
        boxes = boxes.float()
        while True:
            mode = self.sample_mode[int(torch.randint(0, len(self.sample_mode), ()))]
            if mode == 1:
                return None
            u = torch.rand(self.trials, 4, dtype=torch.float64)
            new_w = self.min_crop_size * w + (w - self.min_crop_size * w) * u[:, 0]
            new_h = self.min_crop_size * h + (h - self.min_crop_size * h) * u[:, 1]
            left = (w - new_w) + (1.0 - (w - new_w)) * u[:, 2]  # uniform(w - new_w) (T:852)
            top = (h - new_h) + (1.0 - (h - new_h)) * u[:, 3]
            patches = torch.stack([left, top, left + new_w, top + new_h], 1).long()  # int()
            ok = (new_h / new_w >= 0.5) & (new_h / new_w <= 2)
            ok &= (patches[:, 2] != patches[:, 0]) & (patches[:, 3] != patches[:, 1])
            if len(boxes):
                ious = box_iou(patches.float(), boxes)
                ok &= ious.min(dim=1).values >= mode
                ok &= self.centre_inside(boxes, patches).any(dim=1)
            passed = ok.nonzero()
            if len(passed):
                return tuple(patches[int(passed[0])].tolist())

    @staticmethod
    def centre_inside(boxes: Tensor, patches: Tensor) -> Tensor:
        """Tensor[P, K] bool: box k's centre lies strictly inside patch p (T:873-879);
        ``patches`` Tensor[P, 4]."""
        cx = ((boxes[:, 0] + boxes[:, 2]) / 2)[None]
        cy = ((boxes[:, 1] + boxes[:, 3]) / 2)[None]
        x1, y1, x2, y2 = (patches[:, i : i + 1] for i in range(4))
        return (cx > x1) & (cy > y1) & (cx < x2) & (cy < y2)

    def forward(self, *inputs: Any) -> Any:
        image, target = inputs if len(inputs) > 1 else inputs[0]
        boxes = target["boxes"]
        if not isinstance(boxes, tv_tensors.BoundingBoxes) or boxes.format.name != "XYXY":
            raise TypeError("MinIoURandomCrop needs target['boxes'] as XYXY BoundingBoxes")
        patch = self.draw_patch(boxes.as_subclass(Tensor), F.get_size(image))
        if patch is None:
            return image, target
        x1, y1, x2, y2 = patch
        keep = self.centre_inside(boxes.as_subclass(Tensor).float(), torch.tensor([patch]))[0]
        kept = boxes.as_subclass(Tensor)[keep].clone()
        kept[:, 2:] = torch.minimum(kept[:, 2:], kept.new_tensor([x2, y2]))
        kept[:, :2] = torch.maximum(kept[:, :2], kept.new_tensor([x1, y1]))
        kept -= kept.new_tensor([x1, y1, x1, y1])
        out = dict(target)
        out["boxes"] = tv_tensors.wrap(kept, like=boxes, canvas_size=(y2 - y1, x2 - x1))
        for key in PER_BOX_KEYS:
            if key in out:
                out[key] = out[key][keep]
        return F.crop(image, y1, x1, y2 - y1, x2 - x1), out


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(h', w') of mmcv's ``rescale_size`` (the official keep-ratio resize, T:184-192): the
    factor ``min(max(scale) / max(h, w), min(scale) / min(h, w))``, each side
    ``int(side × factor + 0.5)``."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


class KeepRatioResize(v2.Transform):
    """Resize to :func:`rescale_size` of ``scale`` (long, short): the official test resize
    (coco500:33, 36), bilinear (cv2's, so no antialiasing unless ``antialias``)."""

    def __init__(self, scale: tuple[int, int], *, antialias: bool = False) -> None:
        super().__init__()
        self.scale = (int(scale[0]), int(scale[1]))
        self.antialias = antialias

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"size": list(rescale_size(*_size(flat_inputs), self.scale))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, params["size"], antialias=self.antialias)
