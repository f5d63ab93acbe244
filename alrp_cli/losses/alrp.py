"""aLRP Loss (Oksuz et al., NeurIPS 2020), exact in O(N log P), and its self-balancing module."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from alrp_cli.losses._inputs import Split, check_inputs, scaled_update, self_term, split
from alrp_cli.losses.bucketed import point_sums, query_sums

#: Positives whose N_FP is at most this get no update (as in the published code).
FP_EPS = 1e-5


class ALRPLossOutput(NamedTuple):
    """What :func:`alrp_loss` returns.

    Attributes:
        cls (Tensor[], input dtype): L_cls; ``backward`` writes the error-driven update.
        loc (Tensor[], dtype of loc_errors): L_loc; differentiable w.r.t. loc_errors only.
        rank (Tensor[P], float64, detached): rank of each positive among all examples.
    """

    cls: Tensor
    loc: Tensor
    rank: Tensor


def _alrp_classification(
    logits: Tensor, s: Split | None, loc_errors: Tensor, delta: float
) -> tuple[Tensor, Tensor, Tensor]:
    """L_cls (float64 scalar), the update (Tensor[N], logits dtype) and ranks (Tensor[P])."""
    if s is None:
        zero = logits.new_zeros((), dtype=torch.float64)
        return zero, torch.zeros_like(logits), logits.new_zeros(0, dtype=torch.float64)
    e_sorted = loc_errors.detach().to(torch.float64)[s.order]
    (n_fp,) = query_sums(s.bins, s.point_bin, s.point_offset, [None])
    pos_count, pos_e = query_sums(s.bins, s.pos_bin, s.pos_offset, [None, e_sorted])
    h0 = self_term(delta)
    rank = (1.0 - h0) + pos_count + n_fp  # rank⁺ = 1 + Σ_{k≠i} H(s_k − s_i)
    value = (n_fp / rank).mean()
    active = n_fp > FP_EPS
    g_pos = torch.where(active, -(n_fp + pos_e - h0 * e_sorted) / rank, 0.0) / s.num_pos
    per_fp = torch.where(active, -g_pos / torch.where(active, n_fp, 1.0), 0.0)
    grad = point_sums(s.bins, s.point_bin, s.point_offset, per_fp, dtype=s.work_dtype)
    grad = grad.to(logits.dtype)
    grad[s.pos_index[s.order]] = g_pos.to(logits.dtype)
    rank_in_order = torch.empty_like(rank)
    rank_in_order[s.order] = rank
    return value, grad, rank_in_order


class _ALRPClassification(torch.autograd.Function):
    """L_cls forward; backward returns the error-driven update computed in forward."""

    @staticmethod
    def forward(
        ctx: Any, logits: Tensor, s: Split | None, loc_errors: Tensor, delta: float
    ) -> tuple[Tensor, Tensor]:
        value, grad, rank = _alrp_classification(logits, s, loc_errors, delta)
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(rank)
        return value.to(logits.dtype), rank

    @staticmethod
    def backward(ctx: Any, grad_value: Tensor, _grad_rank: Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return scaled_update(grad, grad_value), None, None, None


def _localisation(logits: Tensor, s: Split | None, loc_errors: Tensor, rank: Tensor) -> Tensor:
    """L_loc = mean_i (Σ_{k placed at or before i} e_k) / rank(i), ranks detached."""
    if s is None:
        return loc_errors.sum() * 0.0
    compute = torch.promote_types(loc_errors.dtype, torch.float32)
    pos_scores = logits.detach()[s.pos_index]
    placed = pos_scores.sort(descending=True, stable=True).indices
    cumulative = loc_errors.to(compute)[placed].cumsum(0)
    return (cumulative / rank[placed].to(compute)).mean().to(loc_errors.dtype)


def alrp_loss(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, *, delta: float = 1.0
) -> ALRPLossOutput:
    r"""aLRP Loss: classification and localisation as one ranking loss.

    For a positive i with rank⁺(i) = 1 + Σ_{k∈P,k≠i} H(s_k − s_i), N_FP(i) = Σ_{j∈N} H(s_j − s_i)
    and rank(i) = rank⁺(i) + N_FP(i), where H(x) = clamp(x / 2δ + 1/2, 0, 1):

    .. math::
        L_{cls} = \frac{1}{|P|}\sum_i \frac{N_{FP}(i)}{rank(i)}, \qquad
        L_{loc} = \frac{1}{|P|}\sum_i \frac{\sum_{k \preceq i} e_k}{rank(i)}

    with k ⪯ i: k placed at or before i in descending score (ties by input position).
    ``cls.backward()`` puts the paper's error-driven update into ``logits.grad``; it is
    balanced (Theorem 2): the positives' and negatives' updates have equal total magnitude.
    Computed exactly in O(N log P) with no P × N matrix (see ``docs/losses.md``).

    Args:
        logits (Tensor[N], float16/bfloat16/float32/float64): scores of all (anchor, class)
            pairs, flattened.
        targets (Tensor[N]): 1 positive, 0 negative, -1 ignored.
        loc_errors (Tensor[P], float): one localisation error per positive, in the order
            the positives appear in ``logits`` (in the paper, e = 1 − GIoU).
        delta (float): half-width δ ≥ 0 of the smoothed step; 0 is the exact step.

    Returns:
        ALRPLossOutput(cls, loc, rank). No positives: zeros that still backpropagate.

    Example:
        >>> logits = torch.tensor([2.0, 0.5, 1.0, -1.0], requires_grad=True)
        >>> targets = torch.tensor([1, 0, 1, 0])
        >>> out = alrp_loss(logits, targets, torch.tensor([0.2, 0.4]), delta=0.5)
        >>> out.cls.backward()
        >>> round(float(logits.grad[logits.grad > 0].sum() + logits.grad[logits.grad < 0].sum()), 6)
        0.0
    """
    finite = check_inputs(logits, targets, delta)
    s = split(logits.detach(), targets, float(delta), finite=finite)
    num_pos = 0 if s is None else s.num_pos
    if loc_errors.dim() != 1 or loc_errors.numel() != num_pos:
        raise ValueError(
            f"loc_errors must be 1-D with one entry per positive ({num_pos}), "
            f"got shape {tuple(loc_errors.shape)}"
        )
    if not bool(torch.isfinite(loc_errors).all()):
        raise ValueError("loc_errors contain non-finite values; check the box regression")
    cls, rank = _ALRPClassification.apply(logits, s, loc_errors, float(delta))
    loc = _localisation(logits, s, loc_errors, rank)
    return ALRPLossOutput(cls=cls, loc=loc, rank=rank)


class ALRPLossResult(NamedTuple):
    """What :class:`ALRPLoss` returns: ``total = cls + weight · loc`` and its parts."""

    total: Tensor
    cls: Tensor
    loc: Tensor
    weight: Tensor
    rank: Tensor


class ALRPLoss(nn.Module):
    """aLRP Loss with the paper's self-balance of L_loc's weight.

    ``total = cls + w · loc``; ``w`` starts at ``init_weight`` and, once every ``period``
    training-mode calls (one epoch), becomes ``(mean L_loc + mean L_cls) / mean L_loc`` over
    that period — applied from the call that completes the period on, as in the published
    code. In eval mode nothing is accumulated. The weight and the running sums of the
    current period are buffers and the call count is extra state, so ``state_dict()``
    resumes a run exactly.

    Args:
        period (int): calls per self-balance update (iterations per epoch).
        init_weight (float): the first weight of L_loc.
        delta (float): δ of :func:`alrp_loss`.

    Example:
        >>> crit = ALRPLoss(period=100)
        >>> res = crit(torch.randn(50), (torch.arange(50) < 3).long(), torch.rand(3))
        >>> float(res.weight)
        50.0
    """

    weight: Tensor
    cls_sum: Tensor
    loc_sum: Tensor

    def __init__(self, period: int, init_weight: float = 50.0, delta: float = 1.0) -> None:
        super().__init__()
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = int(period)
        self.delta = float(delta)
        self.register_buffer("weight", torch.tensor(float(init_weight), dtype=torch.float64))
        self.register_buffer("cls_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("loc_sum", torch.zeros((), dtype=torch.float64))
        self.count = 0

    def get_extra_state(self) -> dict[str, int]:
        """The number of calls accumulated in the current period."""
        return {"count": self.count}

    def set_extra_state(self, state: dict[str, int]) -> None:
        """Restore the call count of the current period."""
        self.count = int(state["count"])

    def forward(self, logits: Tensor, targets: Tensor, loc_errors: Tensor) -> ALRPLossResult:
        """Shapes as :func:`alrp_loss`; returns ALRPLossResult(total, cls, loc, weight, rank)."""
        out = alrp_loss(logits, targets, loc_errors, delta=self.delta)
        if self.training:
            self.cls_sum += out.cls.detach().to(torch.float64)
            self.loc_sum += out.loc.detach().to(torch.float64)
            self.count += 1
            if self.count == self.period:
                # (mean loc + mean cls) / mean loc == (Σloc + Σcls) / Σloc; keep w if Σloc = 0.
                ratio = (self.loc_sum + self.cls_sum) / self.loc_sum
                self.weight.copy_(torch.where(self.loc_sum > 0, ratio, self.weight))
                self.cls_sum.zero_()
                self.loc_sum.zero_()
                self.count = 0
        weight = self.weight.detach().clone()
        total = out.cls + weight.to(out.loc.dtype) * out.loc
        return ALRPLossResult(total=total, cls=out.cls, loc=out.loc, weight=weight, rank=out.rank)
