"""Rank & Sort Loss (Oksuz et al., ICCV 2021), exact in O(N log P + P log² P)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from alrp_cli.losses._inputs import Split, false_positives, is_one, prepare
from alrp_cli.losses.bucketed import point_sums
from alrp_cli.losses.collective import Collective
from alrp_cli.losses.prefix_tree import PrefixTree

#: An update is applied only where its denominator (N_FP, or the mis-sorted positives'
#: Σ H) exceeds this: ``eps=1e-10`` of RankSort.forward, ranking_losses.py:5 (69, 83).
RS_EPS = 1e-10


class RSLossOutput(NamedTuple):
    """What :func:`rs_loss` returns; the loss to minimise is ``ranking + sorting``.

    Attributes:
        ranking (Tensor[], logits dtype): mean ranking error; ``backward`` writes the
            ranking part of the update (positives and negatives).
        sorting (Tensor[], logits dtype): mean sorting error; ``backward`` writes the
            sorting part of the update (positives only; it sums to zero over them).
    """

    ranking: Tensor
    sorting: Tensor


class _Parts(NamedTuple):
    ranking: Tensor  # Tensor[] float64
    sorting: Tensor  # Tensor[] float64
    update: Tensor  # Tensor[N], logits dtype: both parts
    ranking_rows: Tensor  # Tensor[P_r] float64: this process's positives, ranking part
    sorting_rows: Tensor  # Tensor[P_r] float64: the same, sorting part


def _rank_sort(logits: Tensor, s: Split | None, delta: float) -> _Parts:
    """Values and updates; positives in input order (``s.pos_scores``) throughout."""
    if s is None:
        zero = logits.new_zeros((), dtype=torch.float64)
        rows = logits.new_zeros(0, dtype=torch.float64)
        return _Parts(zero, zero, torch.zeros_like(logits), rows, rows)
    assert s.pos_targets is not None
    num_pos = s.num_pos
    x, t = s.pos_scores.contiguous(), s.pos_targets.contiguous()  # gathered: strided
    n_fp = false_positives(s)[s.inverse]

    # Among the positives, split by target: k with t_k < t_i (the prefix of the target
    # order before i) and k with t_k ≥ t_i (the suffix from there, i itself included).
    t_sorted, by_target = t.sort()
    tree = PrefixTree(x[by_target], delta)
    lower = torch.searchsorted(t_sorted, t)  # #{k: t_k < t_i}
    weights = torch.stack([torch.ones_like(t), 1.0 - t])[:, by_target]
    both = torch.cat(
        [torch.zeros_like(lower, dtype=torch.bool), torch.ones_like(lower, dtype=torch.bool)]
    )
    sums = tree.sums(weights, lower.repeat(2), x.repeat(2), suffix=both, above=True)
    lower_h, upper_h = sums[0].split(num_pos)  # Σ H(s_k − s_i) over each group
    lower_e, upper_e = sums[1].split(num_pos)  # Σ H(s_k − s_i)(1 − t_k)
    rank_pos = lower_h + upper_h  # rank⁺(i), with H(0) for i itself
    rank = rank_pos + n_fp
    ranking_errors = n_fp / rank
    # current − target sorting error, (lower_e + upper_e)/rank⁺ − upper_e/upper_h, written
    # so that it is exactly 0 with no mis-sorted positive and has no cancellation.
    sorting_errors = (lower_e * upper_h - upper_e * lower_h) / (rank_pos * upper_h)

    # Ranking part: −RE(i) to i, spread over the negatives by H(s_j − s_i) / N_FP(i).
    ranked = n_fp > RS_EPS
    per_fp = torch.where(ranked, ranking_errors / torch.where(ranked, n_fp, 1.0), 0.0)
    update = point_sums(
        s.bins, s.point_bin, s.point_offset, per_fp[s.order] / num_pos, dtype=s.work_dtype
    )
    ranking_rows = torch.where(ranked, -ranking_errors, 0.0) / num_pos
    # Sorting part: −SE(i) to i, spread over the mis-sorted positives k (t_k < t_i) by
    # H(s_k − s_i) / Σ_{t_k < t_i} H(s_k − s_i); k receives from every i with t_i > t_k.
    sorts = lower_h > RS_EPS
    per_missorted = torch.where(sorts, sorting_errors / torch.where(sorts, lower_h, 1.0), 0.0)
    not_higher = torch.searchsorted(t_sorted, t, right=True)  # #{i: t_i ≤ t_k}
    received = tree.sums(
        per_missorted[by_target][None] / num_pos,
        not_higher,
        x,
        suffix=torch.ones_like(not_higher, dtype=torch.bool),
        above=False,
    )[0]
    sorting_rows = torch.where(sorts, -sorting_errors, 0.0) / num_pos + received

    own = slice(s.start, s.start + s.pos_index.numel())
    ranking_rows, sorting_rows = ranking_rows[own], sorting_rows[own]
    update = update.to(logits.dtype)
    update[s.pos_index] = (ranking_rows + sorting_rows).to(logits.dtype)
    return _Parts(ranking_errors.mean(), sorting_errors.mean(), update, ranking_rows, sorting_rows)


class _RankSort(torch.autograd.Function):
    """Both errors forward; backward returns each part's update times its incoming gradient."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, s: Split | None, delta: float) -> tuple[Tensor, Tensor]:
        parts = _rank_sort(logits, s, delta)
        pos_index = s.pos_index if s is not None else logits.new_zeros(0, dtype=torch.int64)
        ctx.save_for_backward(parts.update, pos_index, parts.ranking_rows, parts.sorting_rows)
        return parts.ranking.to(logits.dtype), parts.sorting.to(logits.dtype)

    @staticmethod
    def backward(ctx: Any, grad_ranking: Tensor, grad_sorting: Tensor) -> tuple[Any, ...]:
        update, pos_index, ranking_rows, sorting_rows = ctx.saved_tensors
        if is_one(grad_ranking) and is_one(grad_sorting):
            return update, None, None  # autograd copies it if the graph is retained
        # Negatives carry the ranking part only; positives get both parts recombined.
        grad = update * grad_ranking.to(update.dtype)
        rows = ranking_rows * grad_ranking.double() + sorting_rows * grad_sorting.double()
        grad[pos_index] = rows.to(update.dtype)
        return grad, None, None


def rs_loss(
    logits: Tensor, targets: Tensor, *, delta: float = 0.5, collective: Collective | None = None
) -> RSLossOutput:
    r"""Rank & Sort Loss: rank positives above negatives, and sort them by localisation quality.

    Positives carry a continuous target t_i ∈ (0, 1] (the IoU of their prediction with its
    ground truth). With H(x) = clamp(x / 2δ + 1/2, 0, 1) (δ = 0: [x ≥ 0]), H_ik = H(s_k − s_i),
    rank⁺(i) = Σ_{k∈P} H_ik (i itself included, H(0) = 1/2 for δ > 0),
    N_FP(i) = Σ_{j∈N} H(s_j − s_i) and rank(i) = rank⁺(i) + N_FP(i):

    .. math::
        RE(i) = \frac{N_{FP}(i)}{rank(i)}, \qquad
        SE(i) = \frac{\sum_{k \in P} H_{ik}(1 - t_k)}{rank^+(i)}
              - \frac{\sum_{k: t_k \ge t_i} H_{ik}(1 - t_k)}{\sum_{k: t_k \ge t_i} H_{ik}}

    ``ranking`` = mean_i RE(i) and ``sorting`` = mean_i SE(i). ``backward`` writes the
    paper's identity update (divided by |P|): −RE(i) to positive i, spread over the
    negatives by H(s_j − s_i) / N_FP(i); −SE(i) to positive i, spread over the positives
    k with t_k < t_i by H_ik / Σ_{t_k < t_i} H_ik; each only where its denominator exceeds
    1e-10. The ranking part is balanced (positives and negatives have equal total
    magnitude) and the sorting part sums to zero over the positives. Exact, with no
    P × N or P × P matrix (see ``docs/losses.md``); the values and updates are those of the
    published ``RankSort``.

    Args:
        logits (Tensor[N], float16/bfloat16/float32/float64): scores of all (anchor, class)
            pairs, flattened.
        targets (Tensor[N], float or integer): the IoU in (0, 1] for a positive, 0 for a
            negative, -1 ignored.
        delta (float): half-width δ ≥ 0 of the smoothed step (0.5 in the published code).
        collective (Collective or None): rank over the *global* batch of several processes,
            exactly as one process would on their inputs concatenated in rank order: every
            rank gets the same values and ``backward`` writes this process's rows of the
            global update. Under DistributedDataParallel, backpropagate
            ``world_size × loss`` (see :func:`alrp_cli.losses.alrp_loss`).

    Returns:
        RSLossOutput(ranking, sorting), scalars in the logits dtype. ``ranking.backward()``
        alone gives the ranking part of the update, ``sorting.backward()`` alone the sorting
        part, ``(ranking + sorting).backward()`` the whole update. No positives (on any
        rank): zeros that still backpropagate.

    Example:
        >>> logits = torch.tensor([2.0, 1.5, 1.0, -1.0], requires_grad=True)
        >>> targets = torch.tensor([0.6, 0.0, 0.9, 0.0])  # two positives, two negatives
        >>> out = rs_loss(logits, targets)
        >>> round(out.ranking.item(), 4), round(out.sorting.item(), 4)
        (0.2, 0.1)
        >>> (out.ranking + out.sorting).backward()
        >>> [round(float(g), 4) for g in logits.grad]
        [0.1, 0.2, -0.3, 0.0]
    """
    s = prepare(logits, targets, delta, continuous=True, collective=collective)
    ranking, sorting = _RankSort.apply(logits, s, float(delta))
    return RSLossOutput(ranking=ranking, sorting=sorting)


class RSLoss(nn.Module):
    """Module form of :func:`rs_loss` (``collective``: rank over the global batch).

    Example:
        >>> out = RSLoss()(torch.randn(20), (torch.arange(20) < 4) * torch.rand(20))
        >>> out.ranking.shape, out.sorting.shape
        (torch.Size([]), torch.Size([]))
    """

    def __init__(self, delta: float = 0.5, collective: Collective | None = None) -> None:
        super().__init__()
        self.delta = float(delta)
        self.collective = collective

    def forward(self, logits: Tensor, targets: Tensor) -> RSLossOutput:
        """logits (Tensor[N] float), targets (Tensor[N]) -> RSLossOutput (see :func:`rs_loss`)."""
        return rs_loss(logits, targets, delta=self.delta, collective=self.collective)
