"""Fixtures of the detection tests: a tiny synthetic COCO dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detection.tiny import make_tiny_coco


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training and 4 validation images of 64 px, in the COCO layout."""
    return make_tiny_coco(tmp_path_factory.mktemp("tiny") / "coco")
