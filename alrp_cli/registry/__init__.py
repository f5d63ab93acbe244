"""The registry of losses: the one place that lists them.

Every command and module that offers a choice of loss reads :data:`LOSSES`: ``alrp train``
(names, recipes, anchors, the detector's loss), ``alrp bench``, ``alrp check-balance``,
``alrp analyze``, the torchvision heads, the figures and ``benchmarks/compare_losses.py``.
Each loss has one file here (its :class:`~alrp_cli.registry.entry.LossEntry`) beside its
own kernels; adding a loss is that file, its kernels and one line below (see
docs/losses.md, "Adding a loss").

Importing the registry imports torch and :mod:`alrp_cli.losses`, nothing heavier.
"""

from __future__ import annotations

from types import MappingProxyType

from alrp_cli.registry import alrp, ap, bce, focal, rs
from alrp_cli.registry.entry import (
    BALANCED,
    IOUS,
    LOC_ERRORS,
    NEEDS,
    SELF_BALANCE,
    ZERO_SUM,
    AnalysisForm,
    BalanceForm,
    BalancePart,
    BenchForm,
    HeadForm,
    LossEntry,
    LossParts,
    Measure,
    Recipe,
    Sourced,
    Style,
    TrainForm,
)

#: Every loss by name, in the order commands list them.
LOSSES: MappingProxyType[str, LossEntry] = MappingProxyType(
    {e.name: e for e in (alrp.ENTRY, ap.ENTRY, rs.ENTRY, focal.ENTRY, bce.ENTRY)}
)
#: The loss ``alrp train`` and the detector default to.
DEFAULT_LOSS = alrp.ENTRY.name
#: The places a loss can be offered: the :class:`LossEntry` field of each.
ROLES = ("train", "head", "balance", "analysis", "bench")


def names(role: str | None = None) -> tuple[str, ...]:
    """The names of the losses offered in ``role`` (one of :data:`ROLES`; None: all)."""
    return tuple(e.name for e in entries(role))


def entries(role: str | None = None) -> tuple[LossEntry, ...]:
    """The entries offered in ``role`` (one of :data:`ROLES`; None: all), in order."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return tuple(e for e in LOSSES.values() if role is None or getattr(e, role) is not None)


def get(name: str, role: str | None = None) -> LossEntry:
    """The entry of ``name``, which must be offered in ``role``; ValueError otherwise,
    naming the bad value and the choices."""
    choices = names(role)
    if name not in choices:
        raise ValueError(f"loss must be one of {choices}, got {name!r}")
    return LOSSES[name]


def measures() -> tuple[Measure, ...]:
    """The numbers ``alrp analyze`` reports for the losses (their
    :class:`~alrp_cli.registry.AnalysisForm` measures), in order."""
    return tuple(m for e in entries("analysis") if e.analysis for m in e.analysis.measures)


def default_anchors(loss: str, assigner: str) -> tuple[int, list[float]]:
    """(scales per octave, aspect ratios) of the official anchors of ``loss`` with
    ``assigner``: its recipe's (:meth:`Recipe.anchors_for`)."""
    recipe = get(loss, "train").recipe
    assert recipe is not None
    return recipe.anchors_for(assigner)


__all__ = [
    "BALANCED",
    "DEFAULT_LOSS",
    "IOUS",
    "LOC_ERRORS",
    "LOSSES",
    "NEEDS",
    "ROLES",
    "SELF_BALANCE",
    "ZERO_SUM",
    "AnalysisForm",
    "BalanceForm",
    "BalancePart",
    "BenchForm",
    "HeadForm",
    "LossEntry",
    "LossParts",
    "Measure",
    "Recipe",
    "Sourced",
    "Style",
    "TrainForm",
    "default_anchors",
    "entries",
    "get",
    "measures",
    "names",
]
