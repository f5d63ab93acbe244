"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.error import URLError

import pytest

from tests.helpers.paths import SHARED_DATA

if TYPE_CHECKING:
    from tests.helpers.world import World


@pytest.fixture
def shared_coco() -> Path:
    """The real COCO val2014 subset shipped in data/: 100 images' annotations + results."""
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def no_downloads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests never touch the network: torch's cache is an empty temporary folder (also for
    the processes tests start) and torch.hub's download raises. Yields the cache folder."""
    import torch.hub

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise URLError(f"tests never download ({url})")

    home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.setattr(torch.hub, "download_url_to_file", offline)
        yield home


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Valid inputs of every command, made once (tests/helpers/world.py)."""
    from tests.helpers.world import make_world  # torch and the CLI: only where needed

    return make_world(tmp_path_factory.mktemp("world"))
