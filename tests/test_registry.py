"""The registry of losses is complete, is the only place that lists them, and is where the
anchors resolve."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest
from torch import nn

from alrp_cli import registry
from alrp_cli.config.presets import PRESETS
from alrp_cli.config.training import CHOICES, TrainConfig
from alrp_cli.detection.anchors import anchor_sizes
from alrp_cli.detection.build import build_model
from alrp_cli.detection.model import Detector
from alrp_cli.registry import NEEDS, SELF_BALANCE, LossEntry
from tests.helpers.paths import REPO

ENTRIES = registry.entries()
#: A source cites a file of the official code and a line (or lines) of it.
SOURCE = re.compile(r"^[\w./-]+\.(py|md):\d+(-\d+)?\b")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_entry_is_complete(entry: LossEntry) -> None:
    assert entry.name == entry.name.lower() and entry.name.isidentifier()
    assert entry.label and entry.title and entry.needs <= set(NEEDS)
    assert callable(entry.function)  # its functional form
    assert entry.balance is not None  # every loss is checked, or shown for contrast
    if entry.balance.checked:  # a ranking loss with an update to check: its own kernels
        assert entry.balance.bounded and entry.balance.reference is not None
        assert entry.reference is not None
    if entry.reference is not None:
        assert isinstance(entry.module, type) and issubclass(entry.module, nn.Module)
        assert entry.delta is not None and entry.delta >= 0
        assert entry.bench is not None and entry.analysis is not None
    if entry.head is not None:
        assert entry.module is not None
    if entry.train is None:
        assert entry.recipe is None and SELF_BALANCE not in entry.needs
        return
    assert (SELF_BALANCE in entry.needs) == (entry.train.make_state is not None)
    recipe = entry.recipe
    assert recipe is not None
    assert set(recipe.anchors) == set(CHOICES["assigner"])  # anchors for every assigner
    assert set(recipe.coco) <= set(PRESETS["coco"])
    assert set(recipe.by_assigner) <= set(CHOICES["assigner"])
    for values in recipe.by_assigner.values():
        assert set(values) <= set(PRESETS["coco"])
    for name, value in recipe.sourced().items():
        assert SOURCE.match(value.source), f"{entry.name} {name}: source {value.source!r}"


def test_names_roles_and_lookup() -> None:
    assert registry.names() == tuple(registry.LOSSES)
    assert registry.DEFAULT_LOSS in registry.names("train")
    for role in registry.ROLES:
        assert set(registry.names(role)) <= set(registry.names())
        for name in registry.names(role):
            assert getattr(registry.get(name, role), role) is not None
    assert CHOICES["loss"] == registry.names("train")
    keys = [m.key for m in registry.measures()]
    assert len(keys) == len(set(keys)) > 0
    with pytest.raises(ValueError, match=r"loss must be one of .*, got 'hinge'"):
        registry.get("hinge")
    no_head = next(n for n in registry.names("train") if n not in registry.names("head"))
    with pytest.raises(ValueError, match=f"got '{no_head}'"):
        registry.get(no_head, "head")
    with pytest.raises(ValueError, match="role must be one of"):
        registry.names("figures")


def test_the_catalog_lists_every_entry_in_its_roles() -> None:
    # The catalog is what the command line reads without torch; the entries are the truth.
    assert tuple(registry.LOSSES) == registry.names() == tuple(c.name for c in registry.CATALOG)
    for listing in registry.CATALOG:
        entry = registry.LOSSES[listing.name]
        assert entry.name == listing.name
        offered = tuple(r for r in registry.ROLES if getattr(entry, r) is not None)
        assert listing.roles == offered, f"{listing.name}: catalog {listing.roles}, entry {offered}"
    assert registry.LOSSES[registry.DEFAULT_LOSS].train is not None


def test_listing_the_losses_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from alrp_cli import registry\n"
        "listed = [registry.names(r) for r in registry.ROLES], registry.DEFAULT_LOSS\n"
        "before = 'torch' in sys.modules\n"
        "registry.get(registry.DEFAULT_LOSS)\n"
        "print(before, 'torch' in sys.modules, 'torchvision' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.split() == ["False", "True", "False"]  # the entries load on first use


def test_recipe_values_apply_by_assigner() -> None:
    alrp = registry.get(registry.DEFAULT_LOSS, "train").recipe
    assert alrp is not None and alrp.by_assigner  # aLRP's max-IoU schedule
    assigner, values = next(iter(alrp.by_assigner.items()))
    other = next(a for a in CHOICES["assigner"] if a != assigner)
    with_it = alrp.coco_values(PRESETS["coco"], assigner)
    without = alrp.coco_values(PRESETS["coco"], other)
    for key, value in values.items():
        assert with_it[key] == value.value and without[key] == PRESETS["coco"][key]
    with_it[next(iter(values))].append(1.0)  # lists are copies: the recipe stays as it was
    assert alrp.coco_values(PRESETS["coco"], assigner) != with_it


@pytest.mark.parametrize("loss", registry.names("train"))
@pytest.mark.parametrize("assigner", CHOICES["assigner"])
def test_anchors_resolve_in_the_recipe_and_the_detector_is_built_with_them(
    loss: str, assigner: str
) -> None:
    recipe = registry.get(loss, "train").recipe
    assert recipe is not None
    scales, ratios = recipe.anchors_for(assigner)
    for options in ({}, {"train_ann": "a.json"}):  # synthetic and COCO presets
        cfg = TrainConfig.from_options(loss=loss, assigner=assigner, **options).resolved()
        assert (cfg.model.anchor_scales_per_octave, cfg.model.anchor_ratios) == (scales, ratios)
    cfg = TrainConfig.from_options(loss=loss, assigner=assigner, head_channels=16).resolved()
    built = [build_model(cfg.model, 2).anchors]
    if loss == registry.DEFAULT_LOSS:  # a Detector built without anchors: the same ones
        built.append(Detector(2, backbone="resnet18", assigner=assigner, head_channels=16).anchors)
    for anchors in built:
        assert anchors.num_per_location == scales * len(ratios)
        assert anchors.generator.sizes == anchor_sizes(scales)
        assert all(r == tuple(ratios) for r in anchors.generator.aspect_ratios)
    with pytest.raises(ValueError, match="assigner must be one of"):
        recipe.anchors_for("fcos")


# ---------------------------------------------------------------------------------------
# No loss is listed anywhere but in the registry (and the loss's own kernels).

#: Folders and files whose code may not list losses or compare with a loss's name.
SCANNED = ("alrp_cli", "analysis", "benchmarks")
#: Where the losses are defined: the registry, and the losses' own kernels.
OWN = ("alrp_cli/registry", "alrp_cli/losses")
#: Benchmarks that time named losses against each other on purpose (not "every loss").
NAMED_ON_PURPOSE = {
    "benchmarks/bench_train_step.py": "times an aLRP step against a focal-loss step",
    "benchmarks/bench_torchvision_head.py": "times the aLRP head against torchvision's",
}
LOSS_NAMES = set(registry.names())
# Two or more loss names in one string, separated as a list is: "alrp, ap", "ap | focal".
LISTED = re.compile(
    rf"\b({'|'.join(sorted(LOSS_NAMES))})\b\s*(,|\||/|\bor\b|\band\b)\s*"
    rf"\b({'|'.join(sorted(LOSS_NAMES))})\b"
)


def _is_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in LOSS_NAMES


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def loss_listings(source: str) -> list[tuple[int, str]]:
    """(line, what) of every place ``source`` lists losses or tests a loss's name: a
    tuple, list or set literal or the keys of a dict holding two loss names or more, a
    comparison with a loss name, or a string (not a docstring) listing loss names."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            names = {n.value for n in items if n is not None and _is_name(n)}  # type: ignore[union-attr]
            if len(names) >= 2:
                found.append((node.lineno, f"a literal of losses {sorted(names)}"))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            inner = [
                e for o in operands if isinstance(o, ast.Tuple | ast.List | ast.Set) for e in o.elts
            ]
            if any(_is_name(o) for o in [*operands, *inner]):
                found.append((node.lineno, "a comparison with a loss name"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and LISTED.search(node.value)
        ):
            found.append((node.lineno, f"a string listing losses {node.value[:40]!r}"))
    return found


def test_the_checker_sees_what_it_is_meant_to_catch() -> None:
    caught = loss_listings(
        'LOSSES = ("alrp", "ap", "focal")\n'
        'if kind == "alrp":\n    pass\n'
        'ok = loss in ["focal"]\n'
        'NAMES = {"alrp": "aLRP", "bce": "BCE"}\n'
        'HELP = "Loss: alrp | ap | focal."\n'
    )
    assert [line for line, _ in caught] == [1, 2, 4, 5, 6]
    fine = (
        'def f(loss: str = "alrp"):\n    """Default "alrp", or "ap", or "focal"."""\n'
        'args = ["alrp", "check-balance", "--loss", loss]\n'
        'value = r.losses["mean"]["alrp"]\n'
    )
    assert loss_listings(fine) == []


def test_no_loss_is_listed_outside_the_registry() -> None:
    problems = []
    for folder in SCANNED:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(OWN) or rel in NAMED_ON_PURPOSE:
                continue
            problems += [f"{rel}:{line}: {what}" for line, what in loss_listings(path.read_text())]
    assert not problems, "list losses through alrp_cli.registry:\n" + "\n".join(problems)


def test_the_registry_imports_neither_torchvision_nor_detection() -> None:
    code = (
        "import sys, alrp_cli.registry, alrp_cli.loss_inputs, alrp_cli.loss_inputs_file\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'"
        " or m.startswith(('alrp_cli.detection', 'alrp_cli.balance', 'analysis'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"
