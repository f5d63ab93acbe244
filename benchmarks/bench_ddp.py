"""Step time of `alrp train` in 1 process vs 2 gloo processes (CPU), global vs local ranking.

Usage: python benchmarks/bench_ddp.py [--iters 8] [--batch 8] [--image-size 128]

Trains one epoch of ``iters`` steps on a synthetic set it writes to a temporary folder,
each configuration started the way users start it (``torchrun``, here
``python -m torch.distributed.run``), and reads the epoch's training seconds from
``metrics.jsonl`` (steps only: no start-up, no evaluation). One process uses 2 threads, each
of 2 processes 1 thread, so both use the machine's 2 cores. Prints a Markdown table; the
figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(data: Path, out: Path, nproc: int, ranking: str, args: argparse.Namespace) -> float:
    """Seconds per training step of one epoch."""
    threads = "2" if nproc == 1 else "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", "alrp_cli", "train", "--data", str(data)]
    cmd += ["--epochs", "1", "--eval-every", "100", "--batch-size", str(args.batch)]
    cmd += ["--image-size", str(args.image_size), "--device", "cpu", "--threads", threads]
    cmd += ["--ranking", ranking, "--loss", args.loss, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads}
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if r["type"] == "epoch")
    return epoch["seconds"] / epoch["iter"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--loss", default="alrp")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from alrp_cli.detection.data import make_synthetic_coco

    with tempfile.TemporaryDirectory() as tmp:
        data = make_synthetic_coco(
            Path(tmp) / "coco",
            num_train=args.iters * args.batch,
            num_val=2,
            image_size=args.image_size,
        )
        rows = [
            (f"1 process, batch {args.batch}", run(data, Path(tmp) / "a", 1, "global", args)),
            ("2 processes, --ranking global", run(data, Path(tmp) / "b", 2, "global", args)),
            ("2 processes, --ranking local", run(data, Path(tmp) / "c", 2, "local", args)),
        ]
    base = rows[0][1]
    local = rows[2][1]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"loss {args.loss}, global batch {args.batch}, {args.image_size} px, {args.iters} steps")
    print("| run | s/step | vs 1 process | vs local |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} | {t / base:.2f} | {t / local:.2f} |")


if __name__ == "__main__":
    main()
