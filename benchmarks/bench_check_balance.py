"""Time `alrp check-balance`: the whole default command, and where its time goes.

    .venv/bin/python benchmarks/bench_check_balance.py [--trials 200] [--skip-cli]

1. The default command in a fresh process (`alrp check-balance`, 200 trials × every loss),
   wall and CPU seconds, imports included: the goal is under a minute on a 2-core CPU.
2. In-process, the same 200 problems: seconds spent drawing them, in each loss
   (forward + backward + statistics, reference excluded) and in the loop reference.
Figures go into docs/benchmarks.md ("## alrp check-balance").
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import torch

from alrp_cli.balance import BalanceConfig, builtin_specs, make_problem
from alrp_cli.balance.check import DEFAULT_TOLERANCE, _reference_deviations, evaluate
from alrp_cli.balance.run import DEFAULT_DELTAS


def _cli(trials: int) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "alrp_cli", "check-balance", "--trials", str(trials)],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _phases(trials: int) -> tuple[Counter[str], int]:
    cfg = BalanceConfig()
    tol = DEFAULT_TOLERANCE[cfg.dtype]
    specs = builtin_specs()
    plain = {name: replace(s, reference=None) for name, s in specs.items()}
    spent: Counter[str] = Counter()
    ref_trials = 0
    for trial in range(trials):
        t0 = time.perf_counter()
        problem = make_problem(
            cfg.seed,
            trial,
            max_positives=cfg.max_positives,
            max_negatives=cfg.max_negatives,
            deltas=DEFAULT_DELTAS,
        )
        spent["draw problems"] += time.perf_counter() - t0
        compared = False
        for name, spec in plain.items():
            t0 = time.perf_counter()
            results = evaluate(spec, problem, tolerance=tol)  # one per part of the update
            spent[f"{name} (forward, backward, sums)"] += time.perf_counter() - t0
            full = specs[name]
            work, num_pos = results[0].P * results[0].N, results[0].P
            small = work <= full.reference_max_work and num_pos <= full.reference_max_positives
            if full.reference is not None and small:
                found = [(r.loss_value, torch.zeros(1)) for r in results]
                t0 = time.perf_counter()
                _reference_deviations(full, problem, found)
                spent[f"{name} loop reference"] += time.perf_counter() - t0
                compared = True
        ref_trials += compared
    return spent, ref_trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}"
    )
    if not args.skip_cli:
        wall, cpu = _cli(args.trials)
        print(f"alrp check-balance --trials {args.trials}: wall {wall:.1f} s, CPU {cpu:.1f} s")
    spent, ref_trials = _phases(args.trials)
    total = sum(spent.values())
    print(f"\nin-process phases over {args.trials} trials ({ref_trials} with the reference):")
    for name, seconds in spent.most_common():
        print(f"  {name:40s} {seconds:7.2f}  {seconds / total:6.1%}")
    print(f"  {'total':40s} {total:7.2f}")


if __name__ == "__main__":
    sys.exit(main())
