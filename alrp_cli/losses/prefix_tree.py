"""Sums of the smoothed step over a prefix or suffix of an order, in O((M + Q) log M).

Rank & Sort Loss compares a positive only with the positives of lower (or higher) target:
``Σ_{p in a prefix of the target order} w_p H(±(x_p − q))``. That is a two-sided query — a
range in one order (the targets), a window in another (the scores) — which the bins of
``bucketed.py`` cannot answer alone. A merge-sort tree does: level l cuts the order into
blocks of 2^l points, each sorted by score; a prefix or suffix is a union of at most one
block per level, met on the walk from the root to the prefix's end; inside a block the
points with H = 1 and those in the linear window of H are runs of consecutive scores, so
per-block prefix sums of ``w`` and ``w·x`` give each block's share in O(1). The walk keeps,
for each score threshold, its position inside the current block: one lookup per level in
a table of how many of a block's first j points (by score) lie in its left half
(fractional cascading), so no level needs a binary search. torch has no such structure, so
it is written here by hand; ``reference_rs.py`` holds the loop it must agree with.

Scores enter through their integer ranks in one sorted copy, so ties are exact (δ = 0 is
the exact step). Prefix sums restart at every block and are kept in float64, relative to
a central score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class PrefixTree:
    """The points ``x`` in a fixed order; built once, queried with any weights.

    Args:
        x (Tensor[M], float64): the points' scores, in the order whose prefixes and
            suffixes are queried (M ≥ 1).
        delta (float): half-width δ ≥ 0 of the smoothed step
            H(u) = clamp(u / 2δ + 1/2, 0, 1) (δ > 0), H(u) = [u ≥ 0] (δ = 0).

    Point p sits at slot p + 1 of ``size`` = 2^L ≥ M + 2 slots; the other slots hold
    zero-weight padding ranked last. Then the prefix of length c is the slots strictly
    before c + 1 and the suffix from c the slots strictly after c, both on the walk to a
    slot inside the tree.
    """

    def __init__(self, x: Tensor, delta: float) -> None:
        m = x.numel()
        device = x.device
        self.num_points = m
        self.delta = float(delta)
        self.num_levels = (m + 1).bit_length()  # levels 0 (single slots) .. L (the root)
        size = 1 << self.num_levels
        self.size = size
        self.x = x
        self.sorted_x, by_value = x.sort()
        self.centre = self.sorted_x[m // 2]
        rank = torch.full((size,), m, dtype=torch.int64, device=device)
        rank[1 + by_value] = torch.arange(m, device=device)
        slot = torch.arange(size, device=device)
        # Levels 0 .. L − 1 (the root is never taken whole): sorting by (block, rank) sorts
        # every block of 2^l slots by score.
        shifts = torch.arange(self.num_levels + 1, device=device)[:, None]
        keys = (slot[None, :] >> shifts) * (m + 1) + rank[None, :]
        order = keys.argsort(dim=1)  # Tensor[L + 1, size]: the slot at each sorted place
        self.order = order[:-1].reshape(-1)
        # Fractional cascading: left[l, b·(2^l + 1) + j] is how many of the first j slots
        # (by score) of block b at level l lie in its left half (l ≥ 1).
        in_left = ((order >> (shifts - 1).clamp_(min=0)) & 1) == 0
        left = []
        for level in range(self.num_levels + 1):
            counts = in_left[level].view(size >> level, 1 << level).cumsum(1)
            left.append(F.pad(counts, (1, 0)).view(-1))
        self.left_start = [0]
        for table in left[:-1]:
            self.left_start.append(self.left_start[-1] + table.numel())
        self.left = torch.cat(left)

    def _thresholds(self, q: Tensor, above: bool) -> Tensor:
        """Rank thresholds of each query, Tensor[T, Q]: T = 1 for δ = 0 (H = 1 on ranks ≥ r
        if ``above``, < r otherwise); T = 2 for δ > 0 (the window of H between them, H = 1
        above it if ``above``, below it otherwise)."""
        xs, d = self.sorted_x, self.delta
        if d == 0:
            return torch.searchsorted(xs, q, right=not above)[None]  # x ≥ q, or x ≤ q
        return torch.stack(
            [torch.searchsorted(xs, q - d, right=True), torch.searchsorted(xs, q + d)]
        )

    def sums(
        self, weights: Tensor, count: Tensor, q: Tensor, *, suffix: Tensor, above: bool
    ) -> Tensor:
        """For every query j, ``Σ_p w_p H(x_p − q_j)`` (``above``) or ``Σ_p w_p H(q_j − x_p)``
        over the positions p < count_j, or p ≥ count_j where ``suffix[j]``.

        Args:
            weights (Tensor[R, M], float64): R weight rows, in the tree's order.
            count (Tensor[Q], int64): 0 ≤ count ≤ M.
            q (Tensor[Q], float64): query scores.
            suffix (Tensor[Q], bool): whether query j sums the suffix.
            above: which side of the step (see above).

        Returns:
            Tensor[R, Q] float64.
        """
        r = weights.shape[0]
        smooth = self.delta > 0
        if smooth:  # rows r..2r−1: w · (x − c), for the window sums
            weights = torch.cat([weights, weights * (self.x - self.centre)])
        # Per level, prefix sums of the slots in sorted order, a zero first: a run of one
        # block is the difference of two entries.
        # (Rows last, so that a gather moves contiguous rows.)
        slots = F.pad(weights.T, (0, 0, 1, self.size - 1 - self.num_points))
        cum = slots.index_select(0, self.order).view(self.num_levels, self.size, -1)
        cum = F.pad(cum.cumsum(1), (0, 0, 1, 0)).view(-1, len(weights))
        runs = self._walk(torch.where(suffix, count, count + 1), suffix, self._thresholds(q, above))
        at = cum.index_select(0, runs.view(-1)).view(*runs.shape, -1).sum(1).permute(2, 0, 1)
        # at[:, k]: the sum over the taken blocks of the k-th boundary's prefix sum.
        if not smooth:  # boundaries: start, threshold, end of each taken block
            return (at[:, 2] - at[:, 1]) if above else (at[:, 1] - at[:, 0])
        window = at[:, 2] - at[:, 1]  # boundaries: start, lo, hi, end
        full = (at[:, 3] - at[:, 2]) if above else (at[:, 1] - at[:, 0])
        # Σ_window w (x − q + δ) / 2δ = (Σ w (x − c) − (q − δ − c) Σ w) / 2δ above the query;
        # Σ_window w (q + δ − x) / 2δ below it.
        w_win, m_win = window[:r], window[r:]
        if above:
            linear = m_win - (q - self.delta - self.centre) * w_win
        else:
            linear = (q + self.delta - self.centre) * w_win - m_win
        return full[:r] + linear / (2 * self.delta)

    def _walk(self, target: Tensor, after: Tensor, pos: Tensor) -> Tensor:
        """Walk from the root to slot ``target`` and list the blocks passed by whole.

        Args:
            target (Tensor[Q] int64): the slot; the slots strictly before it are summed,
                strictly after it where ``after``.
            after (Tensor[Q] bool).
            pos (Tensor[T, Q] int64): rank thresholds; in the root, sorted by rank with
                the padding last, a threshold's position is the rank itself.

        Returns:
            Tensor[T + 2, L, Q] int64: per level, the flat indices into the per-level
            prefix sums of the taken block's start, the thresholds' positions in it and its
            end; all equal (an empty run) where the level takes no block.
        """
        size, levels = self.size, self.num_levels
        # Per level (root first), the bit that picks the child on the way to the target.
        shifts = torch.arange(levels - 1, -1, -1, device=target.device)[:, None]
        bits = (target[None] >> shifts) & 1  # Tensor[L, Q]
        go_right = bits.bool()
        # Strictly before the target, a left child passed by is taken whole; strictly after
        # it, a right child passed by.
        take = (go_right != after).long()
        side = after.long()
        runs = target.new_empty(pos.shape[0] + 2, levels, target.numel())
        block = torch.zeros_like(target)
        for i, level in enumerate(range(levels, 0, -1)):
            width = 1 << (level - 1)  # of a child
            start = self.left_start[level] + block * (2 * width + 1)
            in_left = self.left.index_select(0, (pos + start).view(-1)).view(pos.shape)
            right_pos = pos - in_left
            child_pos = torch.where(after, right_pos, in_left)
            first = (level - 1) * (size + 1) + (2 * block + side) * width
            # A block not taken gets an empty run: every boundary at its start.
            runs[0, i] = first
            runs[1:-1, i] = child_pos.mul_(take[i]).add_(first)
            runs[-1, i] = take[i] * width + first
            block = 2 * block + bits[i]
            pos = torch.where(go_right[i], right_pos, in_left)
        return runs
