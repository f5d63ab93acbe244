"""aLRP Loss (Oksuz et al., NeurIPS 2020), exact in O(N log P), and its self-balancing module."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from alrp_cli.losses._inputs import Split, false_positives, prepare, scaled_update, self_term
from alrp_cli.losses.bucketed import point_sums, query_sums
from alrp_cli.losses.collective import Collective

#: Positives whose N_FP is at most this get no update (as in the published code).
FP_EPS = 1e-5


class ALRPLossOutput(NamedTuple):
    """What :func:`alrp_loss` returns.

    Attributes:
        cls (Tensor[], input dtype): L_cls; ``backward`` writes the error-driven update.
        loc (Tensor[], dtype of loc_errors): L_loc; differentiable w.r.t. loc_errors only.
        rank (Tensor[P], float64, detached): rank of each positive among all examples.
            With a collective: this process's P_r positives, ranked in the global batch.
    """

    cls: Tensor
    loc: Tensor
    rank: Tensor


def _alrp_classification(
    logits: Tensor, s: Split | None, delta: float
) -> tuple[Tensor, Tensor, Tensor]:
    """L_cls (float64 scalar), the update (Tensor[N], logits dtype) and the ranks of all
    positives (Tensor[P] float64, input order)."""
    if s is None:
        zero = logits.new_zeros((), dtype=torch.float64)
        return zero, torch.zeros_like(logits), logits.new_zeros(0, dtype=torch.float64)
    assert s.pos_errors is not None
    e_sorted = s.pos_errors[s.order]
    n_fp = false_positives(s)
    pos_count, pos_e = query_sums(s.bins, s.pos_bin, s.pos_offset, [None, e_sorted])
    h0 = self_term(delta)
    rank = (1.0 - h0) + pos_count + n_fp  # rank⁺ = 1 + Σ_{k≠i} H(s_k − s_i)
    value = (n_fp / rank).mean()
    active = n_fp > FP_EPS
    g_pos = torch.where(active, -(n_fp + pos_e - h0 * e_sorted) / rank, 0.0) / s.num_pos
    per_fp = torch.where(active, -g_pos / torch.where(active, n_fp, 1.0), 0.0)
    grad = point_sums(s.bins, s.point_bin, s.point_offset, per_fp, dtype=s.work_dtype)
    grad = grad.to(logits.dtype)
    grad[s.pos_index] = g_pos[s.own].to(logits.dtype)
    return value, grad, rank[s.inverse]


class _ALRPClassification(torch.autograd.Function):
    """L_cls forward; backward returns the error-driven update computed in forward."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, s: Split | None, delta: float) -> tuple[Tensor, Tensor]:
        value, grad, rank = _alrp_classification(logits, s, delta)
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(rank)
        return value.to(logits.dtype), rank

    @staticmethod
    def backward(ctx: Any, grad_value: Tensor, _grad_rank: Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return scaled_update(grad, grad_value), None, None


def _localisation(s: Split | None, loc_errors: Tensor, rank: Tensor) -> Tensor:
    """L_loc = mean_i (Σ_{k placed at or before i} e_k) / rank(i), ranks detached.

    ``rank``: Tensor[P] of all positives in input order; with a collective, autograd
    reaches this process's rows of e only.
    """
    if s is None:
        return loc_errors.sum() * 0.0
    compute = torch.promote_types(loc_errors.dtype, torch.float32)
    placed = s.pos_scores.sort(descending=True, stable=True).indices
    cumulative = s.live_errors(loc_errors).to(compute)[placed].cumsum(0)
    return (cumulative / rank[placed].to(compute)).mean().to(loc_errors.dtype)


def alrp_loss(
    logits: Tensor,
    targets: Tensor,
    loc_errors: Tensor,
    *,
    delta: float = 1.0,
    collective: Collective | None = None,
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
        collective (Collective or None): rank over the *global* batch of several processes,
            exactly as one process would on their inputs concatenated in rank order. Every
            rank gets the same ``cls`` and ``loc``; ``backward`` writes into this process's
            ``logits.grad`` and ``loc_errors.grad`` its rows of the global update, and
            ``rank`` holds this process's positives. Only the positives and per-bin totals
            cross the wire (see ``docs/losses.md``). Under DistributedDataParallel, which
            averages parameter gradients over the ranks, backpropagate
            ``world_size × loss`` to get the gradient of one process on the global batch.

    Returns:
        ALRPLossOutput(cls, loc, rank). No positives (on any rank): zeros that still
        backpropagate.

    Example:
        >>> logits = torch.tensor([2.0, 0.5, 1.0, -1.0], requires_grad=True)
        >>> targets = torch.tensor([1, 0, 1, 0])
        >>> out = alrp_loss(logits, targets, torch.tensor([0.2, 0.4]), delta=0.5)
        >>> out.cls.backward()
        >>> round(float(logits.grad[logits.grad > 0].sum() + logits.grad[logits.grad < 0].sum()), 6)
        0.0
    """
    s = prepare(logits, targets, delta, loc_errors=loc_errors, collective=collective)
    cls, rank = _ALRPClassification.apply(logits, s, float(delta))
    loc = _localisation(s, loc_errors, rank)
    if s is not None and s.pos_index.numel() != s.num_pos:
        rank = rank[s.start : s.start + s.pos_index.numel()]
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
        collective (Collective or None): rank over the global batch of several processes
            (see :func:`alrp_loss`). ``cls`` and ``loc`` are then global and identical on
            every rank, so the self-balance weight is computed from global means and
            stays identical on every rank.

    Example:
        >>> crit = ALRPLoss(period=100)
        >>> res = crit(torch.randn(50), (torch.arange(50) < 3).long(), torch.rand(3))
        >>> float(res.weight)
        50.0
    """

    weight: Tensor
    cls_sum: Tensor
    loc_sum: Tensor

    def __init__(
        self,
        period: int,
        init_weight: float = 50.0,
        delta: float = 1.0,
        collective: Collective | None = None,
    ) -> None:
        super().__init__()
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = int(period)
        self.delta = float(delta)
        self.collective = collective
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
        out = alrp_loss(logits, targets, loc_errors, delta=self.delta, collective=self.collective)
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
