"""Input checks and the split into positives and relevant negatives, shared by the losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from alrp_cli.losses.bucketed import (
    Bins,
    bin_index,
    bin_totals,
    local_offsets,
    make_bins,
    sums_from_totals,
)
from alrp_cli.losses.collective import Collective


def all_finite(logits: Tensor) -> bool:
    """Whether every logit is finite.

    A finite sum proves it in one cheap reduction (inf and nan propagate); only a
    non-finite sum, or an overflow, needs the element-wise check.
    """
    return bool(torch.isfinite(logits.sum())) or bool(torch.isfinite(logits).all())


def check_inputs(
    logits: Tensor, targets: Tensor, delta: float, *, continuous: bool = False
) -> bool:
    """Raise ValueError for inputs the losses cannot take (shapes, labels, δ, non-finite).

    ``continuous``: targets are -1, 0 or a quality in (0, 1] (Rank & Sort Loss) instead of
    the integers -1, 0, 1. Returns whether every logit is finite (ignored pairs may hold
    non-finite logits).
    """
    if not torch.is_tensor(logits) or not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {type(logits).__name__}")
    if logits.dim() != 1:
        raise ValueError(f"logits must be 1-D (flatten anchors × classes), got {logits.shape}")
    if targets.shape != logits.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must match logits {tuple(logits.shape)}")
    if not delta >= 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    if targets.numel() == 0:
        return True
    if continuous:
        check_quality_targets(targets)
    elif targets.is_floating_point() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be an integer tensor (1, 0, -1), got {targets.dtype}")
    else:
        low, high = torch.aminmax(targets)
        if bool(low < -1) or bool(high > 1):
            raise ValueError(
                f"targets must be 1 (positive), 0 (negative) or -1 (ignored); found values "
                f"in [{int(low)}, {int(high)}]"
            )
    if all_finite(logits):
        return True
    nonfinite = ~torch.isfinite(logits) & (targets != -1)
    if bool(nonfinite.any()):
        first = int(nonfinite.nonzero()[0, 0])
        raise ValueError(
            f"logits contain {int(nonfinite.sum())} non-finite values among non-ignored "
            f"entries (first at index {first}); check the head's output and the learning rate"
        )
    return False


def check_quality_targets(targets: Tensor) -> None:
    """Raise ValueError unless every target is -1 (ignored), 0 (negative) or in (0, 1].

    One ``aminmax`` settles the common case (no ignored pairs, or none in (-1, 0)); a
    second pass looks for values in (-1, 0) only when an ignored pair is present.
    """
    if targets.dtype == torch.bool or targets.is_complex():
        raise ValueError(f"targets must be a real tensor (IoU, 0 or -1), got {targets.dtype}")
    low, high = (float(v) for v in torch.aminmax(targets))
    bad = not (low >= -1 and high <= 1)  # also NaN
    if not bad and low < 0:
        bad = bool(((targets < 0) & (targets != -1)).any())
    if bad:
        raise ValueError(
            "targets must be an IoU in (0, 1] (positive), 0 (negative) or -1 (ignored); "
            f"found values in [{low:g}, {high:g}]"
        )


def check_loc_errors(loc_errors: Tensor, num_pos: int) -> None:
    """Raise ValueError unless ``loc_errors`` is Tensor[num_pos] of finite values."""
    if loc_errors.dim() != 1 or loc_errors.numel() != num_pos:
        raise ValueError(
            f"loc_errors must be 1-D with one entry per positive ({num_pos}), "
            f"got shape {tuple(loc_errors.shape)}"
        )
    if not bool(torch.isfinite(loc_errors).all()):
        raise ValueError("loc_errors contain non-finite values; check the box regression")


@dataclass(frozen=True)
class Split:
    """Positives and negatives binned against the sorted positive scores.

    With a collective, the positives are those of the global batch (every rank's, in rank
    order, as if the batches were concatenated) and the negatives this process's own.

    Attributes:
        pos_index (Tensor[P_r] int64): positions of this process's positives in ``logits``.
        order (Tensor[P] int64): all positives sorted by score (ascending, stable), so that
            ``pos_scores[order]`` is ``bins.queries``.
        inverse (Tensor[P] int64): the inverse permutation: sorted position of each positive.
        start (int): number of positives on the ranks before this one (0 in one process);
            this process's positives are ``start .. start + P_r − 1`` in input order.
        pos_scores (Tensor[P] float64): scores of all positives, in input order.
        pos_errors (Tensor[P] float64 or None): their localisation errors (aLRP only).
        pos_targets (Tensor[P] float64 or None): their targets in (0, 1] (Rank & Sort only).
        point_bin (Tensor[N] int32): bin of every negative; ``bins.num_bins`` for positives
            and ignored pairs, which the negative sums leave out.
        point_offset (Tensor[N] or None): offset of each logit from its bin's left edge in
            the work dtype (float64 for float64 logits, float32 otherwise); None when δ = 0.
        pos_bin, pos_offset: the same for the sorted positives (float64).
        bins: the bins of the sorted positive scores.
        work_dtype: dtype of the N-sized arithmetic.
        collective: sums the negatives' per-bin totals over the ranks; None in one process.

    Negatives below ``min positive − δ`` land in bin 0, which no sum covers: they
    contribute nothing and get a zero update, without being filtered out first.
    """

    pos_index: Tensor
    order: Tensor
    inverse: Tensor
    start: int
    pos_scores: Tensor
    pos_errors: Tensor | None
    point_bin: Tensor
    point_offset: Tensor | None
    pos_bin: Tensor
    pos_offset: Tensor | None
    bins: Bins
    work_dtype: torch.dtype
    collective: Collective | None = None
    pos_targets: Tensor | None = None

    @property
    def num_pos(self) -> int:
        """Number of positives P (over all ranks)."""
        return self.order.numel()

    @property
    def own(self) -> Tensor:
        """Sorted position of each of this process's positives (Tensor[P_r] int64)."""
        return self.inverse[self.start : self.start + self.pos_index.numel()]

    def live_errors(self, loc_errors: Tensor) -> Tensor:
        """All positives' errors (Tensor[P]) with this process's rows ``loc_errors`` itself,
        so that autograd reaches exactly the local rows."""
        if self.pos_index.numel() == self.num_pos:
            return loc_errors
        assert self.pos_errors is not None
        stop = self.start + self.pos_index.numel()
        others = self.pos_errors.to(loc_errors.dtype)
        return torch.cat([others[: self.start], loc_errors, others[stop:]])


def false_positives(s: Split) -> Tensor:
    """N_FP of every positive (Tensor[P] float64, sorted order), over all ranks' negatives.

    The only communication after the gather of the positives: one all-reduce of the
    per-bin totals of the negatives (Tensor[1 or 2, num_bins] float64).
    """
    totals = bin_totals(s.bins, s.point_bin, s.point_offset, [None])
    if s.collective is not None:
        totals = s.collective.all_reduce_sum(totals)
    (n_fp,) = sums_from_totals(s.bins, totals)
    return n_fp


def _gather_positives(
    collective: Collective,
    rows: Tensor | None,
    width: int,
    failure: ValueError | None = None,
    device: torch.device | None = None,
) -> tuple[list[Tensor], int]:
    """Every rank's positives, concatenated in rank order, and the number of positives on
    the ranks before this one.

    ``rows`` (Tensor[P_r, width] float64): this rank's positives (score[, error]); None
    when its inputs failed the checks with ``failure``. One all-gather of
    Tensor[1 + P_r, width] float64: the first row says whether the rank's inputs passed
    the checks, so that a bad input raises on every rank instead of leaving the others
    waiting in the next collective. Returns the columns, Tensor[P] float64 each.
    """
    device = rows.device if rows is not None else device
    header = torch.full((1, width), float(failure is not None), dtype=torch.float64, device=device)
    parts = collective.all_gather(header if rows is None else torch.cat([header, rows]))
    if len(parts) != collective.world_size:
        raise ValueError(f"all_gather returned {len(parts)} tensors, not {collective.world_size}")
    if failure is not None:
        raise failure
    status = torch.stack([p[0, 0] for p in parts])
    if bool((status != 0).any()):
        bad = status.nonzero().squeeze(1).tolist()
        raise ValueError(
            f"the loss inputs of rank(s) {bad} are invalid (the error is raised on that rank)"
        )
    start = sum(int(p.shape[0]) - 1 for p in parts[: collective.rank])
    merged = torch.cat([p[1:] for p in parts])
    return list(merged.unbind(1)), start


def prepare(
    logits: Tensor,
    targets: Tensor,
    delta: float,
    *,
    loc_errors: Tensor | None = None,
    continuous: bool = False,
    collective: Collective | None = None,
) -> Split | None:
    """Check the inputs and bin them; None when there are no positives (on any rank).

    Args:
        logits (Tensor[N] float), targets (Tensor[N] int), delta (float ≥ 0).
        loc_errors (Tensor[P_r] float or None): checked, and gathered with the positives'
            scores (aLRP).
        continuous: targets are -1, 0 or in (0, 1] (Rank & Sort); the positives' targets
            are gathered with their scores into ``Split.pos_targets``.
        collective: rank over the global batch of its ranks (see ``collective.py``).

    Raises ValueError for inputs the losses cannot take; with a collective, on every rank
    when one rank's inputs are bad.
    """
    failure = None
    try:
        finite = check_inputs(logits, targets, delta, continuous=continuous)
        pos_index = (targets > 0).nonzero().squeeze(1)  # == 1 for the integer targets
        if loc_errors is not None:
            check_loc_errors(loc_errors, pos_index.numel())
    except ValueError as exc:
        if collective is None:
            raise
        failure = exc
    width = 1 + (loc_errors is not None) + continuous
    if failure is not None:
        assert collective is not None
        device = logits.device if torch.is_tensor(logits) else None
        _gather_positives(collective, None, width, failure, device)  # raises on every rank
    logits = logits.detach()
    columns = [logits[pos_index].to(torch.float64)]
    if loc_errors is not None:
        columns.append(loc_errors.detach().to(torch.float64, copy=False))
    if continuous:
        columns.append(targets.detach()[pos_index].to(torch.float64))
    start = 0
    if collective is not None:
        columns, start = _gather_positives(collective, torch.stack(columns, 1), width)
    if columns[0].numel() == 0:
        return None
    pos_errors = columns[1] if loc_errors is not None else None
    pos_targets = columns[-1] if continuous else None
    return _split(
        logits,
        targets,
        float(delta),
        finite,
        pos_index,
        start,
        collective,
        pos_scores=columns[0],
        pos_errors=pos_errors,
        pos_targets=pos_targets,
    )


def _split(
    logits: Tensor,
    targets: Tensor,
    delta: float,
    finite: bool,
    pos_index: Tensor,
    start: int,
    collective: Collective | None,
    *,
    pos_scores: Tensor,
    pos_errors: Tensor | None,
    pos_targets: Tensor | None,
) -> Split:
    """Bin the local points against all positives (columns Tensor[P] float64 each)."""
    sorted_scores, order = pos_scores.sort(stable=True)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    work = torch.float64 if logits.dtype == torch.float64 else torch.float32
    scores = logits.to(work)
    if not finite:  # only ignored pairs can be non-finite here (checked)
        scores = scores.nan_to_num(0.0, posinf=0.0, neginf=0.0)
    bins = make_bins(sorted_scores, delta)
    point_bin = bin_index(bins, scores).masked_fill_(targets != 0, bins.num_bins)
    pos_bin = bin_index(bins, sorted_scores)
    smooth = delta > 0
    return Split(
        pos_index=pos_index,
        order=order,
        inverse=inverse,
        start=start,
        pos_scores=pos_scores,
        pos_errors=pos_errors,
        point_bin=point_bin,
        point_offset=local_offsets(bins, scores, point_bin) if smooth else None,
        pos_bin=pos_bin,
        pos_offset=local_offsets(bins, sorted_scores, pos_bin) if smooth else None,
        bins=bins,
        work_dtype=work,
        collective=collective,
        pos_targets=pos_targets,
    )


def self_term(delta: float) -> float:
    """H(0): what a positive contributes to its own sum over positives."""
    return 0.5 if delta > 0 else 1.0


def is_one(value: Tensor) -> bool:
    """Whether an incoming gradient is the scalar 1 (checked on the CPU only, where reading
    the value costs no device synchronisation)."""
    return value.device.type == "cpu" and value.numel() == 1 and float(value) == 1.0


def scaled_update(update: Tensor, grad_output: Tensor) -> Tensor:
    """``update · grad_output`` for a custom backward; the update itself when that is 1.

    Returning the saved update is safe: autograd copies it before accumulating when the
    graph is retained (the saved tensor still holds a reference), and takes it over
    otherwise.
    """
    if is_one(grad_output):
        return update
    return update * grad_output.to(update.dtype)
