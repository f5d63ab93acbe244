"""Fixtures of the detection tests: a tiny synthetic COCO dataset."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training and 4 validation images of 64 px, in the COCO layout."""
    from alrp_cli.detection.data import make_synthetic_coco

    return make_synthetic_coco(
        tmp_path_factory.mktemp("tiny") / "coco", num_train=8, num_val=4, image_size=64
    )
