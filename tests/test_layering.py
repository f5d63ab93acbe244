"""Dependencies point one way: losses <- analysis <- detection <- cli (docs/design.md).

``alrp_cli/integrations`` sits beside ``detection``: it may use the losses (and the shared
helpers such as ``alrp_cli.atomic``), nothing of detection, the CLI, balance or analysis;
it is the only package that imports torchvision's detector classes.

The registry of losses (``alrp_cli/registry``) is read by all of them, analysis included,
so it uses only the losses and the shared helpers; so do the shared modules that flatten
head outputs into loss inputs and read and write ``loss_inputs.pt``, which detection and
integrations both use. The training configuration's declaration (``alrp_cli/config``) is
read by the CLI and by detection, so it too uses only the registry and the shared helpers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

# What a module every layer reads must not use: any layer.
SHARED = (
    "alrp_cli.detection",
    "alrp_cli.cli",
    "alrp_cli.balance",
    "alrp_cli.integrations",
    "analysis",
)
# package folder (or module, without .py) -> import prefixes it must not use
FORBIDDEN = {
    "alrp_cli/losses": ("alrp_cli.", "analysis"),
    "alrp_cli/balance": ("alrp_cli.detection", "alrp_cli.cli", "analysis"),
    "analysis": ("alrp_cli.detection", "alrp_cli.cli", "alrp_cli.balance"),
    "alrp_cli/detection": ("alrp_cli.cli",),
    "alrp_cli/integrations": ("alrp_cli.detection", "alrp_cli.cli", "alrp_cli.balance", "analysis"),
    "alrp_cli/registry": SHARED,
    "alrp_cli/loss_inputs": (*SHARED, "alrp_cli.registry"),
    "alrp_cli/loss_inputs_file": (*SHARED, "alrp_cli.registry"),
    # the training configuration, read by the CLI's tree of every command: plain data
    "alrp_cli/config": SHARED,
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
    if not root.exists() and not root.with_suffix(".py").is_file():
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


# torchvision's detector classes (and their builders), which only alrp_cli/integrations knows.
DETECTOR_MODULES = ("torchvision.models.detection.retinanet", "torchvision.models.detection.fcos")
DETECTOR_NAMES = ("RetinaNet", "RetinaNetHead", "FCOS", "FCOSHead", "retinanet_", "fcos_")


def _detector_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(DETECTOR_MODULES)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "torchvision.models.detection"
        ):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name in DETECTOR_NAMES[:4] or a.name.startswith(DETECTOR_NAMES[4:])
            ]
    return found


def test_only_integrations_import_torchvisions_detector_classes() -> None:
    for package in ("alrp_cli", "analysis"):
        for path in (REPO / package).rglob("*.py"):
            if path.is_relative_to(REPO / "alrp_cli" / "integrations"):
                continue
            assert not _detector_imports(path), f"{path.relative_to(REPO)} imports a detector"
    own = REPO / "alrp_cli" / "integrations" / "torchvision.py"
    assert _detector_imports(own)  # the check sees the imports it is meant to catch


def _test_module_imports(source: str, package: str) -> list[str]:
    """The test modules (``test_*``) and conftest files that ``source``, a module of the
    dotted ``package``, imports: ``import tests.a.test_b``, ``from tests.a.test_b import f``,
    ``from tests.a import test_b``, ``from .test_b import f``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            modules = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        found += [
            m
            for m in modules
            if any(p.startswith("test_") or p == "conftest" for p in m.split("."))
        ]
    return found


def test_no_test_module_imports_another() -> None:
    """What test modules share lives in tests/helpers (or in a conftest.py as a fixture), so
    a test module can be moved or renamed without breaking another."""
    sources = [*(REPO / "tests").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    assert any(p.parts[-2:] == ("helpers", "world.py") for p in sources)
    for path in sources:
        package = ".".join(path.relative_to(REPO).parent.parts)
        found = _test_module_imports(path.read_text(), package)
        assert not found, f"{path.relative_to(REPO)} imports {found}"


def test_the_test_module_checker_sees_each_spelling() -> None:
    spellings = {
        "import tests.cli.test_train": ["tests.cli.test_train"],
        "from tests.cli.test_train import tiny": [
            "tests.cli.test_train",
            "tests.cli.test_train.tiny",
        ],
        "from tests.cli import test_train": ["tests.cli.test_train"],
        "from .test_train import tiny": ["tests.cli.test_train", "tests.cli.test_train.tiny"],
        "from tests.conftest import REPO": ["tests.conftest", "tests.conftest.REPO"],
        "from tests.helpers.world import invoke": [],
        "from ..helpers import world": [],
    }
    for source, expected in spellings.items():
        assert _test_module_imports(source, "tests.cli") == expected, source
