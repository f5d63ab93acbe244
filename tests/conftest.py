"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Real COCO data shipped in the repository (data/coco-val2014-100/README.md: provenance).
SHARED_DATA = REPO / "data" / "coco-val2014-100"


@pytest.fixture
def shared_coco() -> Path:
    """The real COCO val2014 subset shipped in data/: 100 images' annotations + results."""
    return SHARED_DATA
