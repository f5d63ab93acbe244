"""One torch thread for the integration tests: the tiny models gain nothing from two, and
on a shared 2-core machine two threads are many times slower (docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
