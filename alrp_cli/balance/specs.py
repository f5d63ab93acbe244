"""The losses the balance check knows by name, as :class:`LossSpec` objects.

A spec wraps a loss function ``fn(logits, targets, loc_errors, delta) -> scalar``; the
check calls ``fn(...).backward()`` and reads ``logits.grad``, exactly as a training step
gets its update. The named losses are those of :mod:`alrp_cli.registry` with a
:class:`~alrp_cli.registry.BalanceForm`: the ranking losses are *checked* (each part of
their update obeys its rule); the others are shown for contrast only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from alrp_cli import registry
from alrp_cli.errors import UserError
from alrp_cli.registry import BalancePart

#: ``(logits, targets, loc_errors, delta) -> scalar``, or one scalar per part.
LossFn = Callable[[Tensor, Tensor, Tensor, float], "Tensor | tuple[Tensor, ...]"]
#: A loop reference: ``(logits, targets, loc_errors, delta) -> (loss value, d loss / d logits)``,
#: or one such pair per part.
ReferenceFn = Callable[[Tensor, Tensor, Tensor, float], Any]


@dataclass(frozen=True)
class LossSpec:
    """A loss to check.

    ``fn(logits (N,), targets (N,) int64 in {1,0,-1}, loc_errors (P,), delta) -> scalar``;
    its gradient w.r.t. ``logits`` is the update under test. ``checked``: Theorem 2 must
    hold (else the loss is shown for contrast). ``bounded``: the loss value must lie in
    [0, 1]. ``reference``: an independent formulation to compare value and gradient with.
    ``reference_max_work``, ``reference_max_positives``: compare only on problems with
    P·N and P at most these (the loop reference costs one Python pass per positive).
    ``takes_ious``: ``fn`` and ``reference`` also get ``ious=`` (Tensor[P], the problem's
    IoUs, or None where recorded inputs hold none), for a loss whose positives carry
    continuous targets; ``derived_ious`` says what it takes instead (the run reports it).
    ``parts``: the parts of the update, each checked against its own rule
    (:class:`~alrp_cli.registry.BalancePart`); with several, ``fn`` returns one scalar per
    part (and ``reference`` one pair per part), each scalar's ``backward`` writing its part.
    """

    name: str
    fn: LossFn
    checked: bool = True
    bounded: bool = False
    reference: ReferenceFn | None = None
    reference_max_work: int = 2_000_000
    reference_max_positives: int = 300
    takes_ious: bool = False
    parts: tuple[BalancePart, ...] = (BalancePart(),)
    derived_ious: str | None = None


def builtin_specs() -> dict[str, LossSpec]:
    """The losses ``alrp check-balance --loss`` accepts, by name: the registry's."""
    specs = {}
    for entry in registry.entries("balance"):
        form = entry.balance
        assert form is not None
        specs[entry.name] = LossSpec(
            entry.name,
            form.fn,
            checked=form.checked,
            bounded=form.bounded,
            reference=form.reference,
            takes_ious=form.takes_ious,
            parts=form.parts,
            derived_ious=form.derived_ious,
        )
    return specs


#: Names accepted by :func:`resolve_losses`, in report order.
LOSS_NAMES = registry.names("balance")


def resolve_losses(names: Sequence[str] | None) -> list[LossSpec]:
    """The specs for ``names`` (all of them when empty), in the order given, without repeats.

    Raises :class:`UserError` for an unknown name.
    """
    specs = builtin_specs()
    chosen: list[LossSpec] = []
    for name in names or LOSS_NAMES:
        key = name.strip().lower()
        if key not in specs:
            raise UserError(f"--loss: unknown loss {name!r}; choose from {', '.join(LOSS_NAMES)}")
        if all(s.name != key for s in chosen):
            chosen.append(specs[key])
    return chosen
