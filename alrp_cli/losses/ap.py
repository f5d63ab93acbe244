"""AP Loss (Chen et al., CVPR 2019), interpolated form as published beside aLRP, in O(N log P)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from alrp_cli.losses._inputs import Split, false_positives, prepare, scaled_update, self_term
from alrp_cli.losses.bucketed import point_sums, query_sums
from alrp_cli.losses.collective import Collective


def _ap_classification(logits: Tensor, s: Split | None, delta: float) -> tuple[Tensor, Tensor]:
    """L_AP (float64 scalar) and the error-driven update (Tensor[N], logits dtype)."""
    if s is None:
        return logits.new_zeros((), dtype=torch.float64), torch.zeros_like(logits)
    n_fp = false_positives(s)
    (pos_count,) = query_sums(s.bins, s.pos_bin, s.pos_offset, [None])
    rank_plus = (1.0 - self_term(delta)) + pos_count
    rank = rank_plus + n_fp
    precision = rank_plus / rank
    # Positives visited in ascending score: interpolated precision is the running maximum.
    # Tied positives have equal precision, so the order among ties does not matter.
    interp = precision.cummax(0).values
    value = 1.0 - interp.mean()
    on_max = precision == interp
    shortfall = torch.where(on_max, 1.0, 1.0 - precision)
    c = torch.where(on_max, 1.0, (1.0 - interp) / shortfall)
    v = c / rank / s.num_pos
    grad = point_sums(s.bins, s.point_bin, s.point_offset, v, dtype=s.work_dtype)
    grad = grad.to(logits.dtype)
    grad[s.pos_index] = (-(1.0 - interp) / s.num_pos)[s.own].to(logits.dtype)
    return value, grad


class _APClassification(torch.autograd.Function):
    """L_AP forward; backward returns the error-driven update computed in forward."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, s: Split | None, delta: float) -> Tensor:
        value, grad = _ap_classification(logits, s, delta)
        ctx.save_for_backward(grad)
        return value.to(logits.dtype)

    @staticmethod
    def backward(ctx: Any, grad_value: Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return scaled_update(grad, grad_value), None, None


def ap_loss(
    logits: Tensor, targets: Tensor, *, delta: float = 1.0, collective: Collective | None = None
) -> Tensor:
    r"""AP Loss with interpolated precision and its error-driven update.

    Positives are visited in ascending score; the interpolated precision ip(i) is the running
    maximum of precision(i) = rank⁺(i) / rank(i) over the positives visited so far, and

    .. math:: L_{AP} = 1 - \frac{1}{|P|}\sum_i ip(i).

    ``backward`` writes g_i = −(1 − ip(i)) / |P| for positives and
    g_j = Σ_i c_i H(s_j − s_i) / (rank(i) |P|) for negatives, with c_i = 1 where
    precision(i) = ip(i) and (1 − ip(i)) / (1 − precision(i)) otherwise; the update is balanced.

    Args:
        logits (Tensor[N], float): scores of all (anchor, class) pairs, flattened.
        targets (Tensor[N]): 1 positive, 0 negative, -1 ignored.
        delta (float): half-width δ ≥ 0 of the smoothed step; 0 is the exact step.
        collective (Collective or None): rank over the *global* batch of several processes,
            exactly as one process would on their inputs concatenated in rank order: every
            rank gets the same value and ``backward`` writes this process's rows of the
            global update. Under DistributedDataParallel, backpropagate
            ``world_size × loss`` (see :func:`alrp_cli.losses.alrp_loss`).

    Returns:
        Tensor[] in the logits dtype. No positives (on any rank): 0 with zero gradient.

    Example:
        >>> logits = torch.tensor([2.0, 1.5, 1.0, -1.0], requires_grad=True)
        >>> loss = ap_loss(logits, torch.tensor([1, 0, 1, 0]), delta=0.5)
        >>> round(float(loss), 4)
        0.1667
    """
    s = prepare(logits, targets, delta, collective=collective)
    return _APClassification.apply(logits, s, float(delta))


class APLoss(nn.Module):
    """Module form of :func:`ap_loss` (``collective``: rank over the global batch).

    Example:
        >>> APLoss(delta=1.0)(torch.randn(20), (torch.arange(20) < 4).long()).shape
        torch.Size([])
    """

    def __init__(self, delta: float = 1.0, collective: Collective | None = None) -> None:
        super().__init__()
        self.delta = float(delta)
        self.collective = collective

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits (Tensor[N] float), targets (Tensor[N]) -> Tensor[] (see :func:`ap_loss`)."""
        return ap_loss(logits, targets, delta=self.delta, collective=self.collective)
