"""Sums of the smoothed step over a prefix or suffix of an order, in O((M + Q) log² M).

Rank & Sort Loss compares a positive only with the positives of lower (or higher) target:
``Σ_{p in a prefix of the target order} w_p H(±(x_p − q))``. That is a two-sided query — a
range in one order (the targets), a window in another (the scores) — which the bins of
``bucketed.py`` cannot answer alone. A merge-sort tree does: for every level l, cut the
order into blocks of 2^l points and sort each block by score; any prefix or suffix is a
union of at most one block per level, and inside a block the points with H = 1 and those
in the linear window of H are runs of consecutive scores, so per-block prefix sums of
``w`` and ``w·x`` answer each block in O(1) after a binary search. torch has no such
structure, so it is written here by hand; ``reference_rs.py`` holds the loop it must agree
with.

Scores enter the searches through their integer positions in one sorted copy, so ties are
exact (δ = 0 is the exact step). Prefix sums restart at every block and are accumulated in
float64, relative to a central score.
"""

from __future__ import annotations

import torch
from torch import Tensor


class PrefixTree:
    """The points ``x`` in a fixed order; built once, queried with any weights.

    Args:
        x (Tensor[M], float64): the points' scores, in the order whose prefixes and
            suffixes are queried (M ≥ 1).
        delta (float): half-width δ ≥ 0 of the smoothed step
            H(u) = clamp(u / 2δ + 1/2, 0, 1) (δ > 0), H(u) = [u ≥ 0] (δ = 0).
    """

    def __init__(self, x: Tensor, delta: float) -> None:
        m = x.numel()
        self.num_points = m
        self.delta = float(delta)
        # Padded to size = 2^L > M with zero-weight points ranked last; levels 0 .. L, so
        # that every prefix or suffix length (≤ size) is a sum of block widths.
        size = 1 << m.bit_length()
        self.num_levels = m.bit_length() + 1
        self.size = size
        self.sorted_x, by_value = x.sort()
        self.centre = self.sorted_x[m // 2]
        rank = torch.empty(size, dtype=torch.int64, device=x.device)
        rank[by_value] = torch.arange(m, device=x.device)
        rank[m:] = m
        self.stride = m + 1
        # Level l, position p: key = block · stride + rank; sorting a level's keys sorts
        # every block by score and keeps the blocks in order.
        position = torch.arange(size, device=x.device)
        shifts = torch.arange(self.num_levels, device=x.device)[:, None]
        keys = (position[None, :] >> shifts) * self.stride + rank[None, :]
        self.keys, self.order = keys.sort(dim=1)  # Tensor[L, size] each
        self.x = x

    def _ranges(self, q: Tensor, above: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Rank ranges [full_lo, full_hi) where H = 1 and [win_lo, win_hi) where H is linear.

        ``above``: H(x − q), the points above q count; else H(q − x).
        """
        xs, m, d = self.sorted_x, self.num_points, self.delta
        if d == 0:
            if above:  # x ≥ q
                lo, hi = torch.searchsorted(xs, q), torch.full_like(q, m, dtype=torch.int64)
            else:  # x ≤ q
                lo, hi = (
                    torch.zeros_like(q, dtype=torch.int64),
                    torch.searchsorted(xs, q, right=True),
                )
            return lo, hi, lo, lo
        win_lo = torch.searchsorted(xs, q - d, right=True)  # x > q − δ
        win_hi = torch.searchsorted(xs, q + d)  # x < q + δ
        if above:  # H(x − q) = 1 for x ≥ q + δ
            return win_hi, torch.full_like(win_hi, m), win_lo, win_hi
        return torch.zeros_like(win_lo), win_lo, win_lo, win_hi  # x ≤ q − δ

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
        if smooth:  # second half of the rows: w · (x − c), for the window sums
            weights = torch.cat([weights, weights * (self.x - self.centre)])
        padded = torch.nn.functional.pad(weights, (0, self.size - self.num_points))
        full_lo, full_hi, win_lo, win_hi = self._ranges(q, above)
        # A suffix of the padded order is a prefix of the reversed one, whose blocks are the
        # same blocks, numbered from the end.
        length = torch.where(suffix, self.size - count, count)
        out = q.new_zeros(r, q.numel())
        moment = q.new_zeros(r, q.numel()) if smooth else None
        for level in range(self.num_levels):
            width = 1 << level
            num_blocks = self.size >> level
            taken = length >> level
            active = (taken & 1).bool()
            block = torch.where(suffix, num_blocks - taken, taken - 1).clamp_(0, num_blocks - 1)
            # Per-block prefix sums, a zero before each block: block b's slot s (global
            # position in the level) has its prefix at s + b.
            cum = padded[:, self.order[level]].view(-1, num_blocks, width).cumsum(2)
            cum = torch.nn.functional.pad(cum, (1, 0)).view(cum.shape[0], -1)
            base = block * self.stride
            bounds = torch.stack([full_lo, full_hi, win_lo, win_hi]) + base
            slots = torch.searchsorted(self.keys[level], bounds) + block
            slots = torch.where(active, slots, 0)  # inactive: an empty range
            total = cum[:, slots.view(-1)].view(cum.shape[0], 4, -1)
            out += total[:r, 1] - total[:r, 0]
            if moment is not None:
                out_win = total[:r, 3] - total[:r, 2]
                moment_win = total[r:, 3] - total[r:, 2]
                # Σ w (x − q + δ) = Σ w (x − c) − (q − δ − c) Σ w (above), mirrored below.
                if above:
                    moment += moment_win - (q - self.delta - self.centre) * out_win
                else:
                    moment += (q + self.delta - self.centre) * out_win - moment_win
        if moment is not None:
            out += moment / (2 * self.delta)
        return out
