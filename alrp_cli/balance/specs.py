"""The losses the balance check knows by name, as :class:`LossSpec` objects.

A spec wraps a loss function ``fn(logits, targets, loc_errors, delta) -> scalar``; the
check calls ``fn(...).backward()`` and reads ``logits.grad``, exactly as a training step
gets its update. aLRP and AP Loss are *checked* (Theorem 2 must hold); sigmoid focal loss
and BCE are shown for contrast only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from alrp_cli.errors import UserError
from alrp_cli.losses import alrp_loss, ap_loss
from alrp_cli.losses.reference import alrp_loss_reference, ap_loss_reference

LossFn = Callable[[Tensor, Tensor, Tensor, float], Tensor]
#: A loop reference: ``(logits, targets, loc_errors, delta) -> (loss value, d loss / d logits)``.
ReferenceFn = Callable[[Tensor, Tensor, Tensor, float], tuple[float, Tensor]]


@dataclass(frozen=True)
class LossSpec:
    """A loss to check.

    ``fn(logits (N,), targets (N,) int64 in {1,0,-1}, loc_errors (P,), delta) -> scalar``;
    its gradient w.r.t. ``logits`` is the update under test. ``checked``: Theorem 2 must
    hold (else the loss is shown for contrast). ``bounded``: the loss value must lie in
    [0, 1]. ``reference``: an independent formulation to compare value and gradient with.
    ``reference_max_work``, ``reference_max_positives``: compare only on problems with
    P·N and P at most these (the loop reference costs one Python pass per positive).
    """

    name: str
    fn: LossFn
    checked: bool = True
    bounded: bool = False
    reference: ReferenceFn | None = None
    reference_max_work: int = 2_000_000
    reference_max_positives: int = 300


def _alrp_cls(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    return alrp_loss(logits, targets, loc_errors, delta=delta).cls


def _ap(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    return ap_loss(logits, targets, delta=delta)


def _alrp_reference(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float
) -> tuple[float, Tensor]:
    out = alrp_loss_reference(logits, targets, loc_errors, delta=delta)
    return float(out.cls), out.grad_logits


def _ap_reference(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float
) -> tuple[float, Tensor]:
    out = ap_loss_reference(logits, targets, delta=delta)
    return float(out.cls), out.grad_logits


def _focal(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    # RetinaNet's classification loss (alpha 0.25, gamma 2) over the non-ignored pairs,
    # summed and divided by |P|, as RetinaNet trains with it.
    keep = targets >= 0
    num_pos = max(int((targets == 1).sum()), 1)
    loss = sigmoid_focal_loss(logits[keep], targets[keep].to(logits.dtype), reduction="sum")
    return loss / num_pos


def _bce(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    keep = targets >= 0
    num_pos = max(int((targets == 1).sum()), 1)
    t = targets[keep].to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits[keep], t, reduction="sum") / num_pos


def builtin_specs() -> dict[str, LossSpec]:
    """The losses ``alrp check-balance --loss`` accepts, by name."""
    return {
        "alrp": LossSpec("alrp", _alrp_cls, checked=True, bounded=True, reference=_alrp_reference),
        "ap": LossSpec("ap", _ap, checked=True, bounded=True, reference=_ap_reference),
        "focal": LossSpec("focal", _focal, checked=False),
        "bce": LossSpec("bce", _bce, checked=False),
    }


#: Names accepted by :func:`resolve_losses`, in report order.
LOSS_NAMES = ("alrp", "ap", "focal", "bce")


def resolve_losses(names: Sequence[str] | None) -> list[LossSpec]:
    """The specs for ``names`` (all four when empty), in the order given, without repeats.

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
