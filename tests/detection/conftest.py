"""Fixtures of the detection tests: a tiny synthetic COCO dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.tiny_training import make_tiny_coco


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training and 4 validation images of 64 px, in the COCO layout."""
    return make_tiny_coco(tmp_path_factory.mktemp("tiny") / "coco")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test: tiny convolutions gain nothing from threads, and on
    a busy machine oversubscribed threads make them many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
