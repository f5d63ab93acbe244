"""Time the start-up of `alrp`: wall seconds of each light command, for one or more checkouts.

    .venv/bin/python benchmarks/bench_startup.py [--checkout NAME=PATH ...] [--repeats 5]
        [--importtime]

Each command runs in a fresh process as the `alrp` script runs it, with PYTHONPATH set to
a checkout (default: this one, as "this"), from an empty working directory: `alrp --help`,
`alrp CMD --help` for every command and group of this checkout's command tree, `alrp
--version`, a refused option (`alrp analyze --no-such-option`, exit 2) and a small real
run (`alrp analyze` on data/coco-val2014-100 with --json). The rounds interleave the
checkouts command by command, so that a change of load on a shared machine hits them alike;
reported is the median of --repeats rounds per command and checkout, with the load average
before and after. A command a checkout does not have is shown as "-". --importtime adds,
for `alrp --help` and the analyze run, the time `python -X importtime` gives all imports
and the packages that take most of it. Prints Markdown for docs/benchmarks.md
("Start-up").
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "coco-val2014-100"
# What the `alrp` console script runs (its entry point is alrp_cli.cli.app:main).
ENTRY = "import sys; from alrp_cli.cli.app import main; sys.argv[0] = 'alrp'; sys.exit(main())"


def commands() -> list[tuple[str, list[str], int]]:
    """(label, arguments, expected exit code) of each timed command."""
    sys.path.insert(0, str(REPO))
    from alrp_cli.cli.app import command_paths

    analyze = [
        "analyze",
        str(DATA / "detections_fakebbox100.json"),
        "--gt",
        str(DATA / "instances_val2014_100.json"),
        "--json",
        "analysis.json",
    ]
    return [
        ("alrp --help", ["--help"], 0),
        ("alrp --version", ["--version"], 0),
        ("alrp analyze --no-such-option", ["analyze", "--no-such-option"], 2),
        *[(f"alrp {' '.join(p)} --help", [*p, "--help"], 0) for p in command_paths()],
        ("alrp analyze (100 images, --json)", analyze, 0),
    ]


def run(checkout: Path, args: list[str], cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(checkout), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, *extra, "-c", ENTRY, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def timed(checkout: Path, args: list[str], code: int, cwd: Path) -> float | None:
    """Wall seconds of one run; None when it does not exit with ``code``."""
    start = time.perf_counter()
    out = run(checkout, args, cwd)
    seconds = time.perf_counter() - start
    return seconds if out.returncode == code else None


def import_costs(checkout: Path, args: list[str], cwd: Path) -> tuple[float, dict[str, float]]:
    """(all imports, imports by top-level package) in seconds of a run's ``python -X
    importtime`` record: each module's own time, summed over the modules of a package."""
    err = run(checkout, args, cwd, "-X", "importtime").stderr
    by_package: dict[str, float] = {}
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            own, _, name = line[len("import time:") :].split("|")
            if own.strip().isdigit():
                package = name.strip().split(".")[0]
                by_package[package] = by_package.get(package, 0.0) + int(own) / 1e6
    return sum(by_package.values()), by_package


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkout",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a checkout to time (repeatable); default: this=<this repository>",
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    checkouts = {}
    for item in args.checkout or [f"this={REPO}"]:
        name, _, path = item.partition("=")
        checkouts[name] = Path(path).resolve()
    cases = commands()

    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        cwd = Path(tmp)
        for name, path in checkouts.items():
            where = run(path, [], cwd, "-X", "importtime")  # warms the file cache too
            found = subprocess.run(
                [sys.executable, "-c", "import alrp_cli; print(alrp_cli.__file__)"],
                cwd=cwd,
                env={**os.environ, "PYTHONPATH": str(path)},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            print(f"{name}: {path} (alrp_cli from {found}; exit {where.returncode} without args)")
        load0 = os.getloadavg()
        times: dict[tuple[str, str], list[float | None]] = {}
        for _ in range(args.repeats):
            for label, argv, code in cases:
                for name, path in checkouts.items():
                    times.setdefault((label, name), []).append(timed(path, argv, code, cwd))
        load1 = os.getloadavg()

        print()
        print(
            f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}; load average (1, 5, 15 min) "
            f"{', '.join(f'{x:.2f}' for x in load0)} at the start, "
            f"{', '.join(f'{x:.2f}' for x in load1)} at the end"
        )
        cmd = "python benchmarks/bench_startup.py " + " ".join(
            f"--checkout {n}={p}" for n, p in checkouts.items()
        )
        cmd += f" --repeats {args.repeats}" + (" --importtime" if args.importtime else "")
        print(f"Command: {cmd}; {time.strftime('%Y-%m-%d')}")
        print()
        names = list(checkouts)
        ratio = len(names) == 2
        header = " | ".join(f"{n} (s)" for n in names) + (
            f" | {names[1]} / {names[0]}" if ratio else ""
        )
        print(f"| command (median of {args.repeats}, wall) | {header} |")
        print("|---|" + "---:|" * (len(names) + ratio))
        for label, _, _ in cases:
            medians = []
            for n in names:
                values = times[(label, n)]
                medians.append(None if None in values else statistics.median(values))
            cells = ["-" if m is None else f"{m:.2f}" for m in medians]
            if ratio:
                a, b = medians
                cells.append("-" if a is None or b is None else f"{b / a:.2f}")
            print(f"| `{label}` | " + " | ".join(cells) + " |")

        if args.importtime:
            for label, argv, _ in (cases[0], cases[-1]):
                print()
                print(f"Imports of `{label}` (`python -X importtime`, seconds, one run):")
                print()
                print("| checkout | all imports | largest packages (own time of their modules) |")
                print("|---|---:|---|")
                for name, path in checkouts.items():
                    total, by_package = import_costs(path, argv, cwd)
                    largest = sorted(by_package.items(), key=lambda kv: -kv[1])[:8]
                    shown = ", ".join(f"{p} {t:.2f}" for p, t in largest)
                    print(f"| {name} | {total:.2f} | {shown} |")


if __name__ == "__main__":
    main()
