"""The data preview writes the image format its suffix names, or refuses the name."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from alrp_cli.detection.data.preview import render_preview
from alrp_cli.errors import UserError


def _val(tiny_coco: Path) -> tuple[Path, Path]:
    return tiny_coco / "val2017", tiny_coco / "annotations" / "instances_val2017.json"


@pytest.mark.parametrize(
    ("name", "fmt", "magic"),
    [
        ("p.png", "PNG", b"\x89PNG\r\n\x1a\n"),
        ("p.jpg", "JPEG", b"\xff\xd8\xff"),
        ("p.JPEG", "JPEG", b"\xff\xd8\xff"),
        ("p.webp", "WEBP", b"RIFF"),
    ],
)
def test_writes_the_format_the_suffix_names(
    tiny_coco: Path, tmp_path: Path, name: str, fmt: str, magic: bytes
) -> None:
    out = tmp_path / name
    ids = render_preview(*_val(tiny_coco), out, num_images=2, cols=2, cell=32)
    assert len(ids) == 2
    assert out.read_bytes().startswith(magic)
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (2 * 32 + 3 * 4, 32 + 2 * 4)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


@pytest.mark.parametrize("name", ["p.gif", "p.pdf", "preview", "p.png.txt"])
def test_refuses_a_suffix_it_cannot_write(tiny_coco: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    with pytest.raises(UserError, match=r"name the image \.png, \.jpg, \.jpeg or \.webp") as err:
        render_preview(*_val(tiny_coco), out, num_images=1)
    assert str(out) in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()
