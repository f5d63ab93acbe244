"""Drawing one synthetic image: coloured shapes on a textured background (PIL + numpy).

Shapes (circle, square, triangle, cross, ring) of varied size and aspect overlap and occlude
one another; colours are drawn independently of the class, so only the shape tells the
class. :func:`render_image` is a pure function of its random generator: the dataset writer
(:mod:`.synthetic`) seeds one generator per image.

A placement that would leave any object less than :data:`MIN_VISIBLE` visible is redrawn,
so every shape drawn is worth annotating and none is mostly hidden.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from alrp_cli.synth_names import SYNTH_CLASSES

GENERATOR_VERSION = 3
"""Bumped whenever the drawing changes; part of the cache key and of ``alrp-synth.json``."""

MIN_VISIBLE = 0.6
"""Every annotated object keeps at least this fraction of its pixels visible."""

MAX_OBJECTS = 6


def _object_size_range(image_size: int) -> tuple[float, float]:
    # ~12 px to ~60 px at the default 128 px, proportional otherwise.
    return max(8.0, image_size * 12 / 128), image_size * 60 / 128


def _shape_mask(kind: str, box: tuple[float, float, float, float], size: int, orient: int):
    """Boolean mask [size, size] of one shape filling ``box`` = (x0, y0, x1, y1)."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if kind == "circle":
        draw.ellipse(box, fill=255)
    elif kind == "square":
        draw.rectangle(box, fill=255)
    elif kind == "triangle":
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        points = [
            [(cx, y0), (x1, y1), (x0, y1)],  # pointing up
            [(x0, y0), (x1, y0), (cx, y1)],  # down
            [(x0, cy), (x1, y0), (x1, y1)],  # left
            [(x0, y0), (x1, cy), (x0, y1)],  # right
        ][orient % 4]
        draw.polygon(points, fill=255)
    elif kind == "cross":
        tw, th = max(2.0, 0.34 * w), max(2.0, 0.34 * h)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        draw.rectangle((cx - tw / 2, y0, cx + tw / 2, y1), fill=255)
        draw.rectangle((x0, cy - th / 2, x1, cy + th / 2), fill=255)
    elif kind == "ring":
        draw.ellipse(box, fill=255)
        # hole: 55% of the outer size, but keep the band at least 2 px wide
        bx, by = max(2.0, 0.225 * w), max(2.0, 0.225 * h)
        if w - 2 * bx >= 2 and h - 2 * by >= 2:
            draw.ellipse((x0 + bx, y0 + by, x1 - bx, y1 - by), fill=0)
    else:  # pragma: no cover - kinds come from SYNTH_CLASSES
        raise ValueError(f"unknown shape {kind!r}")
    return np.asarray(canvas) > 0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float [size, size, 3]: a desaturated base colour, smooth blotches and faint stripes."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0, 0.25), rng.uniform(0.3, 0.8)
    base = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255
    grid = int(rng.integers(3, 9))
    coarse = rng.normal(0, 1, size=(grid, grid, 3)).astype(np.float32)
    blotches = np.stack(
        [
            np.asarray(Image.fromarray(coarse[..., c]).resize((size, size), Image.BICUBIC))
            for c in range(3)
        ],
        axis=-1,
    )
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    return base + 14 * blotches + rng.uniform(0, 8) * stripes[..., None]


def _object_colour(rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    """A saturated colour at RGB distance >= 80 from every colour in ``avoid`` (best of 20)."""
    best, best_dist = None, -1.0
    for _ in range(20):
        hue, sat, val = rng.uniform(0, 1), rng.uniform(0.55, 1.0), rng.uniform(0.5, 1.0)
        colour = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255
        dist = min((float(np.linalg.norm(colour - a)) for a in avoid), default=1e9)
        if dist >= 80:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best


def render_image(
    rng: np.random.Generator, image_size: int, classes: Sequence[str] = SYNTH_CLASSES
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draw one image.

    Returns ``(pixels, objects)``: pixels uint8 [S, S, 3]; objects a list of
    ``(class_index, visible_mask)`` with class_index into ``classes`` and visible_mask
    bool [S, S], in drawing order (later objects occlude earlier ones).
    """
    size = image_size
    canvas = _background(rng, size)
    bg_mean = canvas.reshape(-1, 3).mean(0)
    owner = np.full((size, size), -1, dtype=np.int32)  # which object each pixel shows
    full_area: list[int] = []
    kinds: list[int] = []
    colours: list[np.ndarray] = []
    lo, hi = _object_size_range(size)
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        for _try in range(20):
            cls = int(rng.integers(len(classes)))
            side = float(rng.uniform(lo, hi))  # uniform, not log-uniform: fewer tiny boxes
            aspect = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
            # ``side`` is the longer side: boxes stay within the documented size range
            w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
            x0 = rng.uniform(0, size - 1 - w)
            y0 = rng.uniform(0, size - 1 - h)
            orient = int(rng.integers(4))
            mask = _shape_mask(classes[cls], (x0, y0, x0 + w, y0 + h), size, orient)
            if mask.sum() < 12:
                continue
            trial = owner.copy()
            trial[mask] = len(kinds)
            visible = np.bincount(trial[trial >= 0].ravel(), minlength=len(kinds) + 1)
            if all(visible[k] >= MIN_VISIBLE * a for k, a in enumerate(full_area)):
                owner = trial
                full_area.append(int(mask.sum()))
                kinds.append(cls)
                colour = _object_colour(rng, [bg_mean, *colours])
                colours.append(colour)
                canvas[mask] = colour
                break
    noise = rng.uniform(-6, 6, size=canvas.shape)
    pixels = np.clip(np.rint(canvas + noise), 0, 255).astype(np.uint8)
    objects = [(kinds[k], owner == k) for k in range(len(kinds))]
    return pixels, objects
