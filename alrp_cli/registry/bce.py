"""Binary cross-entropy in the registry: a contrast in ``alrp check-balance`` only."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from alrp_cli.registry.entry import BalanceForm, LossEntry, Style


def _balance(logits: Tensor, targets: Tensor, loc_errors: Tensor, delta: float) -> Tensor:
    keep = targets >= 0
    num_pos = max(int((targets == 1).sum()), 1)
    t = targets[keep].to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits[keep], t, reduction="sum") / num_pos


ENTRY = LossEntry(
    name="bce",
    label="BCE",
    title="binary cross-entropy",
    paper="",
    function=F.binary_cross_entropy_with_logits,
    balance=BalanceForm(_balance, checked=False),
    style=Style(color=1, marker="v", draw_order=0),
)
