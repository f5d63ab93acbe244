"""Ranking-based losses, pure torch: aLRP Loss, AP Loss and Rank & Sort Loss, exact and fast.

This package imports nothing else of alrp. ``reference`` and ``reference_rs`` hold the loop
formulations used as the test oracles and the benchmark baselines. ``collective`` holds the
small interface through which the losses rank over the global batch of several processes.
"""

from alrp_cli.losses.alrp import ALRPLoss, ALRPLossOutput, ALRPLossResult, alrp_loss
from alrp_cli.losses.ap import APLoss, ap_loss
from alrp_cli.losses.collective import Collective, LocalCollective
from alrp_cli.losses.rs import RSLoss, RSLossOutput, rs_loss

__all__ = [
    "ALRPLoss",
    "ALRPLossOutput",
    "ALRPLossResult",
    "APLoss",
    "Collective",
    "LocalCollective",
    "RSLoss",
    "RSLossOutput",
    "alrp_loss",
    "ap_loss",
    "rs_loss",
]
