"""Ranking-based losses, pure torch: aLRP Loss and AP Loss, exact in O(N log P).

This package imports nothing else of alrp. ``reference`` holds the loop formulation used
as the test oracle and the benchmark baseline. ``collective`` holds the small interface
through which the losses rank over the global batch of several processes.
"""

from alrp_cli.losses.alrp import ALRPLoss, ALRPLossOutput, ALRPLossResult, alrp_loss
from alrp_cli.losses.ap import APLoss, ap_loss
from alrp_cli.losses.collective import Collective, LocalCollective

__all__ = [
    "ALRPLoss",
    "ALRPLossOutput",
    "ALRPLossResult",
    "APLoss",
    "Collective",
    "LocalCollective",
    "alrp_loss",
    "ap_loss",
]
