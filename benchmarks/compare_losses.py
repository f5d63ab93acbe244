"""The losses of alrp train compared on the hard synthetic set: one command, resumable.

Two tables (arms), every cell mean ± std over seeds:

1. *own recipe*: each loss with the scale-free part of its official COCO recipe
   (its recipe in alrp_cli.registry): assigner and anchors, head normalisation (none but
   Rank & Sort's GroupNorm), P6 source, warmup ratio 0.001, schedule steps as fractions of
   the run, and the learning rate in the official ratio to aLRP's (aLRP 0.008, AP 0.002,
   Rank & Sort 0.016, focal 0.02 at batch 32) times --base-lr;
2. *shared recipe*: every loss with the synthetic preset (ATSS, GroupNorm head) at each
   learning rate of --lr-grid on the first seed; the best learning rate per loss (by AP)
   then runs on the other seeds.

Reported: COCO AP, AP50, AP75, moLRP, the pooled score-IoU Spearman of true positives
(analysis.analyze on each run's best-AP predictions), the self-balance weight used in each
epoch (aLRP) and the training wall time; figure 8 of the report with error bars (mean ±
std over seeds). Runs live in OUT/runs/<name>/; a run with ``result.json`` is done and
skipped, one with ``last.pt`` only is resumed, so the command can be stopped and restarted
(also across sessions). ``--jobs N`` trains N runs at once in separate processes. The
Markdown table is OUT/compare.md, the numbers OUT/compare.json, the figure OUT/figure8.png
and .pdf.

    python benchmarks/compare_losses.py --out bench-compare --jobs 2     # the full comparison
    python benchmarks/compare_losses.py --out /tmp/smoke --smoke         # a tiny run of it all
    python benchmarks/compare_losses.py --out cmp-rs --losses rs --arms shared  # one arm, one loss

The hard set is written to OUT/data (``alrp data synth --preset hard``) unless --data is
given.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from alrp_cli import registry
from alrp_cli.atomic import write_json, write_text
from alrp_cli.config.presets import PRESETS
from alrp_cli.config.training import TrainConfig

LOSSES = registry.names("train")
#: The loss of the --ablation runs: they vary its self-balance and its head (aLRP).
ABLATED = registry.DEFAULT_LOSS
METRICS = ("AP", "AP50", "AP75", "moLRP", "spearman")
#: The recipe arms, in the order they run (see the module docstring).
ARMS = ("shared", "own")
ALRP_LR = PRESETS["coco"]["lr"]


def own_recipe(loss: str, base_lr: float) -> dict[str, Any]:
    """The options of ``loss``'s official recipe that carry over to the synthetic scale."""
    own = registry.get(loss, "train").recipe
    assert own is not None
    recipe = own.coco_values(PRESETS["coco"], None)
    lr_at_32 = recipe["lr"] * 32 / recipe["lr_batch"]
    assigner = recipe["assigner"]
    scales, ratios = own.anchors_for(assigner)
    steps = recipe["lr_steps"]
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
    """Every run as {"name", "table", "loss", "seed", "lr", "options"}, in the order they
    run: the shared recipe's grid on the first seed, its best rates on the other seeds
    (they appear once the grid is finished), then the own recipes. The shared arm comes
    first because it holds everything else fixed: if a session ends early, it is the table
    that is complete."""
    runs: list[dict[str, Any]] = []
    first, rest = args.seeds[0], args.seeds[1:]
    best_lr: dict[str, float] = {}
    for loss in args.losses if "shared" in args.arms else ():
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
            best = best_lr[loss] = max(finished, key=lambda r: r["AP"] or 0.0)["lr"]
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
    for loss in args.losses if "own" in args.arms else ():
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
    if args.ablation and ABLATED in best_lr:  # after the grid: at aLRP's best shared rate
        lr = best_lr[ABLATED]
        for variant, options in ablations(args).items():
            runs.append(
                {
                    "name": f"ablation-{ABLATED}-{variant}-lr{lr:g}-s{first}",
                    "table": "ablation",
                    "variant": variant,
                    "loss": ABLATED,
                    "seed": first,
                    "lr": lr,
                    "options": {"lr": lr, **options},
                }
            )
    return runs


def ablations(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """--ablation: aLRP in the shared recipe with one thing changed each (first seed)."""
    return {
        "sb-fixed-10": {"sb_fixed": True, "sb_init": 10.0},  # the weight held, not balanced
        "no-groupnorm": {"group_norm": False},  # the official head: no normalisation
        "epochs-x2": {"epochs": 2 * args.epochs},  # twice the schedule (last: the longest)
    }


def run_one(run: dict[str, Any], args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """Train (or resume) one run, analyse its best predictions, write its result.json."""
    from alrp_cli.detection.data import coco_layout
    from alrp_cli.detection.engine import NonFiniteLoss
    from alrp_cli.detection.train import train
    from analysis.pipeline import analyze
    from analysis.report.build import headline_row

    run_dir = args.out / "runs" / run["name"]
    started = time.perf_counter()
    if (run_dir / "last.pt").is_file():
        cfg = TrainConfig.from_options(resume=run_dir)
    else:
        options = {
            "data": str(data),
            "out": str(run_dir),
            "loss": run["loss"],
            "seed": run["seed"],
            "epochs": args.epochs,
            "threads": args.threads,
            "eval_every": args.eval_every,
            "log_every": 50,
            "device": args.device,
            **args.scale,
        }
        cfg = TrainConfig.from_options(**{**options, **run["options"]})
    try:
        result = train(cfg)
    except NonFiniteLoss as err:  # a result too: that recipe diverges on this data
        records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        epochs = [r for r in records if r["type"] == "epoch"]
        out = {
            **{k: run[k] for k in ("name", "table", "loss", "seed", "lr")},
            **dict.fromkeys(METRICS),
            "diverged": str(err),
            "sb_weight_used": [r.get("sb_weight") for r in epochs],
            "train_seconds": sum(r["seconds"] for r in epochs),
            "config": json.loads((run_dir / "config.json").read_text()),
        }
        write_json(run_dir / "result.json", out)
        return out
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
        "variant": run.get("variant"),
        "best_epoch": best["epoch"],
        "AP": analysis.coco["AP"],
        "AP50": analysis.coco["AP50"],
        "AP75": analysis.coco["AP75"],
        "moLRP": analysis.molrp,
        "spearman": analysis.ranking["pooled"]["spearman"],
        "headline": headline_row(analysis.to_dict()),
        "sb_weight_used": [r.get("sb_weight") for r in epochs],
        "train_seconds": sum(r["seconds"] for r in epochs),
        "wall_seconds_last_invocation": time.perf_counter() - started,
        "config": json.loads((run_dir / "config.json").read_text()),
    }
    write_json(run_dir / "result.json", out)
    return out


def best_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of one loss's runs in one arm, those at the learning rate with the most seeds, then
    the highest mean AP (the own arm has one rate; the shared arm's grid has three)."""
    by_lr: dict[float, list[dict[str, Any]]] = {}
    for r in runs:
        by_lr.setdefault(r["lr"], []).append(r)
    if not by_lr:
        return []
    # A diverged run (AP None) counts as AP 0 in the choice of the rate.
    return max(
        by_lr.values(), key=lambda rs: (len(rs), statistics.mean(r["AP"] or 0.0 for r in rs))
    )


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
        f"# {' vs '.join(registry.get(loss).title for loss in args.losses)} "
        "(benchmarks/compare_losses.py)",
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
            mine = best_runs(mine)  # shared: the best lr's runs (the grid is listed below)
            if not mine:
                continue
            cells = [_mean_std([r[m] for r in mine]) for m in METRICS]
            secs = _mean_std([r["train_seconds"] for r in mine], digits=0)
            diverged = sum(1 for r in mine if r.get("diverged"))
            seeds = f"{len(mine)} ({diverged} diverged)" if diverged else f"{len(mine)}"
            lines.append(
                f"| {loss} | {mine[0]['lr']:g} | {seeds} | " + " | ".join(cells) + f" | {secs} |"
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
                + ", ".join(
                    f"{r['loss']} lr {r['lr']:g} "
                    + ("diverged" if r.get("diverged") else f"AP {r['AP']:.3f}")
                    for r in grid
                ),
            ]
        lines.append("")
    ablation = [r for r in results if r["table"] == "ablation"]
    if ablation:
        first = args.seeds[0]
        base = [
            r
            for r in results
            if r["table"] == "shared"
            and r["loss"] == ABLATED
            and r["seed"] == first
            and r["lr"] == ablation[0]["lr"]
        ]
        lines += [
            f"## Ablation: {registry.get(ABLATED).label}, shared recipe at lr "
            f"{ablation[0]['lr']:g}, seed {first}",
            "",
            "| variant | " + " | ".join(METRICS) + " | SB weight, first → last epoch | train s |",
            "|---|" + "---|" * (len(METRICS) + 2),
        ]
        for r in base + ablation:
            cells = ["-" if r.get(m) is None else f"{r[m]:.3f}" for m in METRICS]
            used = [w for w in r["sb_weight_used"] if w is not None]
            sb = f"{used[0]:.1f} → {used[-1]:.1f}" if used else "-"
            name = r.get("variant") or "baseline (self-balance, GroupNorm)"
            if r.get("diverged"):
                name += " (diverged)"
            lines.append(
                f"| {name} | " + " | ".join(cells) + f" | {sb} | {r['train_seconds']:.0f} |"
            )
        lines.append("")
    sb = [r for r in results if registry.SELF_BALANCE in registry.get(r["loss"]).needs]
    if sb:
        lines += ["## Self-balance weight used in each epoch (aLRP)", ""]
        for r in sb:
            traj = ", ".join(f"{w:.2f}" for w in r["sb_weight_used"] if w is not None)
            lines.append(f"- {r['name']}: {traj}")
        lines.append("")
    return "\n".join(lines)


def figure(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Figure 8 of the report with error bars: per (arm, loss), the mean and the standard
    deviation over seeds of every headline number, as OUT/figure8.{png,pdf}."""
    import pandas as pd

    from analysis.figures import plot_comparison
    from analysis.report.build import save_figure

    rows: dict[str, list[dict[str, Any]]] = {}
    for table, arm in (("own", "own"), ("shared", "shared")):
        for loss in args.losses:
            mine = best_runs([r for r in results if r["table"] == table and r["loss"] == loss])
            if mine:
                rows[f"{registry.get(loss).label}, {arm}"] = [r.get("headline", r) for r in mine]
    if not rows:
        return
    frames = {
        label: pd.DataFrame(runs).apply(pd.to_numeric, errors="coerce")
        for label, runs in rows.items()
    }
    mean = pd.DataFrame({label: f.mean() for label, f in frames.items()}).T
    std = pd.DataFrame({label: f.std(ddof=1) for label, f in frames.items()}).T
    columns = [c for c in mean.columns if c not in ("n_tp", "n_detections")]
    fig = plot_comparison(mean[columns], errors=std[columns])
    save_figure(fig, args.out / "figure8", ("png", "pdf"), dpi=150)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the runs and tables")
    p.add_argument("--data", type=Path, help="a hard set (default: written to OUT/data)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--arms", default=",".join(ARMS), help="the recipe arms to run")
    p.add_argument("--epochs", type=int, help="10 epochs = 10 SB updates [10; --smoke: 2]")
    p.add_argument("--base-lr", type=float, default=0.04, help="aLRP's own-recipe lr at 32")
    p.add_argument("--lr-grid", default="0.02,0.04,0.08", help="shared recipe, at batch 32")
    p.add_argument("--num-train", type=int, default=1500, help="training images of the set")
    p.add_argument("--num-val", type=int, default=300, help="validation images of the set")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    p.add_argument("--threads", type=int, default=None, help="per run [cores / --jobs]")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also aLRP with the SB weight fixed at 10, without GroupNorm, with twice the epochs",
    )
    p.add_argument("--smoke", action="store_true", help="tiny data and model: proves it runs")
    args = p.parse_args(argv)
    args.argv = argv
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.losses = [s for s in args.losses.split(",") if s]
    args.arms = [s for s in args.arms.split(",") if s]
    if not args.arms or any(arm not in ARMS for arm in args.arms):
        p.error(f"--arms: a comma-separated list from {', '.join(ARMS)}")
    if args.ablation and "shared" not in args.arms:
        p.error("--ablation runs at the shared arm's best rate: --arms must hold shared")
    args.lr_grid = [float(s) for s in args.lr_grid.split(",")]
    if len(args.seeds) < 1 or any(loss not in LOSSES for loss in args.losses):
        p.error(f"--seeds needs one seed at least; --losses from {', '.join(LOSSES)}")
    if args.jobs < 1 or args.eval_every < 1 or min(args.num_train, args.num_val) < 1:
        p.error("--jobs, --eval-every, --num-train and --num-val must be at least 1")
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    args.scale = {}
    if args.epochs is None:
        args.epochs = 2 if args.smoke else 10
    if args.smoke:
        args.num_train, args.num_val = 16, 8
        args.scale = {
            "image_size": 64,
            "head_channels": 16,
            "batch_size": 8,
            "warmup_iters": 2,
        }
    return args


def main(argv: list[str] | None = None) -> None:
    import sys

    from alrp_cli.detection.data import make_synthetic_coco
    from alrp_cli.errors import UserError
    from alrp_cli.outputs import Outputs
    from alrp_cli.synth_names import MARKER

    args = parse(sys.argv[1:] if argv is None else argv)
    try:  # the CLI's output checks: one line and exit 2, never an input overwritten
        if args.data is not None and not (args.data / MARKER).is_file():
            raise UserError(f"{args.data}: --data is not a folder written by alrp data synth")
        Outputs([args.data]).folder(args.out, "--out")
    except UserError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)
    data = args.data or args.out / "data"
    if args.data is None and not (data / MARKER).is_file():
        size = 64 if args.smoke else 128
        make_synthetic_coco(
            data, num_train=args.num_train, num_val=args.num_val, image_size=size, preset="hard"
        )
    print(f"data: {data}; {args.jobs} run(s) at once, {args.threads} thread(s) each", flush=True)
    done: dict[str, dict[str, Any]] = {}
    running: dict[Future[dict[str, Any]], str] = {}
    # Spawned workers: a forked child would inherit torch's thread pools in a bad state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        while True:
            for path in sorted((args.out / "runs").glob("*/result.json")):
                record = json.loads(path.read_text())
                done[record["name"]] = record
            busy = set(running.values())
            todo = [r for r in plan(args, done) if r["name"] not in done and r["name"] not in busy]
            for run in todo[: args.jobs - len(running)]:
                total = len(done) + len(busy) + len(todo)
                print(f"[{len(done) + len(running) + 1}/{total}] {run['name']}", flush=True)
                running[pool.submit(run_one, run, args, data)] = run["name"]
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = future.result()
    wanted = {r["name"] for r in plan(args, done)}
    results = [done[n] for n in sorted(wanted)]
    write_text(args.out / "compare.md", tables(results, args))
    write_json(args.out / "compare.json", {"runs": results})
    figure(results, args)
    print(f"wrote {args.out / 'compare.md'} and compare.json ({len(results)} runs)")


if __name__ == "__main__":
    main()
