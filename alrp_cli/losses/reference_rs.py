"""The loop formulation of Rank & Sort Loss: a CPU port of the published ``RankSort``.

A line-by-line port of ``RankSort.forward`` (kemaloksuz/RankSortLoss,
mmdet/models/losses/ranking_losses.py:3-95): one pass per positive, in ascending score,
each touching every positive and every relevant negative, O(P·N). It keeps the published
conventions — a positive compares with itself (H(0) in rank⁺), negatives below
``min positive − δ`` are dropped, ``eps = 1e-10`` gates both updates, everything is divided
by |P| — and differs only where the published code cannot run on a CPU or without a
positive: tensors stay on the logits' device and dtype (the published code allocates
float32 CUDA tensors), and no positive gives zeros (the published code fails in
``torch.min`` of an empty tensor). The ranking and the sorting updates are accumulated
apart (their sum is the published update) so that each part can be checked on its own.

It is the test oracle of :func:`alrp_cli.losses.rs_loss` and the baseline of the benchmarks;
do not train with it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from alrp_cli.losses.reference import smoothed_step

#: ranking_losses.py:5 (``eps=1e-10``): an update is applied only above this denominator.
RS_EPS = 1e-10


class RSReferenceOutput(NamedTuple):
    """Values and updates of the loop formulation of Rank & Sort Loss.

    Attributes:
        ranking (Tensor[]): mean ranking error over the positives.
        sorting (Tensor[]): mean sorting error over the positives.
        ranking_errors (Tensor[P]): RE(i) of each positive, in input order.
        sorting_errors (Tensor[P]): SE(i) of each positive, in input order.
        grad_logits (Tensor[N]): the published update (ranking + sorting parts).
        grad_ranking (Tensor[N]): its ranking part (positives and negatives).
        grad_sorting (Tensor[N]): its sorting part (positives only).
    """

    ranking: Tensor
    sorting: Tensor
    ranking_errors: Tensor
    sorting_errors: Tensor
    grad_logits: Tensor
    grad_ranking: Tensor
    grad_sorting: Tensor


def rs_loss_reference(
    logits: Tensor, targets: Tensor, *, delta: float = 0.5, eps: float = RS_EPS
) -> RSReferenceOutput:
    """Rank & Sort Loss by the published loop (see the module docstring).

    Args:
        logits (Tensor[N] float), targets (Tensor[N] float: an IoU in (0, 1] for a positive,
        0 for a negative, -1 ignored), delta (float ≥ 0), eps (float).
    """
    logits = logits.detach()
    targets = targets.detach().to(logits.dtype)
    zeros = torch.zeros_like(logits)
    fg_labels = targets > 0
    fg_logits = logits[fg_labels]
    fg_targets = targets[fg_labels]
    fg_num = fg_logits.numel()
    if fg_num == 0:
        zero = logits.new_zeros(())
        empty = logits.new_zeros(0)
        return RSReferenceOutput(zero, zero, empty, empty, zeros, zeros, zeros.clone())

    threshold_logit = fg_logits.min() - delta
    relevant_bg_labels = (targets == 0) & (logits >= threshold_logit)
    relevant_bg_logits = logits[relevant_bg_labels]
    relevant_bg_grad = torch.zeros_like(relevant_bg_logits)
    sorting_error = torch.zeros_like(fg_logits)
    ranking_error = torch.zeros_like(fg_logits)
    fg_grad_ranking = torch.zeros_like(fg_logits)
    fg_grad_sorting = torch.zeros_like(fg_logits)

    for ii in torch.argsort(fg_logits).tolist():
        fg_relations = smoothed_step(fg_logits - fg_logits[ii], delta)
        bg_relations = smoothed_step(relevant_bg_logits - fg_logits[ii], delta)
        rank_pos = fg_relations.sum()  # includes the positive itself: H(0)
        fp_num = bg_relations.sum()
        rank = rank_pos + fp_num
        ranking_error[ii] = fp_num / rank

        current_sorting_error = (fg_relations * (1 - fg_targets)).sum() / rank_pos
        iou_relations = fg_targets >= fg_targets[ii]
        target_sorted_order = iou_relations * fg_relations
        rank_pos_target = target_sorted_order.sum()
        target_sorting_error = (target_sorted_order * (1 - fg_targets)).sum() / rank_pos_target
        sorting_error[ii] = current_sorting_error - target_sorting_error

        if fp_num > eps:
            fg_grad_ranking[ii] -= ranking_error[ii]
            relevant_bg_grad += bg_relations * (ranking_error[ii] / fp_num)

        missorted_examples = (~iou_relations) * fg_relations
        sorting_pmf_denom = missorted_examples.sum()
        if sorting_pmf_denom > eps:
            fg_grad_sorting[ii] -= sorting_error[ii]
            fg_grad_sorting += missorted_examples * (sorting_error[ii] / sorting_pmf_denom)

    grad_ranking = zeros.clone()
    grad_ranking[fg_labels] = fg_grad_ranking / fg_num
    grad_ranking[relevant_bg_labels] = relevant_bg_grad / fg_num
    grad_sorting = zeros.clone()
    grad_sorting[fg_labels] = fg_grad_sorting / fg_num
    return RSReferenceOutput(
        ranking=ranking_error.mean(),
        sorting=sorting_error.mean(),
        ranking_errors=ranking_error,
        sorting_errors=sorting_error,
        grad_logits=grad_ranking + grad_sorting,
        grad_ranking=grad_ranking,
        grad_sorting=grad_sorting,
    )
