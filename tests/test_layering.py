"""Dependencies point one way: losses <- analysis <- detection <- cli (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# package folder -> import prefixes it must not use
FORBIDDEN = {
    "alrp_cli/losses": ("alrp_cli.", "analysis"),
    "alrp_cli/balance": ("alrp_cli.detection", "alrp_cli.cli", "analysis"),
    "analysis": ("alrp_cli.detection", "alrp_cli.cli", "alrp_cli.balance"),
    "alrp_cli/detection": ("alrp_cli.cli",),
}
ALLOWED = {"alrp_cli/losses": ("alrp_cli.losses",)}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layering(folder: str) -> None:
    root = REPO / folder
    if not root.exists():
        pytest.skip(f"{folder} does not exist yet")
    for path in [*root.rglob("*.py"), root.with_suffix(".py")]:
        if not path.is_file():
            continue
        for name in _imports(path):
            if name.startswith(ALLOWED.get(folder, ())):
                continue
            assert not name.startswith(FORBIDDEN[folder]), (
                f"{path.relative_to(REPO)} imports {name}"
            )
