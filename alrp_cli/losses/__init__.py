"""Ranking-based losses, pure torch: aLRP Loss and AP Loss, exact in O(N log P).

This package imports nothing else of alrp. ``reference`` holds the loop formulation used
as the test oracle and the benchmark baseline.
"""

from alrp_cli.losses.alrp import ALRPLoss, ALRPLossOutput, ALRPLossResult, alrp_loss
from alrp_cli.losses.ap import APLoss, ap_loss

__all__ = ["ALRPLoss", "ALRPLossOutput", "ALRPLossResult", "APLoss", "alrp_loss", "ap_loss"]
