"""Paths the docs spell out are the ones the code makes (the synthetic dataset's cache folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alrp_cli.detection.data import synthetic
from tests.helpers.paths import REPO

PAGES = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
CACHE_NAME = re.compile(r"synth-v(\d+)-seed(\d+)-n(\d+)-(\d+)-s(\d+)\b")


class _Built(Exception):
    """Stops synthetic_dataset_dir where it would start building, carrying the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder


def _folder_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **params: int) -> str:
    """The cache folder name the code gives these parameters (nothing is built)."""

    def stop(folder: Path, **kwargs: object) -> Path:
        raise _Built(Path(folder))

    monkeypatch.setenv("ALRP_CACHE", str(tmp_path))
    monkeypatch.setattr(synthetic, "make_synthetic_coco", stop)
    with pytest.raises(_Built) as built:
        synthetic.synthetic_dataset_dir(**params)
    return built.value.folder.name


def test_synthetic_cache_folders_named_in_the_docs_are_the_codes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    named = {
        m.group(0): m.groups() for page in PAGES for m in CACHE_NAME.finditer(page.read_text())
    }
    assert named, "the docs name the synthetic cache folder somewhere"
    for name, (_, seed, n_train, n_val, size) in named.items():
        params = {"seed": int(seed), "num_train": int(n_train), "num_val": int(n_val)}
        expected = _folder_name(monkeypatch, tmp_path, **params, image_size=int(size))
        assert name == expected, f"the docs name {name}; the code makes {expected}"
