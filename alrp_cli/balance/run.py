"""The whole ``check-balance`` run as the CLI does it: validate the options, draw (or load)
the problems, check every loss, and say how to reproduce a failure."""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from alrp_cli.balance.check import (
    DEFAULT_TOLERANCE,
    BalanceReport,
    LossSummary,
    check_balance,
)
from alrp_cli.balance.problems import Problem, random_problems
from alrp_cli.balance.recorded import recorded_problems
from alrp_cli.balance.specs import LOSS_NAMES, LossSpec, resolve_losses
from alrp_cli.device import resolve_device
from alrp_cli.errors import UserError
from alrp_cli.limits import LOSS_BYTES_PER_EXAMPLE, check_fits
from alrp_cli.loss_inputs_file import RecordedInputs, load_loss_inputs

#: δ values random problems draw from unless ``--delta`` is given.
DEFAULT_DELTAS = (0.0, 0.5, 1.0, 2.0)
#: The most --trials: each trial's result is kept for the report (and a million take hours).
MAX_TRIALS = 1_000_000
#: δ for ``--from`` inputs whose meta holds no "delta" (the losses' default).
DEFAULT_RECORDED_DELTA = 1.0
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Recorded inputs are few and are what training really sees: compare them with the loop
#: reference up to these sizes (random trials use the tighter caps of LossSpec).
RECORDED_REFERENCE_MAX_WORK = 100_000_000
RECORDED_REFERENCE_MAX_POSITIVES = 2000


@dataclass(frozen=True)
class BalanceConfig:
    """The options of ``alrp check-balance`` (see docs/check-balance.md)."""

    losses: tuple[str, ...] = LOSS_NAMES
    trials: int = 200
    trial: int | None = None
    seed: int = 0
    max_positives: int = 2000
    max_negatives: int = 1_000_000
    deltas: tuple[float, ...] | None = None
    dtype: str = "float32"
    device: str = "auto"
    tolerance: float | None = None
    from_file: str | None = None

    def validate(self) -> None:
        """Raise :class:`UserError` (one line, naming the option) for an impossible value."""
        resolve_losses(self.losses)
        if not 1 <= self.trials <= MAX_TRIALS:
            raise UserError(f"--trials must be 1 to {MAX_TRIALS:,}, got {self.trials}")
        if self.trial is not None and self.trial < 0:
            raise UserError(f"--trial must be 0 or more, got {self.trial}")
        if self.max_positives < 1:
            raise UserError(f"--max-positives must be at least 1, got {self.max_positives}")
        if self.max_negatives < 1:
            raise UserError(f"--max-negatives must be at least 1, got {self.max_negatives}")
        for d in self.deltas or ():
            if not (math.isfinite(d) and d >= 0):
                raise UserError(f"--delta must be finite and 0 or more, got {d}")
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype must be float32 or float64, got {self.dtype!r}")
        tol = self.tolerance
        if tol is not None and not (math.isfinite(tol) and tol > 0):
            raise UserError(f"--tolerance must be a positive number, got {self.tolerance}")
        device = resolve_device(self.device)
        if self.from_file is None:  # the largest random problem: both caps at once
            check_fits(
                (self.max_positives + self.max_negatives) * LOSS_BYTES_PER_EXAMPLE,
                "--max-positives/--max-negatives",
                what=f"problems of {self.max_positives + self.max_negatives:,} examples",
                device=device,
            )

    @property
    def resolved_tolerance(self) -> float:
        """``tolerance``, or the default of the dtype (1e-5 float32, 1e-9 float64)."""
        return self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[self.dtype]

    def to_json(self, deltas: Sequence[float]) -> dict[str, Any]:
        """Every option, resolved, for the report's ``config``."""
        return {
            "losses": [s.name for s in resolve_losses(self.losses)],
            "trials": self.trials,
            "trial": self.trial,
            "seed": self.seed,
            "max_positives": self.max_positives,
            "max_negatives": self.max_negatives,
            "deltas": [float(d) for d in deltas],
            "dtype": self.dtype,
            "device": str(resolve_device(self.device)),
            "tolerance": self.resolved_tolerance,
            "from": self.from_file,
        }


def _random_deltas(config: BalanceConfig) -> tuple[float, ...]:
    return tuple(config.deltas) if config.deltas else DEFAULT_DELTAS


def reproduce_command(config: BalanceConfig, loss: str, trial: int) -> str:
    """The shortest ``alrp check-balance`` command line that reruns one trial of one loss."""
    args = ["alrp", "check-balance", "--loss", loss]
    if config.from_file is not None:
        args += ["--from", config.from_file]
        args += [a for d in config.deltas or () for a in ("--delta", f"{d:g}")]
    else:
        args += ["--seed", str(config.seed), "--trial", str(trial)]
        defaults = BalanceConfig()
        if config.max_positives != defaults.max_positives:
            args += ["--max-positives", str(config.max_positives)]
        if config.max_negatives != defaults.max_negatives:
            args += ["--max-negatives", str(config.max_negatives)]
        if _random_deltas(config) != DEFAULT_DELTAS:
            args += [a for d in _random_deltas(config) for a in ("--delta", f"{d:g}")]
    if config.dtype != "float32":
        args += ["--dtype", config.dtype]
    if config.device != "auto":
        args += ["--device", config.device]
    if config.tolerance is not None:
        args += ["--tolerance", f"{config.tolerance:g}"]
    return shlex.join(args)


def failure_message(config: BalanceConfig, summary: LossSummary) -> str:
    """One line naming the failing trial, its seed (or batch) and how to reproduce it."""
    r = summary.failure
    assert r is not None
    where = f"batch {r.batch}" if r.batch >= 0 else f"seed {r.seed}"
    return (
        f"{summary.label}: trial {r.trial} ({where}, P={r.P}, N={r.N}, δ={r.delta:g}) "
        f"{summary.failure_reason}; reproduce with `{reproduce_command(config, r.loss, r.trial)}`"
    )


def run_balance_check(
    config: BalanceConfig,
    *,
    on_start: Callable[[int], None] | None = None,
    on_problem: Callable[[Problem], None] | None = None,
) -> BalanceReport:
    """Validate ``config``, build its problems, and check its losses on them.

    ``on_start(total)`` is called once the number of problems is known; ``on_problem``
    after each. Raises :class:`UserError` for bad options or a bad ``--from`` file.
    """
    config.validate()
    specs = resolve_losses(config.losses)
    dtype = DTYPES[config.dtype]
    notes: list[str] = []
    if config.from_file is not None:
        recorded = load_loss_inputs(config.from_file)
        notes = derived_ious_notes(config.from_file, recorded, specs)
        meta_delta = recorded.meta.get("delta")
        if config.deltas:
            deltas: tuple[float, ...] = tuple(config.deltas)
        elif meta_delta is None:
            deltas = (DEFAULT_RECORDED_DELTA,)
        elif (
            isinstance(meta_delta, int | float)
            and not isinstance(meta_delta, bool)
            and math.isfinite(meta_delta)
            and meta_delta >= 0
        ):
            deltas = (float(meta_delta),)
        else:
            raise UserError(
                f"{config.from_file}: meta 'delta' must be a finite number >= 0, got "
                f"{meta_delta!r} (or give --delta)"
            )
        total = len(recorded.batches) * len(deltas)
        specs = [
            replace(
                s,
                reference_max_work=max(s.reference_max_work, RECORDED_REFERENCE_MAX_WORK),
                reference_max_positives=max(
                    s.reference_max_positives, RECORDED_REFERENCE_MAX_POSITIVES
                ),
            )
            for s in specs
        ]
        problems = recorded_problems(
            recorded, deltas, dtype=dtype, device=resolve_device(config.device)
        )
    else:
        deltas = _random_deltas(config)
        indices = [config.trial] if config.trial is not None else list(range(config.trials))
        total = len(indices)
        problems = random_problems(
            config.seed,
            indices,
            max_positives=config.max_positives,
            max_negatives=config.max_negatives,
            deltas=deltas,
            dtype=dtype,
            device=resolve_device(config.device),
        )
    if on_start is not None:
        on_start(total)
    report = check_balance(
        problems,
        specs,
        tolerance=config.resolved_tolerance,
        on_problem=on_problem,
        config=config.to_json(deltas),
    )
    report.notes += notes
    return report


def derived_ious_notes(name: str, recorded: RecordedInputs, specs: Sequence[LossSpec]) -> list[str]:
    """One line per loss that takes IoUs when the recorded batches hold none: what the
    loss takes instead (its ``derived_ious``)."""
    missing = sum(batch.ious is None for batch in recorded.batches)
    if not missing:
        return []
    return [
        f"{spec.name}: {name} holds no 'ious' in {missing} of {len(recorded.batches)} "
        f"batch(es) (recorded by a loss without IoU targets); there {spec.name} takes "
        f"{spec.derived_ious or 'no IoUs'}"
        for spec in specs
        if spec.takes_ious
    ]
