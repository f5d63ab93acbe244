"""A contact sheet of a COCO dataset's images with their boxes and class names drawn on.

For looking at data before training on it (``alrp data preview``) and for the pictures in
docs/data.md. Plain PIL drawing: one grid image, no plotting library needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from alrp_cli.atomic import atomic_path
from alrp_cli.detection.data.coco import image_problem, load_coco
from alrp_cli.errors import UserError
from alrp_cli.limits import check_fits

PathLike = str | os.PathLike[str]
# One colour per category (cycled): distinct, readable on light and dark backgrounds.
_PALETTE = ["#ffffff", "#000000", "#ff1493", "#00e5ff", "#ffd700", "#7cfc00", "#ff4500"]
#: Output suffix (lower case) -> the PIL format written.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def image_format(path: PathLike) -> str:
    """The PIL format ``path``'s suffix names (PNG, JPEG or WEBP); UserError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        named = f"suffix {suffix!r}" if suffix else "no suffix"
        raise UserError(
            f"{path}: {named}; name the image .png, .jpg, .jpeg or .webp to choose its format"
        )
    return FORMATS[suffix]


def render_preview(
    images_dir: PathLike,
    ann_file: PathLike,
    out: PathLike,
    *,
    num_images: int = 12,
    cols: int = 4,
    cell: int = 256,
) -> list[int]:
    """Draw the first ``num_images`` images with their boxes into a grid image; return their ids.

    Each image is resized to ``cell`` x ``cell`` pixels (aspect not kept); boxes are drawn
    in one colour per category with the category name; crowd boxes in grey. The file is
    written atomically in the format its suffix names (:func:`image_format`: PNG, JPEG at
    quality 90, or lossless WebP); any other suffix is refused before any work.
    """
    fmt = image_format(out)
    if num_images < 1 or cols < 1 or cell < 16:
        raise UserError(
            f"preview needs --num >= 1, --cols >= 1, --cell >= 16; got {num_images}, {cols}, {cell}"
        )
    coco = load_coco(ann_file)
    ids = sorted(coco.imgs)[:num_images]
    if not ids:
        raise UserError(f"{ann_file}: no images to preview")
    cols = min(cols, len(ids))  # more columns than images would only widen the sheet
    rows = (len(ids) + cols - 1) // cols
    width, height = cols * cell + (cols + 1) * 4, rows * cell + (rows + 1) * 4
    check_fits(3 * (width * height + cell * cell), "--cell", what=f"a {width} × {height} sheet")
    cats = sorted(coco.cats)
    colour = {cid: _PALETTE[i % len(_PALETTE)] for i, cid in enumerate(cats)}
    sheet = Image.new("RGB", (width, height), "white")
    font = ImageFont.load_default()
    for n, image_id in enumerate(ids):
        info = coco.imgs[image_id]
        path = Path(images_dir) / info["file_name"]
        problem = image_problem(path)
        if problem is not None:
            raise UserError(f"{path}: {problem}")
        with Image.open(path) as im:
            w, h = im.size
            tile = im.convert("RGB").resize((cell, cell), Image.NEAREST)
        sx, sy = cell / w, cell / h
        draw = ImageDraw.Draw(tile)
        for ann in coco.imgToAnns[image_id]:
            x, y, bw, bh = ann["bbox"]
            box = (x * sx, y * sy, (x + bw) * sx - 1, (y + bh) * sy - 1)
            c = "#808080" if ann.get("iscrowd", 0) else colour[ann["category_id"]]
            draw.rectangle(box, outline=c, width=2)
            name = str(coco.cats[ann["category_id"]].get("name", ann["category_id"]))
            tx, ty = box[0] + 2, max(0.0, box[1] - 11)
            draw.rectangle(draw.textbbox((tx, ty), name, font=font), fill=c)
            draw.text((tx, ty), name, fill="black" if c != "#000000" else "white", font=font)
        r, col = divmod(n, cols)
        sheet.paste(tile, (4 + col * (cell + 4), 4 + r * (cell + 4)))
    options = {"JPEG": {"quality": 90}, "WEBP": {"lossless": True}}.get(fmt, {})
    with atomic_path(out) as tmp:
        sheet.save(tmp, format=fmt, **options)
    return ids
