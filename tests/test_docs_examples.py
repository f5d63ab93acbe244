"""The Python examples in the user docs run as written."""

from __future__ import annotations

import re

import pytest

from tests.helpers.paths import REPO

PAGES = ["losses.md"]


def _blocks(page: str) -> list[str]:
    text = (REPO / "docs" / page).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page: str) -> None:
    blocks = _blocks(page)
    assert blocks, f"docs/{page} has no python example"
    for code in blocks:
        exec(compile(code, f"docs/{page}", "exec"), {})


def test_loss_docstring_examples() -> None:
    import doctest

    import torch

    from alrp_cli.losses import alrp, ap

    for module in (alrp, ap):
        result = doctest.testmod(module, extraglobs={"torch": torch}, verbose=False)
        assert result.attempted > 0 and result.failed == 0, module.__name__
