"""aLRP vs AP Loss vs focal loss on the hard synthetic set: one command, resumable.

Two tables, every cell mean ± std over seeds:

1. *own recipe*: each loss with the scale-free part of its official COCO recipe
   (alrp_cli.detection.config.LOSS_RECIPES): assigner and anchors, no head normalisation,
   warmup ratio 0.001, schedule steps as fractions of the run, and the learning rate in the
   official ratio to aLRP's (aLRP 0.008, AP 0.002, focal 0.02 at batch 32) times --base-lr;
2. *shared recipe*: every loss with the synthetic preset (ATSS, GroupNorm head) at each
   learning rate of --lr-grid on the first seed; the best learning rate per loss (by AP)
   then runs on the other seeds.

Reported: COCO AP, AP50, AP75, moLRP, the pooled score-IoU Spearman of true positives
(analysis.analyze on each run's best-AP predictions), the self-balance weight used in each
epoch (aLRP) and the training wall time. Runs live in OUT/runs/<name>/; a run with
``result.json`` is done and skipped, one with ``last.pt`` only is resumed, so the command
can be stopped and restarted (also across sessions). The Markdown table is OUT/compare.md,
the numbers OUT/compare.json.

    python benchmarks/compare_losses.py --out bench-compare              # the full comparison
    python benchmarks/compare_losses.py --out /tmp/smoke --smoke         # a tiny run of it all

The hard set is written to OUT/data (``alrp data synth --preset hard``) unless --data is
given.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from alrp_cli.atomic import write_json, write_text
from alrp_cli.detection.config import LOSS_RECIPES, PRESETS, TrainConfig, default_anchors

LOSSES = ("alrp", "ap", "focal")
METRICS = ("AP", "AP50", "AP75", "moLRP", "spearman")
ALRP_LR = PRESETS["coco"]["lr"]


def own_recipe(loss: str, base_lr: float) -> dict[str, Any]:
    """The options of ``loss``'s official recipe that carry over to the synthetic scale."""
    recipe = {**PRESETS["coco"], **LOSS_RECIPES[loss]}
    lr_at_32 = recipe["lr"] * 32 / recipe["lr_batch"]
    assigner = recipe["assigner"]
    scales, ratios = default_anchors(loss, assigner)
    steps = [0.6, 0.8] if loss == "alrp" and assigner == "maxiou" else recipe["lr_steps"]
    return {
        "assigner": assigner,
        "anchor_scales_per_octave": scales,
        "anchor_ratios": ratios,
        "group_norm": recipe["group_norm"],
        "p6_from": recipe["p6_from"],
        "warmup_ratio": recipe["warmup_ratio"],
        "lr_steps": list(steps),
        "lr": base_lr * lr_at_32 / ALRP_LR,
        "lr_batch": 32,
    }


def plan(args: argparse.Namespace, done: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run as {"name", "table", "loss", "seed", "lr", "options"}; the shared table's
    extra seeds appear once the grid on the first seed is finished."""
    runs: list[dict[str, Any]] = []
    for loss in args.losses:
        opts = own_recipe(loss, args.base_lr)
        for seed in args.seeds:
            runs.append(
                {
                    "name": f"own-{loss}-s{seed}",
                    "table": "own",
                    "loss": loss,
                    "seed": seed,
                    "lr": opts["lr"],
                    "options": opts,
                }
            )
    first, rest = args.seeds[0], args.seeds[1:]
    for loss in args.losses:
        grid = [
            {
                "name": f"shared-{loss}-lr{lr:g}-s{first}",
                "table": "shared",
                "loss": loss,
                "seed": first,
                "lr": lr,
                "options": {"lr": lr},
            }
            for lr in args.lr_grid
        ]
        runs.extend(grid)
        finished = [done[r["name"]] for r in grid if r["name"] in done]
        if len(finished) == len(grid):
            best = max(finished, key=lambda r: r["AP"])["lr"]
            for seed in rest:
                runs.append(
                    {
                        "name": f"shared-{loss}-lr{best:g}-s{seed}",
                        "table": "shared",
                        "loss": loss,
                        "seed": seed,
                        "lr": best,
                        "options": {"lr": best},
                    }
                )
    return runs


def run_one(run: dict[str, Any], args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """Train (or resume) one run, analyse its best predictions, write its result.json."""
    from alrp_cli.detection.data import coco_layout
    from alrp_cli.detection.train import train
    from analysis.pipeline import analyze

    run_dir = args.out / "runs" / run["name"]
    started = time.perf_counter()
    if (run_dir / "last.pt").is_file():
        cfg = TrainConfig(resume=str(run_dir))
    else:
        cfg = TrainConfig(
            data=str(data),
            out=str(run_dir),
            loss=run["loss"],
            seed=run["seed"],
            epochs=args.epochs,
            threads=args.threads,
            log_every=50,
            device=args.device,
            **args.scale,
            **run["options"],
        )
    result = train(cfg)
    if result.interrupted:
        raise KeyboardInterrupt
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["type"] == "eval"]
    best = max(evals, key=lambda r: r["AP"])
    preds = run_dir / "eval" / f"epoch_{best['epoch']:03d}" / "predictions.json"
    analysis = analyze(str(preds), str(coco_layout(data).val_ann))
    epochs = [r for r in records if r["type"] == "epoch"]
    out = {
        **{k: run[k] for k in ("name", "table", "loss", "seed", "lr")},
        "best_epoch": best["epoch"],
        "AP": analysis.coco["AP"],
        "AP50": analysis.coco["AP50"],
        "AP75": analysis.coco["AP75"],
        "moLRP": analysis.molrp,
        "spearman": analysis.ranking["pooled"]["spearman"],
        "sb_weight_used": [r.get("sb_weight") for r in epochs],
        "train_seconds": sum(r["seconds"] for r in epochs),
        "wall_seconds_last_invocation": time.perf_counter() - started,
        "config": json.loads((run_dir / "config.json").read_text()),
    }
    write_json(run_dir / "result.json", out)
    return out


def _mean_std(values: list[float], digits: int = 3) -> str:
    """'mean ± std' of the defined values ('-' when none; the value alone when one)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def tables(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The Markdown report: one table per recipe arm, the aLRP SB trajectories."""
    import os
    import platform

    import torch

    lines = [
        "# aLRP vs AP Loss vs focal loss (benchmarks/compare_losses.py)",
        "",
        f"Command: `python benchmarks/compare_losses.py {' '.join(args.argv)}`; machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.epochs} epochs per run. Cells: mean ± std over seeds; metrics of each "
        "run's best-AP epoch; train s: training time without evaluation.",
        "",
    ]
    for table, title in (("own", "Own (official) recipe per loss"), ("shared", "Shared recipe")):
        rows = [r for r in results if r["table"] == table]
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            "| loss | lr | seeds | " + " | ".join(METRICS) + " | train s |",
            "|---|---|---|" + "---|" * (len(METRICS) + 1),
        ]
        for loss in args.losses:
            mine = [r for r in rows if r["loss"] == loss]
            if table == "shared":  # the best lr's runs (the grid's others are listed below)
                by_lr: dict[float, list[dict[str, Any]]] = {}
                for r in mine:
                    by_lr.setdefault(r["lr"], []).append(r)
                if not by_lr:
                    continue
                mine = max(
                    by_lr.values(), key=lambda rs: (len(rs), statistics.mean(r["AP"] for r in rs))
                )
            if not mine:
                continue
            cells = [_mean_std([r[m] for r in mine]) for m in METRICS]
            secs = _mean_std([r["train_seconds"] for r in mine], digits=0)
            lines.append(
                f"| {loss} | {mine[0]['lr']:g} | {len(mine)} | "
                + " | ".join(cells)
                + f" | {secs} |"
            )
        if table == "shared":
            grid = sorted(
                (r for r in rows if r["seed"] == args.seeds[0]), key=lambda r: (r["loss"], r["lr"])
            )
            lines += [
                "",
                "Grid on seed "
                + str(args.seeds[0])
                + ": "
                + ", ".join(f"{r['loss']} lr {r['lr']:g} AP {r['AP']:.3f}" for r in grid),
            ]
        lines.append("")
    sb = [r for r in results if r["loss"] == "alrp"]
    if sb:
        lines += ["## Self-balance weight used in each epoch (aLRP)", ""]
        for r in sb:
            traj = ", ".join(f"{w:.2f}" for w in r["sb_weight_used"] if w is not None)
            lines.append(f"- {r['name']}: {traj}")
        lines.append("")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the runs and tables")
    p.add_argument("--data", type=Path, help="a hard set (default: written to OUT/data)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--epochs", type=int, help="10 epochs = 10 SB updates [10; --smoke: 2]")
    p.add_argument("--base-lr", type=float, default=0.04, help="aLRP's own-recipe lr at 32")
    p.add_argument("--lr-grid", default="0.02,0.04,0.08", help="shared recipe, at batch 32")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--smoke", action="store_true", help="tiny data and model: proves it runs")
    args = p.parse_args(argv)
    args.argv = argv
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.losses = [s for s in args.losses.split(",") if s]
    args.lr_grid = [float(s) for s in args.lr_grid.split(",")]
    if len(args.seeds) < 1 or any(loss not in LOSSES for loss in args.losses):
        p.error("--seeds needs one seed at least; --losses from alrp, ap, focal")
    args.scale = {}
    args.num_train, args.num_val = 1500, 300
    if args.epochs is None:
        args.epochs = 2 if args.smoke else 10
    if args.smoke:
        args.num_train, args.num_val = 16, 8
        args.scale = {
            "image_size": 64,
            "head_channels": 16,
            "batch_size": 8,
            "warmup_iters": 2,
            "eval_every": 1,
        }
    return args


def main(argv: list[str] | None = None) -> None:
    import sys

    from alrp_cli.detection.data import make_synthetic_coco
    from alrp_cli.detection.data.synthetic import MARKER

    args = parse(sys.argv[1:] if argv is None else argv)
    data = args.data or args.out / "data"
    if args.data is None and not (data / MARKER).is_file():
        size = 64 if args.smoke else 128
        make_synthetic_coco(
            data, num_train=args.num_train, num_val=args.num_val, image_size=size, preset="hard"
        )
    done: dict[str, dict[str, Any]] = {}
    while True:
        for path in sorted((args.out / "runs").glob("*/result.json")):
            record = json.loads(path.read_text())
            done[record["name"]] = record
        todo = [r for r in plan(args, done) if r["name"] not in done]
        if not todo:
            break
        run = todo[0]
        print(f"[{len(done) + 1}/{len(done) + len(todo)}] {run['name']}", flush=True)
        done[run["name"]] = run_one(run, args, data)
    wanted = {r["name"] for r in plan(args, done)}
    results = [done[n] for n in sorted(wanted)]
    write_text(args.out / "compare.md", tables(results, args))
    write_json(args.out / "compare.json", {"runs": results})
    print(f"wrote {args.out / 'compare.md'} and compare.json ({len(results)} runs)")


if __name__ == "__main__":
    main()
