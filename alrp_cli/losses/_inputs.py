"""Input checks and the split into positives and relevant negatives, shared by both losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from alrp_cli.losses.bucketed import Bins, bin_index, local_offsets, make_bins


def all_finite(logits: Tensor) -> bool:
    """Whether every logit is finite.

    A finite sum proves it in one cheap reduction (inf and nan propagate); only a
    non-finite sum, or an overflow, needs the element-wise check.
    """
    return bool(torch.isfinite(logits.sum())) or bool(torch.isfinite(logits).all())


def check_inputs(logits: Tensor, targets: Tensor, delta: float) -> bool:
    """Raise ValueError for inputs the losses cannot take (shapes, labels, δ, non-finite).

    Returns whether every logit is finite (ignored pairs may hold non-finite logits).
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
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be an integer tensor (1, 0, -1), got {targets.dtype}")
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


@dataclass(frozen=True)
class Split:
    """Positives and negatives binned against the sorted positive scores.

    Attributes:
        pos_index (Tensor[P] int64): positions of the positives in ``logits``.
        order (Tensor[P] int64): positives sorted by score (ascending, stable), so that
            ``logits[pos_index[order]]`` is ``bins.queries``.
        point_bin (Tensor[N] int64): bin of every negative; ``bins.num_bins`` for positives
            and ignored pairs, which the negative sums leave out.
        point_offset (Tensor[N] or None): offset of each logit from its bin's left edge in
            the work dtype (float64 for float64 logits, float32 otherwise); None when δ = 0.
        pos_bin, pos_offset: the same for the sorted positives (float64).
        bins: the bins of the sorted positive scores.
        work_dtype: dtype of the N-sized arithmetic.

    Negatives below ``min positive − δ`` land in bin 0, which no sum covers: they
    contribute nothing and get a zero update, without being filtered out first.
    """

    pos_index: Tensor
    order: Tensor
    point_bin: Tensor
    point_offset: Tensor | None
    pos_bin: Tensor
    pos_offset: Tensor | None
    bins: Bins
    work_dtype: torch.dtype

    @property
    def num_pos(self) -> int:
        """Number of positives P."""
        return self.pos_index.numel()


def split(logits: Tensor, targets: Tensor, delta: float, *, finite: bool = True) -> Split | None:
    """Bin the inputs (Tensor[N] float, Tensor[N] int); None when there are no positives.

    ``finite=False`` (from :func:`check_inputs`) says some ignored logits are not finite.
    """
    pos_index = (targets == 1).nonzero().squeeze(1)
    if pos_index.numel() == 0:
        return None
    sorted_scores, order = logits[pos_index].to(torch.float64).sort(stable=True)
    work = torch.float64 if logits.dtype == torch.float64 else torch.float32
    scores = logits.detach().to(work)
    if not finite:  # only ignored pairs can be non-finite here (checked)
        scores = scores.nan_to_num(0.0, posinf=0.0, neginf=0.0)
    bins = make_bins(sorted_scores, delta)
    point_bin = bin_index(bins, scores).masked_fill_(targets != 0, bins.num_bins)
    pos_bin = bin_index(bins, sorted_scores)
    smooth = delta > 0
    return Split(
        pos_index=pos_index,
        order=order,
        point_bin=point_bin,
        point_offset=local_offsets(bins, scores, point_bin) if smooth else None,
        pos_bin=pos_bin,
        pos_offset=local_offsets(bins, sorted_scores, pos_bin) if smooth else None,
        bins=bins,
        work_dtype=work,
    )


def self_term(delta: float) -> float:
    """H(0): what a positive contributes to its own sum over positives."""
    return 0.5 if delta > 0 else 1.0


def _is_one(value: Tensor) -> bool:
    # Only on the CPU, where reading the value costs no device synchronisation.
    return value.device.type == "cpu" and value.numel() == 1 and float(value) == 1.0


def scaled_update(update: Tensor, grad_output: Tensor) -> Tensor:
    """``update · grad_output`` for a custom backward; the update itself when that is 1.

    Returning the saved update is safe: autograd copies it before accumulating when the
    graph is retained (the saved tensor still holds a reference), and takes it over
    otherwise.
    """
    if _is_one(grad_output):
        return update
    return update * grad_output.to(update.dtype)
