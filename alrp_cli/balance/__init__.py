"""Theorem 2 of the aLRP paper, checked numerically (``alrp check-balance``).

Under the error-driven update the positives' and the negatives' total update magnitudes
are equal: Σ_{i∈P} |g_i| = Σ_{j∈N} |g_j|, for aLRP Loss and AP Loss alike.

- :mod:`~alrp_cli.balance.problems`: random loss inputs across regimes;
- :mod:`~alrp_cli.balance.recorded`: recorded inputs (``train --record-loss-inputs``);
- :mod:`~alrp_cli.balance.specs`: the losses by name, from :mod:`alrp_cli.registry` (aLRP,
  AP; focal, BCE for contrast);
- :mod:`~alrp_cli.balance.check`: :func:`check_balance`, which takes any loss callable;
- :mod:`~alrp_cli.balance.run`: the command's whole run (its ``--plot`` is figure 7 of
  ``alrp report``, drawn by :mod:`analysis.figures`).
"""

from alrp_cli.balance.check import (
    DEFAULT_TOLERANCE,
    BalanceReport,
    LossSummary,
    TrialResult,
    check_balance,
)
from alrp_cli.balance.problems import Problem, make_problem, random_problems, trial_seed
from alrp_cli.balance.run import BalanceConfig, failure_message, run_balance_check
from alrp_cli.balance.specs import LOSS_NAMES, LossSpec, builtin_specs, resolve_losses

__all__ = [
    "DEFAULT_TOLERANCE",
    "LOSS_NAMES",
    "BalanceConfig",
    "BalanceReport",
    "LossSpec",
    "LossSummary",
    "Problem",
    "TrialResult",
    "builtin_specs",
    "check_balance",
    "failure_message",
    "make_problem",
    "random_problems",
    "resolve_losses",
    "run_balance_check",
    "trial_seed",
]
