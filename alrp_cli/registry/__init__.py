"""The registry of losses: the one place that lists them.

Every command and module that offers a choice of loss reads it: ``alrp train`` (names,
recipes, anchors, the detector's loss), ``alrp bench``, ``alrp check-balance``,
``alrp analyze``, the torchvision heads, the figures and ``benchmarks/compare_losses.py``.
Each loss has one file here (its :class:`~alrp_cli.registry.entry.LossEntry`) beside its
own kernels; adding a loss is that file, its kernels and its line in :data:`CATALOG` and
in :func:`_load` below (see docs/losses.md, "Adding a loss").

Importing the registry imports no torch: :data:`CATALOG`, :func:`names` and
:data:`DEFAULT_LOSS` are what the command line shows and checks before any work starts.
The entries (:data:`LOSSES`, :func:`get`, :func:`entries`, :func:`measures`) load on first
use, which imports torch and :mod:`alrp_cli.losses`, nothing heavier.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import NamedTuple

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

#: The places a loss can be offered: the :class:`LossEntry` field of each.
ROLES = ("train", "head", "balance", "analysis", "bench")


class Listing(NamedTuple):
    """A loss as the command line lists it: its ``name`` (what ``--loss`` takes) and the
    ``roles`` (of :data:`ROLES`) it is offered in, which are the forms its entry sets."""

    name: str
    roles: tuple[str, ...]


#: Every loss, in the order commands list them; each agrees with its entry
#: (tests/test_registry.py checks it).
CATALOG: tuple[Listing, ...] = (
    Listing("alrp", ("train", "head", "balance", "analysis", "bench")),
    Listing("ap", ("train", "head", "balance", "analysis", "bench")),
    Listing("rs", ("train", "head", "balance", "analysis", "bench")),
    Listing("focal", ("train", "balance")),
    Listing("bce", ("balance",)),
)
#: The loss ``alrp train`` and the detector default to.
DEFAULT_LOSS = "alrp"


@functools.cache
def _load() -> Mapping[str, LossEntry]:
    """The entries by name, in :data:`CATALOG`'s order (imports torch and the kernels)."""
    from alrp_cli.registry import alrp, ap, bce, focal, rs

    entries = (alrp.ENTRY, ap.ENTRY, rs.ENTRY, focal.ENTRY, bce.ENTRY)
    return MappingProxyType({e.name: e for e in entries})


class _Entries(Mapping[str, LossEntry]):
    """:data:`LOSSES`: a read-only mapping that loads the entries on first use."""

    def __getitem__(self, name: str) -> LossEntry:
        return _load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_load())

    def __len__(self) -> int:
        return len(_load())

    def __repr__(self) -> str:
        return f"LOSSES({', '.join(names())})"


#: Every loss's entry by name, in the order commands list them.
LOSSES: Mapping[str, LossEntry] = _Entries()


def _check_role(role: str | None) -> None:
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")


def names(role: str | None = None) -> tuple[str, ...]:
    """The names of the losses offered in ``role`` (one of :data:`ROLES`; None: all);
    light: reads :data:`CATALOG`, not the entries."""
    _check_role(role)
    return tuple(c.name for c in CATALOG if role is None or role in c.roles)


def entries(role: str | None = None) -> tuple[LossEntry, ...]:
    """The entries offered in ``role`` (one of :data:`ROLES`; None: all), in order."""
    return tuple(LOSSES[name] for name in names(role))


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
    "CATALOG",
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
    "Listing",
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
