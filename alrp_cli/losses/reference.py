"""The loop formulation of aLRP Loss and AP Loss: one pass per positive, O(P·N).

Written from the definitions in docs/losses.md in the shape of the published implementation
(a Python loop over the positives, each pass touching every relevant negative). It is kept
as the test oracle for the fast kernels and as the baseline of ``alrp bench``; do not train
with it. Computations stay in the input dtype, like the published code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

FP_EPS = 1e-5


class ReferenceOutput(NamedTuple):
    """Values and updates of the loop formulation.

    Attributes:
        cls (Tensor[]): L_cls (aLRP) or L_AP.
        loc (Tensor[]): L_loc (aLRP; 0 for AP).
        rank (Tensor[P]): rank of each positive, in input order.
        grad_logits (Tensor[N]): the error-driven update of the classification part.
        grad_loc (Tensor[P]): d L_loc / d e (aLRP; zeros for AP).
    """

    cls: Tensor
    loc: Tensor
    rank: Tensor
    grad_logits: Tensor
    grad_loc: Tensor


def smoothed_step(x: Tensor, delta: float) -> Tensor:
    """H(x) = clamp(x / 2δ + 1/2, 0, 1) for δ > 0, [x ≥ 0] for δ = 0 (Tensor, same shape)."""
    if delta > 0:
        return torch.clamp(x / (2 * delta) + 0.5, min=0, max=1)
    return (x >= 0).to(x.dtype)


class _Loop(NamedTuple):
    pos_index: Tensor  # positions of the positives
    neg_index: Tensor  # positions of the negatives that can contribute
    pos: Tensor  # positive scores
    neg: Tensor  # relevant negative scores


def _loop_inputs(logits: Tensor, targets: Tensor, delta: float) -> _Loop | None:
    """The positives and the relevant negatives (s ≥ min positive − δ); None without positives."""
    pos_index = (targets == 1).nonzero().squeeze(1)
    if pos_index.numel() == 0:
        return None
    pos = logits[pos_index]
    neg_index = ((targets == 0) & (logits >= pos.min() - delta)).nonzero().squeeze(1)
    return _Loop(pos_index, neg_index, pos, logits[neg_index])


def _no_positives(logits: Tensor) -> ReferenceOutput:
    zero = logits.new_zeros(())
    empty = logits.new_zeros(0)
    return ReferenceOutput(zero, zero, empty, torch.zeros_like(logits), empty)


def alrp_loss_reference(
    logits: Tensor, targets: Tensor, loc_errors: Tensor, *, delta: float = 1.0
) -> ReferenceOutput:
    """aLRP Loss by a loop over the positives (see :func:`alrp_cli.losses.alrp_loss`).

    Args:
        logits (Tensor[N] float), targets (Tensor[N] in {1, 0, -1}),
        loc_errors (Tensor[P] float, positives in input order), delta (float ≥ 0).
    """
    logits = logits.detach()
    e = loc_errors.detach().to(logits.dtype)
    loop = _loop_inputs(logits, targets, delta)
    if loop is None:
        return _no_positives(logits)
    pos_index, neg_index, pos, neg = loop
    num_pos = pos.numel()
    neg_grad = torch.zeros_like(neg)
    rank = torch.zeros_like(pos)
    fp = torch.zeros_like(pos)
    pos_grad = torch.zeros_like(pos)
    for i in range(num_pos):
        pos_rel = smoothed_step(pos - pos[i], delta)
        pos_rel[i] = 0
        neg_rel = smoothed_step(neg - pos[i], delta)
        n_fp = neg_rel.sum()
        rank[i] = 1 + pos_rel.sum() + n_fp
        fp[i] = n_fp
        if n_fp > FP_EPS:
            pos_grad[i] = -(n_fp + (pos_rel * e).sum()) / rank[i]
            neg_grad += neg_rel * (-pos_grad[i] / n_fp)
    # Localisation: k precedes-or-equals i in descending score, ties by input position.
    index = torch.arange(num_pos)
    before = (pos[None, :] > pos[:, None]) | (
        (pos[None, :] == pos[:, None]) & (index[None, :] <= index[:, None])
    )  # before[i, k]: k placed at or before i
    loc = ((before.to(e.dtype) * e[None, :]).sum(1) / rank).mean()
    grad_loc = (before.to(e.dtype) / rank[:, None]).sum(0) / num_pos
    grad = torch.zeros_like(logits)
    grad[pos_index] = pos_grad / num_pos
    grad[neg_index] = neg_grad / num_pos
    return ReferenceOutput((fp / rank).mean(), loc, rank, grad, grad_loc)


def ap_loss_reference(logits: Tensor, targets: Tensor, *, delta: float = 1.0) -> ReferenceOutput:
    """AP Loss (interpolated) by a loop over the positives in ascending score.

    Args:
        logits (Tensor[N] float), targets (Tensor[N] in {1, 0, -1}), delta (float ≥ 0).
    """
    logits = logits.detach()
    loop = _loop_inputs(logits, targets, delta)
    if loop is None:
        return _no_positives(logits)
    pos_index, neg_index, pos, neg = loop
    num_pos = pos.numel()
    neg_grad = torch.zeros_like(neg)
    rank = torch.zeros_like(pos)
    interp = torch.zeros_like(pos)
    max_prec = torch.zeros((), dtype=logits.dtype)
    for i in pos.argsort(stable=True).tolist():
        pos_rel = smoothed_step(pos - pos[i], delta)
        pos_rel[i] = 0
        neg_rel = smoothed_step(neg - pos[i], delta)
        rank_plus = 1 + pos_rel.sum()
        rank[i] = rank_plus + neg_rel.sum()
        prec = rank_plus / rank[i]
        if max_prec <= prec:
            max_prec = prec
            neg_grad += neg_rel / rank[i]
        else:
            neg_grad += neg_rel / rank[i] * ((1 - max_prec) / (1 - prec))
        interp[i] = max_prec
    grad = torch.zeros_like(logits)
    grad[pos_index] = -(1 - interp) / num_pos
    grad[neg_index] = neg_grad / num_pos
    zero = logits.new_zeros(())
    return ReferenceOutput(1 - interp.mean(), zero, rank, grad, logits.new_zeros(num_pos))
