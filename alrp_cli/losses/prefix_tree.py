"""Sums of the smoothed step over a prefix or suffix of an order: a merge-sort tree.

Rank & Sort Loss compares a positive only with the positives of lower (or higher) target:
``Σ_{p in a prefix of the target order} w_p H(±(x_p − q))``. That is a two-sided query — a
range in one order (the targets), a window in another (the scores) — which the bins of
``bucketed.py`` cannot answer alone. A merge-sort tree does: level l cuts the order into
blocks of 2^l points, each sorted by score; a prefix or suffix is a union of at most one
block per level, met on the walk from the root to the prefix's end; inside a block the
points with H = 1 and those in the linear window of H are runs of consecutive scores, so
running sums of ``w`` and ``w·x`` over each block, read from the side where H = 1, give
each block's share in O(1). The walk keeps, for each score threshold, its place inside the
current block: one lookup per level in a table of how many of a block's first j points (by
score) lie in its left half (fractional cascading), so no level needs a binary search.
Building costs O(M log² M) (one sort of every level's keys), a set of Q queries
O((M + Q) log M). torch has no such structure, so it is written here by hand;
``reference_rs.py`` holds the loop it must agree with.

Scores enter through their integer ranks in one sorted copy, so ties are exact (δ = 0 is
the exact step). Running sums are float64, each value split into an exactly summed part
and a small remainder (:func:`_exact_split`), so that a window's sum keeps its digits
however many far-away scores its block holds.
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
        # The slots of every level in sorted order (rows last: a gather moves whole rows).
        slots = F.pad(weights.T, (0, 0, 1, self.size - 1 - self.num_points))
        values = slots.index_select(0, self.order).view(self.num_levels, self.size, -1)
        table = self._block_sums(values, above)
        thresholds = self._thresholds(q, above)
        at = self._walk(torch.where(suffix, count, count + 1), suffix, thresholds, above)
        at = table.index_select(0, at.view(-1)).view(*at.shape, -1).sum(1)  # [T, Q, 2R']
        # at[k]: over the taken blocks, the sum of the points on the H = 1 side of
        # threshold k (above it, or below it), split in two parts (see _exact_split).
        if not smooth:
            return _join(at[0]).T
        full = at[1] if above else at[0]
        window = (at[0] - at[1]) if above else (at[1] - at[0])  # exact in the split form
        full, window = _join(full).T, _join(window).T
        w_win, m_win = window[:r], window[r:]
        # Σ_window w (x − q + δ) / 2δ = (Σ w (x − c) − (q − δ − c) Σ w) / 2δ above the query;
        # Σ_window w (q + δ − x) / 2δ below it.
        if above:
            linear = m_win - (q - self.delta - self.centre) * w_win
        else:
            linear = (q + self.delta - self.centre) * w_win - m_win
        return full[:r] + linear / (2 * self.delta)

    def _block_sums(self, values: Tensor, above: bool) -> Tensor:
        """Per block, the sums of its points from each sorted place upwards (``above``: a
        zero last) or of those before it (a zero first).

        ``values`` (Tensor[L, size, R'] float64): level l's slots, sorted within blocks.
        Returns Tensor[E, 2R'] float64, level l's block b at rows
        ``left_start[l] + b · (2^l + 1)`` onwards, each value split by :func:`_exact_split`.
        """
        parts = _exact_split(values)
        tables = []
        for level in range(self.num_levels):
            width = 1 << level
            blocks = parts[level].view(self.size >> level, width, -1)
            if above:
                sums = F.pad(blocks.flip(1).cumsum(1).flip(1), (0, 0, 0, 1))
            else:
                sums = F.pad(blocks.cumsum(1), (0, 0, 1, 0))
            tables.append(sums.view(-1, sums.shape[-1]))
        return torch.cat(tables)

    def _walk(self, target: Tensor, after: Tensor, pos: Tensor, above: bool) -> Tensor:
        """Walk from the root to slot ``target`` and list the blocks passed by whole.

        Args:
            target (Tensor[Q] int64): the slot; the slots strictly before it are summed,
                strictly after it where ``after``.
            after (Tensor[Q] bool).
            pos (Tensor[T, Q] int64): rank thresholds; in the root, sorted by rank with
                the padding last, a threshold's position is the rank itself.
            above: the tables hold sums from each place upwards (else: before it).

        Returns:
            Tensor[T, L, Q] int64: per level, the rows of :meth:`_block_sums` at the
            thresholds' places in the taken block; where a level takes no block, a row
            holding zero (the end of the block, or its start).
        """
        levels = self.num_levels
        # Per level (root first), the bit that picks the child on the way to the target.
        shifts = torch.arange(levels - 1, -1, -1, device=target.device)[:, None]
        bits = (target[None] >> shifts) & 1  # Tensor[L, Q]
        go_right = bits.bool()
        # Strictly before the target, a left child passed by is taken whole; strictly after
        # it, a right child passed by.
        take = (go_right != after).long()
        side = after.long()
        rows = target.new_empty(pos.shape[0], levels, target.numel())
        block = torch.zeros_like(target)
        for i, level in enumerate(range(levels, 0, -1)):
            width = 1 << (level - 1)  # of a child
            start = self.left_start[level] + block * (2 * width + 1)
            in_left = self.left.index_select(0, (pos + start).view(-1)).view(pos.shape)
            right_pos = pos - in_left
            first = self.left_start[level - 1] + (2 * block + side) * (width + 1)
            place = torch.where(after, right_pos, in_left)
            # Not taken: the zero after the block's end (above), or before its start.
            empty = width if above else 0
            rows[:, i] = place.sub_(empty).mul_(take[i]).add_(first + empty)
            block = 2 * block + bits[i]
            pos = torch.where(go_right[i], right_pos, in_left)
        return rows


def _exact_split(values: Tensor) -> Tensor:
    """Split Tensor[L, S, R] float64 into Tensor[L, S, 2R]: ``values`` = first R rows + last R.

    A window's weighted sum is the difference of two sums over a block that may be far
    larger than it (every point of the block beyond the window), and is then multiplied by
    a score difference, so rounding in those sums would be amplified. The first part is a
    multiple of a power of two ``quantum`` chosen so that any sum of such parts, even over
    every level, is an integer below 2^51 times it: exact. The second part is below
    quantum / 2, and so are its sums' rounding errors. Differences of sums are taken in the
    split form and the two parts added only then (:func:`_join`).
    """
    levels = values.shape[0]
    total = values[0].abs().sum(0)  # every level holds every point once
    quantum = torch.exp2(torch.ceil(torch.log2(total.clamp_min(1e-280) * levels)) - 51)
    high = torch.round(values / quantum) * quantum
    return torch.cat([high, values - high], dim=-1)


def _join(split: Tensor) -> Tensor:
    """Tensor[..., 2R] of :func:`_exact_split` form -> Tensor[..., R]: the two parts added."""
    half = split.shape[-1] // 2
    return split[..., :half] + split[..., half:]
