"""Random loss inputs for the balance check, drawn across the regimes training meets.

Every problem is a pure function of ``(seed, trial, max_positives, max_negatives, deltas)``:
the trial's own seed is derived from the run seed and the trial index, so one trial can be
rerun alone (``alrp check-balance --seed S --trial I``) and gives the same tensors.
Problems are drawn on the CPU in float64 and then cast, so every device and dtype sees the
same scores (up to the cast).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: The score regimes a trial draws from (see :func:`make_problem`).
REGIMES = ("overlap", "separated", "ties", "wide")

#: Ordinary trials draw at most this many negatives; every ``BIG_EVERY``-th trial is "big"
#: and has exactly ``max_negatives`` (10^6 by default). This keeps a default run under a
#: minute while still checking the largest problems.
ORDINARY_NEGATIVES_CAP = 200_000
BIG_EVERY = 50

#: The largest |logit| any regime produces.
MAX_ABS_LOGIT = 1e3


@dataclass(frozen=True)
class Problem:
    """One loss input: ``logits`` (N_total,) float, ``targets`` (N_total,) int64 in {1, 0, -1},
    ``loc_errors`` (P,) float (one per positive, in the order positives appear), and the
    ``delta`` of the smoothed step.

    ``trial`` is the trial index; ``seed`` the trial's own seed (-1 for recorded inputs);
    ``regime`` names how the scores were drawn (``"recorded"`` for ``--from`` inputs);
    ``batch`` is the recorded batch index (-1 for random problems); ``ious`` (P,) float,
    the IoU of each positive's box (drawn in (0, 1] for random problems; for recorded
    inputs where the file holds them, else None): the continuous targets of a loss that
    takes them.
    """

    trial: int
    seed: int
    logits: Tensor
    targets: Tensor
    loc_errors: Tensor
    delta: float
    regime: str
    batch: int = -1
    ious: Tensor | None = None

    @property
    def num_positives(self) -> int:
        """Number of positives (targets == 1)."""
        return int((self.targets == 1).sum())

    @property
    def num_negatives(self) -> int:
        """Number of negatives (targets == 0); ignored pairs are not counted."""
        return int((self.targets == 0).sum())


def trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial`` of a run seeded with ``seed`` (an int in [0, 2**32)).

    numpy's SeedSequence mixes the pair so that neighbouring seeds and trials give
    unrelated streams.
    """
    state = np.random.SeedSequence([int(seed) & (2**64 - 1), int(trial)]).generate_state(1)
    return int(state[0])


def _log_uniform_int(gen: torch.Generator, low: int, high: int) -> int:
    """An int in [low, high], log-uniformly distributed."""
    if high <= low:
        return low
    u = float(torch.rand((), generator=gen, dtype=torch.float64))
    value = math.exp(math.log(low) + u * (math.log(high + 1) - math.log(low)))
    return max(low, min(high, int(value)))


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _scores(
    gen: torch.Generator, regime: str, num_pos: int, num_neg: int, delta: float
) -> tuple[Tensor, Tensor]:
    """Positive and negative scores (float64) for one regime."""
    pos = torch.randn(num_pos, generator=gen, dtype=torch.float64)
    neg = torch.randn(num_neg, generator=gen, dtype=torch.float64)
    width = max(delta, 0.5)
    if regime == "overlap":
        # Both classes around the same place, the positives a little higher or lower.
        scale = _uniform(gen, 0.2, 3.0) * width
        shift = _uniform(gen, -1.0, 2.0) * scale
        return pos * scale + shift, neg * scale
    if regime == "separated":
        # Positives far above the negatives: most pairs are outside the 2δ window, only
        # the tails meet (and sometimes none do: then every update is 0).
        margin = _uniform(gen, 2.0, 8.0) * width
        return pos * width + margin, neg * width - margin
    if regime == "ties":
        # Few distinct levels shared by positives and negatives: heavy ties, within and
        # across the classes.
        levels = _log_uniform_int(gen, 1, 8)
        step = _uniform(gen, 0.25, 2.0) * width
        pos_lv = torch.randint(0, levels, (num_pos,), generator=gen).to(torch.float64)
        neg_lv = torch.randint(0, levels, (num_neg,), generator=gen).to(torch.float64)
        return pos_lv * step, neg_lv * step
    if regime == "wide":
        # Logits spread over many orders of magnitude, up to |logit| = 1e3.
        scale = math.exp(_uniform(gen, 0.0, math.log(MAX_ABS_LOGIT)))
        shift = _uniform(gen, -0.5, 0.5) * scale
        both = torch.cat([pos * scale + shift, neg * scale])
        both = both.clamp(-MAX_ABS_LOGIT, MAX_ABS_LOGIT)
        return both[:num_pos], both[num_pos:]
    raise ValueError(f"unknown regime {regime!r}")


def make_problem(
    seed: int,
    trial: int,
    *,
    max_positives: int,
    max_negatives: int,
    deltas: Sequence[float],
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Problem:
    """Draw trial ``trial`` of the run seeded with ``seed``.

    Sizes: P log-uniform in [1, max_positives]; N log-uniform in [1, min(max_negatives,
    200000)], except every 50th trial (index 49, 99, ...) which has N = max_negatives.
    Half the trials also hold ignored pairs (targets -1, 0 to 30% of the non-positives)
    with high scores, so a loss that did not ignore them would show it. Positions are
    shuffled; ``loc_errors`` are uniform in [0, 1), ``ious`` uniform in (0, 1] (in the
    ties regime rounded up to one of 1 to 8 levels k/L).
    """
    tseed = trial_seed(seed, trial)
    gen = torch.Generator().manual_seed(tseed)
    delta = float(deltas[int(torch.randint(0, len(deltas), (), generator=gen))])
    regime = REGIMES[int(torch.randint(0, len(REGIMES), (), generator=gen))]
    num_pos = _log_uniform_int(gen, 1, max_positives)
    if trial % BIG_EVERY == BIG_EVERY - 1:
        num_neg = max_negatives
    else:
        num_neg = _log_uniform_int(gen, 1, min(max_negatives, ORDINARY_NEGATIVES_CAP))
    pos, neg = _scores(gen, regime, num_pos, num_neg, delta)

    num_ign = 0
    if bool(torch.rand((), generator=gen) < 0.5):
        num_ign = int(_uniform(gen, 0.0, 0.3) * num_neg)
    top = float(torch.cat([pos, neg]).max())
    ign = top + torch.rand(num_ign, generator=gen, dtype=torch.float64) * max(delta, 1.0)
    ign = ign.clamp(-MAX_ABS_LOGIT, MAX_ABS_LOGIT)

    logits = torch.cat([pos, neg, ign])
    targets = torch.cat(
        [
            torch.ones(num_pos, dtype=torch.int64),
            torch.zeros(num_neg, dtype=torch.int64),
            torch.full((num_ign,), -1, dtype=torch.int64),
        ]
    )
    order = torch.randperm(logits.numel(), generator=gen)
    logits, targets = logits[order], targets[order]
    loc_errors = torch.rand(num_pos, generator=gen, dtype=torch.float64)
    # Drawn last, so the tensors above are those of every earlier version of the trial.
    ious = 1.0 - torch.rand(num_pos, generator=gen, dtype=torch.float64)  # (0, 1]
    if regime == "ties":  # 1 to 8 IoU levels: ties among the positives' targets too
        levels = _log_uniform_int(gen, 1, 8)
        ious = torch.ceil(ious * levels) / levels
    return Problem(
        trial=trial,
        seed=tseed,
        logits=logits.to(device=device, dtype=dtype),
        targets=targets.to(device=device),
        loc_errors=loc_errors.to(device=device, dtype=dtype),
        delta=delta,
        regime=regime,
        ious=ious.to(device=device, dtype=dtype),
    )


def random_problems(
    seed: int,
    trials: int | Sequence[int],
    *,
    max_positives: int,
    max_negatives: int,
    deltas: Sequence[float],
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Iterator[Problem]:
    """Yield the problems of trials ``range(trials)`` (or of the given trial indices)."""
    indices = range(trials) if isinstance(trials, int) else trials
    for trial in indices:
        yield make_problem(
            seed,
            trial,
            max_positives=max_positives,
            max_negatives=max_negatives,
            deltas=deltas,
            dtype=dtype,
            device=device,
        )
