"""Bad images are found before training starts (exit 2 naming the file, no run folder claimed),
or left out and counted with --skip-bad-images."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from alrp_cli.detection.data import coco_layout
from alrp_cli.detection.data.coco import image_problem
from tests.helpers.tiny_training import TINY_CLI_OPTIONS
from tests.helpers.world import World, assert_refused, digest, invoke


@pytest.fixture
def dataset(world: World, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset, to damage."""
    return Path(shutil.copytree(world.data, tmp_path / "coco"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def bomb(path: Path, side: int = 60000) -> None:
    """A 68-byte PNG whose header declares side × side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )  # fmt: skip


DAMAGE = {
    "bomb": (bomb, "decompression bomb"),
    "truncated": (_truncate, "truncated PNG"),
    "not-an-image": (lambda p: p.write_text("hello"), "not a readable image"),
    "missing": (lambda p: p.unlink(), "missing"),
}


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_bad_image_stops_before_training(
    dataset: Path, tmp_path: Path, split: str, damage: str
) -> None:
    paths = coco_layout(dataset)
    folder = paths.train_images if split == "train" else paths.val_images
    assert folder is not None
    victim = sorted(folder.iterdir())[1]
    make, message = DAMAGE[damage]
    make(victim)
    before = digest(dataset)
    out = tmp_path / "run"
    result = invoke(["train", "--data", dataset, *TINY_CLI_OPTIONS, "--out", out])
    assert_refused(result, victim, message)
    assert not out.exists(), "no run folder for a run that never started"
    assert digest(dataset) == before


def test_skip_bad_images_leaves_bad_training_images_out_and_counts_them(
    dataset: Path, tmp_path: Path
) -> None:
    paths = coco_layout(dataset)
    assert paths.train_images is not None
    victims = sorted(paths.train_images.iterdir())[:2]
    _truncate(victims[0])
    bomb(victims[1])
    out = tmp_path / "run"
    args = ["train", "--data", dataset, *TINY_CLI_OPTIONS, "--epochs", "1", "--out", out]
    result = invoke([*args, "--skip-bad-images", "--eval-every", "5"])
    assert result.exit_code == 0, result.output
    assert "skipped 2 bad training images" in result.stderr
    # 8 training images less 2 leave one batch of 4 per epoch
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in metrics if r["type"] == "epoch"] == [1]


def test_a_bad_validation_image_is_not_skipped(dataset: Path, tmp_path: Path) -> None:
    paths = coco_layout(dataset)
    assert paths.val_images is not None
    victim = sorted(paths.val_images.iterdir())[0]
    victim.write_text("hello")
    args = ["train", "--data", dataset, *TINY_CLI_OPTIONS, "--out", tmp_path / "run"]
    assert_refused(invoke([*args, "--skip-bad-images"]), victim)


def test_image_problem_on_good_and_truncated_jpeg(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "x.jpg"
    Image.effect_noise((256, 256), 60).convert("RGB").save(path)  # header ≪ half the file
    assert image_problem(path) is None
    _truncate(path)
    assert image_problem(path) == "truncated JPEG (no end-of-image marker)"


def test_predict_and_preview_refuse_a_bomb(world: World, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    victim = images / "000001.png"
    bomb(victim)
    before = digest(images)
    out = tmp_path / "p.json"
    result = invoke(["predict", world.checkpoint, "--images", images, "-o", out])
    assert_refused(result, victim, "decompression bomb")
    data = Path(shutil.copytree(world.data, tmp_path / "coco"))
    paths = coco_layout(data)
    assert paths.val_images is not None and paths.val_ann is not None
    victim = sorted(paths.val_images.iterdir())[0]
    bomb(victim)
    before.update(digest(data, world.checkpoint))
    args = ["--images", paths.val_images, "--ann", paths.val_ann]
    result = invoke(["predict", world.checkpoint, *args, "-o", out])
    assert_refused(result, victim, "decompression bomb")
    result = invoke(["data", "preview", *args, "-o", tmp_path / "p.png"])
    assert_refused(result, victim, "decompression bomb")
    assert digest(images, data, world.checkpoint) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "images"]
