"""What the registry knows of a loss: :class:`LossEntry` and the forms it is used in.

An entry holds the loss's own objects (functional form, module, loop reference) and one
small form per place that uses it; a form left ``None`` means the loss is not offered there:

- :class:`Recipe` and :class:`TrainForm`: ``alrp train`` (official COCO recipe, anchors,
  how the detector's loss is computed and what state it keeps);
- :class:`HeadForm`: the torchvision heads (:mod:`alrp_cli.integrations.torchvision`);
- :class:`BalanceForm`: ``alrp check-balance``;
- :class:`AnalysisForm`: ``alrp analyze`` (the loss's values on ranked detections);
- :class:`BenchForm`: ``alrp bench`` (the fast kernel against the loop reference);
- :class:`Style`: how the figures draw it.

Importing this module imports no torch (the command line reads the registry to list the
losses); the entries themselves import torch and :mod:`alrp_cli.losses`, and forms that
need torchvision import it inside their functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

    from alrp_cli.loss_inputs import LossInputs
    from alrp_cli.losses.collective import Collective

#: What a loss needs beyond logits and {1, 0, -1} targets (:attr:`LossEntry.needs`).
#: The localisation error e = 1 − GIoU of each positive.
LOC_ERRORS = "loc_errors"
#: Continuous targets: the IoU of each positive's box with its ground truth (detached).
IOUS = "ious"
#: State kept from step to step (and in checkpoints): aLRP's self-balance weight.
SELF_BALANCE = "self_balance"
NEEDS = (LOC_ERRORS, IOUS, SELF_BALANCE)


@dataclass(frozen=True)
class Sourced:
    """A recipe value and where it comes from: ``file:line`` of the official code."""

    value: Any
    source: str


@dataclass(frozen=True)
class Recipe:
    """A loss's official training recipe.

    ``coco``: the values that override the COCO preset (``PRESETS["coco"]``) for this
    loss; ``by_assigner``: values that apply on top with one assigner (e.g. aLRP's max-IoU
    schedule); ``anchors``: (scales per octave, aspect ratios) per assigner, in every
    preset — the one place anchors are resolved.
    """

    coco: Mapping[str, Sourced]
    anchors: Mapping[str, Sourced]
    by_assigner: Mapping[str, Mapping[str, Sourced]] = field(default_factory=dict)

    def coco_values(self, preset: Mapping[str, Any], assigner: str | None) -> dict[str, Any]:
        """``preset`` with this recipe over it, then the values of the assigner in use
        (``assigner`` when given, else the recipe's or the preset's)."""
        values = {**preset, **{k: v.value for k, v in self.coco.items()}}
        chosen = assigner or values["assigner"]
        values.update({k: v.value for k, v in self.by_assigner.get(chosen, {}).items()})
        return {k: list(v) if isinstance(v, list) else v for k, v in values.items()}

    def anchors_for(self, assigner: str) -> tuple[int, list[float]]:
        """(scales per octave, aspect ratios) of the official anchors with ``assigner``;
        ValueError for an assigner the recipe does not know."""
        if assigner not in self.anchors:
            raise ValueError(f"assigner must be one of {tuple(self.anchors)}, got {assigner!r}")
        scales, ratios = self.anchors[assigner].value
        return int(scales), [float(r) for r in ratios]

    def sourced(self) -> dict[str, Sourced]:
        """Every value of the recipe by a dotted name, for listing and checking."""
        out = {f"coco.{k}": v for k, v in self.coco.items()}
        out.update({f"anchors.{k}": v for k, v in self.anchors.items()})
        for assigner, values in self.by_assigner.items():
            out.update({f"{assigner}.{k}": v for k, v in values.items()})
        return out


@dataclass
class LossParts:
    """One training step's loss: ``total`` (what backward runs on), the loss value and its
    ``cls`` and ``loc`` parts (detached floats) and ``sb_weight``, the weight of the ``loc``
    part where the loss balances it (aLRP's self-balance weight, Rank & Sort's per-step
    ratio; ``None`` otherwise): then ``value`` = ``cls`` + ``sb_weight`` × ``loc``.

    With a collective (a global loss over several processes), ``total``'s gradient with
    respect to this process's inputs is this process's rows of the global loss's gradient,
    and ``value``, ``cls`` and ``loc`` are this process's report values: their mean over the
    processes is the global loss and its parts.
    """

    total: Tensor
    cls: float
    loc: float
    sb_weight: float | None
    value: float = float("nan")


TrainLoss = Callable[["LossInputs", "nn.Module | None", "Collective | None"], "LossParts"]


@dataclass(frozen=True)
class TrainForm:
    """The loss of ``alrp train``'s detector.

    ``compute(inputs, state, collective) -> LossParts`` on one batch's
    :class:`~alrp_cli.loss_inputs.LossInputs` (float32 logits; ``target_deltas`` given);
    ``make_state(*, period, init_weight, fixed, collective)`` builds the module that keeps
    the state of a loss that :data:`SELF_BALANCE` (its ``weight`` is the self-balance
    weight; it is checkpointed), None for a stateless loss.
    """

    compute: TrainLoss
    make_state: Callable[..., nn.Module] | None = None


@dataclass(frozen=True)
class HeadForm:
    """The loss in the torchvision heads.

    ``make_module(*, period, init_weight, delta, collective)`` builds the head's
    ``loss_module``; ``apply(module, inputs) -> (classification, box loss or None)`` runs
    it on the flattened batch (None: the head keeps torchvision's own box loss).
    """

    make_module: Callable[..., nn.Module]
    apply: Callable[[nn.Module, LossInputs], tuple[Tensor, Tensor | None]]


#: ``fn(logits (N,), targets (N,) int64 in {1, 0, -1}, loc_errors (P,), delta) -> scalar``,
#: or one scalar per part of the update (a tuple, in :attr:`BalanceForm.parts` order).
BalanceFn = Callable[["Tensor", "Tensor", "Tensor", float], "Tensor | tuple[Tensor, ...]"]
#: ``(logits, targets, loc_errors, delta) -> (loss value, d loss / d logits)``, or one such
#: pair per part (a tuple, in :attr:`BalanceForm.parts` order).
BalanceReference = Callable[["Tensor", "Tensor", "Tensor", float], Any]

#: The rules a part of an update obeys (:attr:`BalancePart.rule`). BALANCED: the positives'
#: and the negatives' total magnitudes are equal, Σ_{i∈P} |g_i| = Σ_{j∈N} |g_j| (Theorem 2
#: of the aLRP paper), every positive pushed up (g ≤ 0) and every negative down (g ≥ 0).
BALANCED = "balanced"
#: ZERO_SUM: the part moves scores among the positives only: Σ_{i∈P} g_i = 0 and every
#: negative's g_j = 0 (Rank & Sort Loss's sorting part).
ZERO_SUM = "zero_sum"
RULES = (BALANCED, ZERO_SUM)


@dataclass(frozen=True)
class BalancePart:
    """One part of a loss's update in ``alrp check-balance``: its ``name`` (None: the whole
    update) and the ``rule`` it obeys (:data:`BALANCED` or :data:`ZERO_SUM`)."""

    name: str | None = None
    rule: str = BALANCED

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")


@dataclass(frozen=True)
class BalanceForm:
    """The loss in ``alrp check-balance``: ``fn``'s ``backward`` puts the update under
    test into ``logits.grad``; ``checked``: its rules must hold (else contrast only);
    ``bounded``: the value lies in [0, 1]; ``reference``: the loop formulation, compared
    with on small problems. ``parts``: the parts of the update, each checked on its own
    (``fn`` returns one scalar per part when there are several, each of whose ``backward``
    alone writes its part). ``takes_ious``: ``fn`` and ``reference`` also get ``ious=``
    (Tensor[P], the IoUs of the positives, or None where the inputs hold none: then
    ``fn`` derives its targets as ``derived_ious`` says, which the check reports)."""

    fn: BalanceFn
    checked: bool
    bounded: bool = False
    reference: BalanceReference | None = None
    takes_ious: bool = False
    parts: tuple[BalancePart, ...] = (BalancePart(),)
    derived_ious: str | None = None


@dataclass(frozen=True)
class Measure:
    """One number ``alrp analyze`` reports per class and on average: its JSON ``key`` and
    its names in the summary table (``label``), the per-class table (``column``), the
    comparison figure (``figure``) and the headline tables (``headline``; None: not a
    headline number)."""

    key: str
    label: str
    column: str
    figure: str
    headline: str | None = None


#: ``values(logits (M,) float64, targets (M,) int64 in {1, 0, -1}, ious (P,) float64 of the
#: true positives, iou_threshold, delta) -> {measure key: float}``, run under no_grad.
AnalysisValues = Callable[["Tensor", "Tensor", "Tensor", float, float], dict[str, float]]


@dataclass(frozen=True)
class AnalysisForm:
    """The loss's values on one class's ranked detections (``alrp analyze``)."""

    measures: tuple[Measure, ...]
    values: AnalysisValues


@dataclass(frozen=True)
class BenchForm:
    """The loss in ``alrp bench``: ``fast(logits (leaf), targets, loc_errors, *,
    collective=None)`` returns the scalar whose ``backward`` is a training step's (ranking
    the global batch with a collective); ``loop(logits, targets, loc_errors)`` runs the loop
    reference (its forward computes the update too). ``targets(targets, loc_errors)``, run
    once before the timing, turns the bench's Tensor[N] {1, 0, -1} targets and Tensor[P]
    localisation errors (uniform in [0, 1)) into the targets ``fast`` and ``loop`` take
    (None: as they are)."""

    fast: Callable[..., Tensor]
    loop: Callable[[Tensor, Tensor, Tensor], object]
    targets: Callable[[Tensor, Tensor], Tensor] | None = None


@dataclass(frozen=True)
class Style:
    """How figures draw the loss: ``color`` an index into seaborn's "colorblind" palette
    (None: the next free colour), matplotlib ``marker`` and ``size``; ``draw_order``:
    higher is drawn later (on top)."""

    color: int | None = None
    marker: str = "D"
    size: float = 18
    draw_order: int = -1


@dataclass(frozen=True)
class LossEntry:
    """Everything alrp knows of one loss (see the module docstring for the forms).

    ``name`` is what ``--loss`` takes; ``label`` its short name in tables and figures,
    ``title`` its full name; ``needs`` a subset of :data:`NEEDS`; ``delta`` the δ of its
    smoothed step in training (None: no ranking). ``function``, ``module`` and
    ``reference`` are the loss's own functional form, module form and loop reference.
    """

    name: str
    label: str
    title: str
    paper: str
    needs: frozenset[str] = frozenset()
    delta: float | None = None
    function: Callable[..., Any] | None = None
    module: type[nn.Module] | None = None
    reference: Callable[..., Any] | None = None
    recipe: Recipe | None = None
    train: TrainForm | None = None
    head: HeadForm | None = None
    balance: BalanceForm | None = None
    analysis: AnalysisForm | None = None
    bench: BenchForm | None = None
    style: Style = Style()


def positives_of_batch(inputs: LossInputs, collective: Collective | None) -> float:
    """The number of positives of the (global, with ``collective``) batch, at least 1:
    what the summed losses of a detector are divided by."""
    num_pos = float(inputs.num_pos)
    if collective is not None:
        import torch

        count = torch.tensor([num_pos], dtype=torch.float64, device=inputs.logits.device)
        num_pos = float(collective.all_reduce_sum(count).item())
    return max(1.0, num_pos)


def summed_parts(
    cls: Tensor, loc: Tensor, collective: Collective | None, *, global_cls: bool = False
) -> LossParts:
    """:class:`LossParts` of ``cls + loc`` for a stateless loss. Each part is a sum over
    this process's rows (divided by the global number of positives), so its report value
    is the world size × its share; ``global_cls``: ``cls`` is already the global value
    (a ranking loss with the collective)."""
    world = 1 if collective is None else collective.world_size
    cls_world = 1 if global_cls else world
    cls_value, loc_value = float(cls.detach()) * cls_world, float(loc.detach()) * world
    return LossParts(
        total=cls + loc, cls=cls_value, loc=loc_value, sb_weight=None, value=cls_value + loc_value
    )
