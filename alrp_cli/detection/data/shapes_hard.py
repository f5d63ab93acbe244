"""The hard synthetic preset (``alrp data synth --preset hard``): a COCO-like task.

The default set is too easy to tell the losses apart (L_cls falls from 0.94 to 0.25 in 8
epochs, driving the self-balance weight to ~4, a regime COCO never reaches). This one adds
what makes COCO hard, drawn with the same primitives as :mod:`.shapes`:

- 20 classes, each shape in 4 near-duplicates: a colour family (``red``, hue ±0.04 around
  0, or ``amber``, hue 0.09–0.15) × an aspect (``wide``, width/height 1.4–2.0, or ``tall``,
  0.5–0.71); a class differs from its neighbours by colour *or* aspect only;
- many small objects: longer side log-uniform in 8–64 px at 128 px (most under 32² area);
- 3–10 annotated objects per image and 2–6 distractors that are not classes (diamonds,
  thin bars, hexagons, and class shapes in non-class colours: green, violet, grey);
- heavier occlusion: objects keep at least 40 % of their pixels (default set: 60 %), and
  distractors may occlude them too.

:func:`render_image_hard` is a pure function of its random generator, as
:func:`.shapes.render_image`.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from alrp_cli.detection.data.shapes import _background, _shape_mask

HARD_GENERATOR_VERSION = 1
"""Bumped whenever the hard drawing changes; part of its cache key and ``alrp-synth.json``."""

HARD_SHAPES = ("circle", "square", "triangle", "cross", "ring")
HARD_COLOURS = {"red": (-0.04, 0.04), "amber": (0.09, 0.15)}
"""Hue ranges (HSV hue in [0, 1), wrapping) of the class colour families."""
HARD_ASPECTS = {"wide": (1.4, 2.0), "tall": (0.5, 1 / 1.4)}
"""Width / height ranges of the class aspects."""
HARD_CLASSES: tuple[str, ...] = tuple(
    f"{shape}-{colour}-{aspect}"
    for shape in HARD_SHAPES
    for colour in HARD_COLOURS
    for aspect in HARD_ASPECTS
)
"""The 20 class names, in category-id order: ``<shape>-<red|amber>-<wide|tall>``."""

DISTRACTOR_KINDS = ("diamond", "bar", "hexagon", "class-shape")
DISTRACTOR_HUES = ((0.25, 0.42), (0.72, 0.86))  # green, violet; plus unsaturated grey
MIN_VISIBLE_HARD = 0.4
OBJECTS = (3, 10)
DISTRACTORS = (2, 6)
SIDE_PX_AT_128 = (8.0, 64.0)


def _extra_mask(kind: str, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Boolean mask [size, size] of a distractor shape that is never a class."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if kind == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=255)
    elif kind == "bar":  # a thin bar along the longer side
        if x1 - x0 >= y1 - y0:
            draw.rectangle((x0, cy - 1.5, x1, cy + 1.5), fill=255)
        else:
            draw.rectangle((cx - 1.5, y0, cx + 1.5, y1), fill=255)
    elif kind == "hexagon":
        w, h = (x1 - x0) / 2, (y1 - y0) / 2
        angles = np.arange(6) * np.pi / 3
        draw.polygon([(cx + w * np.cos(a), cy + h * np.sin(a)) for a in angles], fill=255)
    else:  # pragma: no cover - kinds come from DISTRACTOR_KINDS
        raise ValueError(f"unknown distractor {kind!r}")
    return np.asarray(canvas) > 0


def _colour(rng: np.random.Generator, hue_range: tuple[float, float]) -> np.ndarray:
    hue = rng.uniform(*hue_range) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))) * 255


def _distractor_colour(rng: np.random.Generator) -> np.ndarray:
    pick = int(rng.integers(3))
    if pick == 2:  # grey
        return np.full(3, rng.uniform(60, 220))
    return _colour(rng, DISTRACTOR_HUES[pick])


def render_image_hard(
    rng: np.random.Generator, image_size: int
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draw one image of the hard preset.

    Returns ``(pixels, objects)`` as :func:`.shapes.render_image`: pixels uint8 [S, S, 3];
    objects ``(class_index into HARD_CLASSES, visible_mask bool [S, S])`` of the annotated
    objects only, in drawing order. Distractors are drawn among them, unannotated.
    """
    size = image_size
    canvas = _background(rng, size)
    owner = np.full((size, size), -1, dtype=np.int32)  # which item (object or distractor)
    full_area: list[int] = []
    labels: list[int] = []  # class index, or -1 for a distractor
    lo, hi = (max(4.0, v * size / 128) for v in SIDE_PX_AT_128)
    n_obj = int(rng.integers(OBJECTS[0], OBJECTS[1] + 1))
    n_dis = int(rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1))
    plan = rng.permutation(np.r_[np.zeros(n_obj, dtype=int), np.ones(n_dis, dtype=int)])
    for is_distractor in plan:
        for _try in range(20):
            side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            orient = int(rng.integers(4))
            if is_distractor:
                kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
                aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
                cls = -1
            else:
                cls = int(rng.integers(len(HARD_CLASSES)))
                shape, colour_name, aspect_name = HARD_CLASSES[cls].split("-")
                aspect = float(rng.uniform(*HARD_ASPECTS[aspect_name]))
            w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
            x0 = rng.uniform(0, size - 1 - w)
            y0 = rng.uniform(0, size - 1 - h)
            box = (x0, y0, x0 + w, y0 + h)
            if cls >= 0:
                mask = _shape_mask(shape, box, size, orient)
                colour = _colour(rng, HARD_COLOURS[colour_name])
            elif kind == "class-shape":
                mask = _shape_mask(HARD_SHAPES[orient % len(HARD_SHAPES)], box, size, orient)
                colour = _distractor_colour(rng)
            else:
                mask = _extra_mask(kind, box, size)
                colour = _distractor_colour(rng)
            if mask.sum() < 8:
                continue
            trial = owner.copy()
            trial[mask] = len(labels)
            visible = np.bincount(trial[trial >= 0].ravel(), minlength=len(labels) + 1)
            if all(
                visible[k] >= MIN_VISIBLE_HARD * a
                for k, a in enumerate(full_area)
                if labels[k] >= 0
            ):
                owner = trial
                full_area.append(int(mask.sum()))
                labels.append(cls)
                canvas[mask] = colour
                break
    noise = rng.uniform(-8, 8, size=canvas.shape)
    pixels = np.clip(np.rint(canvas + noise), 0, 255).astype(np.uint8)
    objects = [(labels[k], owner == k) for k in range(len(labels)) if labels[k] >= 0]
    return pixels, objects
