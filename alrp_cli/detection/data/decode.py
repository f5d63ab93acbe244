"""Reading an image file as COCO's annotations see it: RGB, uint8, EXIF orientation ignored.

JPEG, PNG, GIF and WebP are decoded by ``torchvision.io`` (libjpeg-turbo / libpng), which
on COCO-sized JPEGs is faster than PIL (benchmarks/bench_data.py; docs/benchmarks.md);
other formats (BMP, TIFF, ...) by PIL, and everything by PIL where torchvision no longer
decodes images (torchvision 0.29 deprecates its decoders in favour of TorchCodec; the
deprecation warning is silenced here, since the fallback is in place).

Grayscale, palette and CMYK images become RGB (the same pixels as PIL's ``convert("RGB")``);
the EXIF orientation tag is not applied, because COCO's boxes refer to the stored pixel
grid (``decode_image(apply_exif_orientation=False)``, as PIL's ``Image.open``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

try:
    from torchvision.io import ImageReadMode, decode_image, read_file
except ImportError:  # a torchvision without image decoders: PIL decodes everything
    decode_image = None  # type: ignore[assignment]

from alrp_cli.errors import UserError

# What torchvision.io decodes (by file signature); the rest goes to PIL.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")


def _torchvision_decodes(head: bytes) -> bool:
    if decode_image is None:
        return False
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _decode_torchvision(path: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)


def read_rgb(path: str | os.PathLike[str]) -> tv_tensors.Image:
    """The image at ``path`` as ``tv_tensors.Image`` uint8 [3, H, W] (RGB, stored orientation).

    A missing or undecodable file is a :class:`UserError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: image file listed in the annotations is missing")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        if _torchvision_decodes(head):
            image = _decode_torchvision(path)
        else:
            with Image.open(path) as img:
                image = F.pil_to_tensor(img.convert("RGB"))
    except (RuntimeError, UnidentifiedImageError, OSError) as err:
        raise UserError(f"{path}: not a readable image ({err})") from None
    if image.dtype != torch.uint8:  # 16-bit PNG
        image = F.to_dtype(image, torch.uint8, scale=True)
    # torchvision.io returns a channels-last view: a contiguous [3, H, W], as from PIL
    return tv_tensors.Image(image.contiguous())
