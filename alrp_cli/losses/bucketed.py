"""Bucketed sums of the smoothed step function, exact in O(N + P log P).

Every sum in aLRP Loss and AP Loss has the form ``Σ_j w_j H(b_j − x)`` for ``P`` query
scores ``x`` (the positives) and ``N`` points ``b`` (the negatives, or the positives
themselves), with the smoothed step

    H(u) = clamp(u / (2δ) + 1/2, 0, 1)      (δ > 0),      H(u) = [u ≥ 0]   (δ = 0).

H is piecewise linear with breakpoints at ±δ, so after sorting the ``P`` queries once, the
``2P`` values ``x ± δ`` (the *edges*) cut the line into ``2P + 1`` bins inside which every
``H(b − x_i)`` is 0, 1, or linear in ``b``. Bin every point once, take per-bin counts and
sums of the point's offset from its bin's left edge (``bincount``), and prefix sums over the
bins give every query's sum; the reverse direction (a weighted sum over the queries for
every point) is ``base[k] + slope[k] · offset`` per point. No ``N``-sized sort and no
``P × N`` matrix. torch has no primitive for this, so it is written here by hand;
``reference.py`` holds the plain loop it must agree with.

Offsets from the bin's left edge are small and non-negative, so per-point arithmetic stays
in the input dtype without cancellation; per-bin and per-query quantities are float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Below this many points binary search is as fast as the grid, and simpler.
_GRID_MIN_POINTS = 16384


@dataclass(frozen=True)
class Bins:
    """The bins cut by the sorted queries; built once per loss call and reused.

    Attributes:
        queries (Tensor[P], float64): the query scores, sorted ascending.
        edges (Tensor[E], float64): distinct bin edges, ascending — the values ``queries ∓ δ``
            when δ > 0 (E ≤ 2P), the query values when δ = 0 (E ≤ P). Bin k holds the points
            with exactly k edges below them (δ > 0: ``edge < b``; δ = 0: ``edge ≤ b``).
        left (Tensor[E + 1], float64): left edge of each bin (bin 0: the first edge).
        delta (float): the smoothing half-width δ ≥ 0.
    """

    queries: Tensor
    edges: Tensor
    left: Tensor
    delta: float

    @property
    def num_bins(self) -> int:
        """Number of bins: ``len(edges) + 1``."""
        return self.edges.numel() + 1


def make_bins(sorted_queries: Tensor, delta: float) -> Bins:
    """Build the bins for ``sorted_queries`` (Tensor[P] float64, ascending, P ≥ 1)."""
    if delta > 0:
        edges = torch.cat([sorted_queries - delta, sorted_queries + delta]).sort().values
    else:
        edges = sorted_queries
    # Equal edges would only make empty bins; distinct ones keep the binning to one compare.
    edges = torch.unique_consecutive(edges)
    left = torch.cat([edges[:1], edges])
    return Bins(queries=sorted_queries, edges=edges, left=left, delta=float(delta))


def _count_below(edges: Tensor, points: Tensor, inclusive: bool) -> Tensor:
    """``#{edges < b}`` (or ``≤`` when ``inclusive``) for every point: Tensor[M] int32, exact.

    ``edges`` must be distinct and ascending. Binary search (``bucketize``) costs ~100 ns a
    point on a CPU, more than the rest of the loss together. Instead, a uniform grid of cells
    over the edges' range maps each point to a cell with a few element-wise operations. That
    map is monotone in floating point, so every edge in an earlier cell is below the point
    and every edge in a later cell is above it: where a cell holds at most one edge, one
    comparison with it settles the count. Points in cells holding two or more edges (rare)
    fall back to binary search.
    """
    lo, hi = edges[0], edges[-1]
    if points.numel() < _GRID_MIN_POINTS or edges.numel() < 2:
        return torch.bucketize(points, edges, right=inclusive, out_int32=True)
    num_cells = 16 * edges.numel()
    scale = num_cells / (hi - lo)
    origin = lo - 1 / scale

    # Any map that is monotone in floating point works; truncation of the clamped,
    # non-negative value is floor. Cells 0 .. num_cells + 1. Edges and points go through
    # the very same operations.
    edge_cells = (edges - origin).mul_(scale).clamp_(0, num_cells + 1).to(torch.int32)
    cells = torch.arange(num_cells + 2, device=edges.device, dtype=torch.int32)
    first = torch.searchsorted(edge_cells, cells, out_int32=True)  # edges in earlier cells
    crowded = torch.searchsorted(edge_cells, cells, right=True, out_int32=True) - first > 1
    # The one edge a cell may hold, or the next edge above it (+inf past the last).
    candidate = torch.cat([edges, edges.new_full((1,), torch.inf)])[first.long()]
    scaled = (points - origin).mul_(scale).clamp_(0, num_cells + 1)
    point_cells = scaled.to(torch.int32)
    nearest = torch.index_select(candidate, 0, point_cells, out=scaled)  # reuse the buffer
    hit = (nearest <= points) if inclusive else (nearest < points)
    below = first.index_select(0, point_cells) + hit
    if bool(crowded.any()):
        redo = crowded.index_select(0, point_cells).nonzero().squeeze(1)
        below[redo] = torch.bucketize(points[redo], edges, right=inclusive, out_int32=True)
    return below


def bin_index(bins: Bins, points: Tensor) -> Tensor:
    """Bin of each point: Tensor[M] float (any dtype, e.g. the logits') -> Tensor[M] int32.

    The edges are compared in the points' dtype. With δ = 0 the edges are the queries,
    which came from the same dtype, so the exact step is exact; with δ > 0 a rounded edge
    only moves a point whose H is continuous there.
    """
    return _count_below(bins.edges.to(points.dtype), points, inclusive=bins.delta == 0)


def local_offsets(bins: Bins, points: Tensor, index: Tensor) -> Tensor:
    """Offset of each point from its bin's left edge: Tensor[M] in the points' dtype.

    ``index`` may hold ``num_bins`` for points left out; their offset is the point itself.
    """
    left = torch.cat([bins.left, bins.left.new_zeros(1)]).to(points.dtype)
    return left.index_select(0, index).neg_().add_(points)


def bin_totals(
    bins: Bins, index: Tensor, offsets: Tensor | None, weights: list[Tensor | None]
) -> Tensor:
    """Per-bin totals of the points, all :func:`query_sums` needs from them.

    Args:
        bins: from :func:`make_bins`.
        index (Tensor[M], int32): :func:`bin_index` of the points; the value ``num_bins``
            marks a point to leave out.
        offsets (Tensor[M], float): :func:`local_offsets` of the points (unused if δ = 0).
        weights: one entry per sum wanted: Tensor[M] float64, or None for unit weights.

    Returns:
        Tensor[R, num_bins] float64: per weight, the per-bin sum of ``w`` and, when δ > 0,
        the per-bin sum of ``w · offset`` (R = len(weights), or 2·len(weights) when δ > 0).
        Totals of disjoint sets of points add up, so several processes may each bin their
        own points and sum the totals (all-reduce) before :func:`sums_from_totals`.
    """
    nb = bins.num_bins

    def per_bin(w: Tensor | None) -> Tensor:
        return torch.bincount(index, weights=w, minlength=nb + 1)[:nb].to(torch.float64)

    rows = []
    off64 = offsets.to(torch.float64) if bins.delta > 0 else None
    for w in weights:
        rows.append(per_bin(w))
        if off64 is not None:
            rows.append(per_bin(off64 if w is None else w * off64))
    return torch.stack(rows)


def sums_from_totals(bins: Bins, totals: Tensor) -> list[Tensor]:
    """Query sums from the per-bin totals of :func:`bin_totals` (Tensor[R, num_bins] float64).

    Returns:
        list of Tensor[P] float64, one per weight, in the order of ``bins.queries``.
    """
    x = bins.queries
    zero = x.new_zeros(1)
    out = []
    if bins.delta > 0:
        # Query i covers bins lo_bin .. hi_bin - 1 linearly (window (x_i − δ, x_i + δ]) and
        # bins ≥ hi_bin fully. Σ_window w (b − x_i + δ) = Σ_k [Σ_{b∈k} w·offset + W_k (L_k − L_lo)].
        delta = bins.delta
        lo_bin = torch.searchsorted(bins.edges, x - delta) + 1
        hi_bin = torch.searchsorted(bins.edges, x + delta, right=True)
        left = bins.left - x[x.numel() // 2]  # centred, to keep prefix sums small
        for count, local in zip(totals[0::2], totals[1::2], strict=True):
            count_cum = torch.cat([zero, count.cumsum(0)])
            moment_cum = torch.cat([zero, (local + count * left).cumsum(0)])
            above = count_cum[-1] - count_cum[hi_bin]
            win_count = count_cum[hi_bin] - count_cum[lo_bin]
            win_moment = moment_cum[hi_bin] - moment_cum[lo_bin]
            out.append(above + (win_moment - left[lo_bin] * win_count) / (2 * delta))
    else:
        # H(b − x) = [b ≥ x]: b ≥ x_i ⇔ bin(b) > #{edges < x_i}.
        first = torch.searchsorted(bins.edges, x)
        for count in totals:
            suffix = count.flip(0).cumsum(0).flip(0)
            out.append(suffix[first + 1])
    return out


def query_sums(
    bins: Bins, index: Tensor, offsets: Tensor | None, weights: list[Tensor | None]
) -> list[Tensor]:
    """For every query x_i, ``Σ_j w_j H(b_j − x_i)`` for each weight vector in ``weights``.

    Arguments as :func:`bin_totals`. Returns a list of Tensor[P] float64, in the order of
    ``bins.queries`` (ascending).
    """
    return sums_from_totals(bins, bin_totals(bins, index, offsets, weights))


def point_sums(
    bins: Bins, index: Tensor, offsets: Tensor | None, query_weights: Tensor, *, dtype: torch.dtype
) -> Tensor:
    """For every point b_j, ``Σ_i v_i H(b_j − x_i)`` over the queries.

    Args:
        bins: from :func:`make_bins`.
        index (Tensor[M], int32): :func:`bin_index` of the points; ``num_bins`` gives 0.
        offsets (Tensor[M], float): :func:`local_offsets` of the points (unused if δ = 0).
        query_weights (Tensor[P], float64): v_i, in the order of ``bins.queries``.
        dtype: dtype of the result.

    Returns:
        Tensor[M] of ``dtype``.

    Per bin, the queries fully below it (H = 1) and those whose window covers it (H linear
    in b) are runs of consecutive sorted queries, so per bin
    ``Σ_i v_i H(b − x_i) = base_k + slope_k · (b − L_k)`` with L_k the bin's left edge.
    """
    zero = query_weights.new_zeros(1)
    v_cum = torch.cat([zero, query_weights.cumsum(0)])
    x = bins.queries
    left = bins.left
    if bins.delta == 0:
        # Bin k ≥ 1 holds the points in [e_{k-1}, e_k): the queries ≤ e_{k-1} are all ≤ b.
        n_le = torch.searchsorted(x, left, right=True)
        n_le[0] = 0
        return torch.cat([v_cum[n_le], zero]).to(dtype).index_select(0, index)
    delta = bins.delta
    n_full = torch.searchsorted(x + delta, left, right=True)
    n_started = torch.searchsorted(x - delta, left, right=True)
    n_full[0] = 0
    n_started[0] = 0
    # Σ_{i in window} v_i (L_k − x_i + δ) / 2δ, via prefix sums of v·(x − centre).
    centre = x[x.numel() // 2]
    vx_cum = torch.cat([zero, (query_weights * (x - centre)).cumsum(0)])
    win = v_cum[n_started] - v_cum[n_full]
    win_x = vx_cum[n_started] - vx_cum[n_full]
    base = v_cum[n_full] + (win * (left - centre + delta) - win_x) / (2 * delta)
    slope = win / (2 * delta)
    base = torch.cat([base, zero]).to(dtype)
    slope = torch.cat([slope, zero]).to(dtype)
    return slope.index_select(0, index).mul_(offsets).add_(base.index_select(0, index))
