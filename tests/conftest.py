"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "coco-val2014-100"


@pytest.fixture
def shared_coco() -> Path:
    """The real COCO val2014 subset from ../shared/data, or skip when it is absent."""
    if not (SHARED_DATA / "instances_val2014_100.json").exists():
        pytest.skip("../shared/data/coco-val2014-100 is not present")
    return SHARED_DATA
