"""Images are read as COCO's boxes see them: RGB uint8, the stored pixel grid (EXIF
orientation ignored), the same pixels as PIL; undecodable files name themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alrp_cli.detection.data.decode import read_rgb
from alrp_cli.errors import UserError
from tests.helpers.photos import as_array, photo_dir


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    image = Image.open(photo_dir() / "coffee.png").convert("RGB")  # 600 x 400
    image.load()
    return image


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpegs_of_every_colour_model_become_pils_rgb(
    photo: Image.Image, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / f"{mode}.jpg"
    photo.convert(mode).save(path, quality=90)
    image = read_rgb(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 400, 600)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), as_array(path))
    if mode == "L":
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_exif_orientation_is_ignored(photo: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    photo.save(path, quality=90, exif=exif)
    assert Image.open(path).getexif()[0x0112] == 6
    image = read_rgb(path)
    assert image.shape == (3, 400, 600)  # stored 600 wide, as COCO's width and boxes say
    assert np.array_equal(image.permute(1, 2, 0).numpy(), as_array(path))


@pytest.mark.parametrize("suffix, mode", [(".png", "RGBA"), (".png", "P"), (".bmp", "RGB"),
                                          (".tif", "RGB"), (".webp", "RGB")])  # fmt: skip
def test_other_formats(photo: Image.Image, tmp_path: Path, suffix: str, mode: str) -> None:
    path = tmp_path / f"image{suffix}"
    small = photo.resize((60, 40)).convert(mode)
    small.save(path, **({"lossless": True} if suffix == ".webp" else {}))
    image = read_rgb(path)
    assert image.shape == (3, 40, 60)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), as_array(path))


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    assert read_rgb(path)[0].flatten().tolist() == [0, 128, 255]


def test_unreadable_and_missing_files_are_user_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"not a jpeg" * 10)
    with pytest.raises(UserError, match=f"{bad}: not a readable image"):
        read_rgb(bad)
    text = tmp_path / "text.png"
    text.write_text("hello")
    with pytest.raises(UserError, match=f"{text}: not a readable image"):
        read_rgb(text)
    with pytest.raises(UserError, match="missing"):
        read_rgb(tmp_path / "nope.jpg")
