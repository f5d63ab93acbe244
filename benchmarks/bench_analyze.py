"""Benchmark `alrp analyze` on a generated COCO-val-like case against COCOeval.

The case: N images (default 5,000), about 7.2 ground-truth boxes per image in 80
classes (about 1% crowd), D detections per image (default 100): one to three jittered
copies of each ground truth with scores loosely tied to their IoU, then background
boxes of random classes with low scores.

Run:  .venv/bin/python benchmarks/bench_analyze.py [--images 5000] [--dets-per-image 100]
          [--skip pycocotools,faster-coco-eval,...] [--out DIR] [--command-of NAME=PATH]
          [--rounds 1]

Each of the four runs once, in its own fresh process, one after the other:
  1. pycocotools: COCO(gt), loadRes(results), COCOeval evaluate() + accumulate() + summarize();
  2. faster-coco-eval: the same with its COCO and COCOeval_faster;
  3. `analysis.analyze()`: the whole analysis of the file (parse, validation, the 12 COCO
     numbers, oLRP, loss values, ranking statistics), which is what `alrp analyze` runs;
  4. the `alrp analyze` command itself (`python -m alrp_cli analyze DETECTIONS --gt GT
     --json FILE`, its tables thrown away): start-up, imports, the analysis, the tables and
     the JSON, all of it. --command-of NAME=PATH (repeatable) also runs the command of
     another checkout (PYTHONPATH=PATH), e.g. an older commit, in the same run.
Reported per run: wall and CPU seconds (user + system, all threads) of the timed part
(for the two COCOeval engines their evaluate() + accumulate() alone, and separately their
loading; for the command the whole process), CPU seconds of the whole process after its
imports (for the command all of it), and peak resident memory (VmHWM) after the imports
and at the end. --rounds N runs them all N times, round after round, and reports the
medians (memory: the first round's), so that a change of load on a shared machine does not
decide a comparison. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def generate(
    n_images: int = 5000, dets_per_image: int = 100, seed: int = 0
) -> tuple[dict, dict[str, np.ndarray]]:
    """(ground truth dict, detection columns) of a COCO-val-like case, vectorised."""
    rng = np.random.default_rng(seed)
    n_cats = 80
    cat_ids = np.arange(1, 91)[np.sort(rng.choice(90, n_cats, replace=False))]
    cat_p = rng.dirichlet(np.full(n_cats, 0.6))  # a few classes dominate, as in COCO
    per_image = rng.poisson(7.2, n_images)
    n_gt = int(per_image.sum())
    g_img = np.repeat(np.arange(1, n_images + 1), per_image)
    g_cat = rng.choice(cat_ids, size=n_gt, p=cat_p)
    w = np.exp(rng.uniform(np.log(4), np.log(400), n_gt))
    h = np.clip(w * np.exp(rng.normal(0, 0.5, n_gt)), 2, 470)
    w = np.minimum(w, 630.0)
    x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
    crowd = (rng.random(n_gt) < 0.01).astype(int)
    annotations = [
        {"id": i + 1, "image_id": a, "category_id": c, "bbox": b, "area": ar, "iscrowd": k}
        for i, (a, c, b, ar, k) in enumerate(
            zip(
                g_img.tolist(),
                g_cat.tolist(),
                np.c_[x, y, w, h].tolist(),
                (w * h * 0.8).tolist(),
                crowd.tolist(),
                strict=True,
            )
        )
    ]
    gt = {
        "images": [{"id": i, "width": 640, "height": 480} for i in range(1, n_images + 1)],
        "annotations": annotations,
        "categories": [{"id": int(c), "name": f"class{c}", "supercategory": "x"} for c in cat_ids],
    }
    # Hits: one to three jittered copies of each ground truth, at most dets_per_image.
    copies = rng.integers(1, 4, n_gt)
    src = np.repeat(np.arange(n_gt), copies)
    h_img = g_img[src]
    first = np.searchsorted(h_img, h_img)  # position of the image's first hit
    keep = np.arange(len(src)) - first < dets_per_image
    src, h_img = src[keep], h_img[keep]
    q = rng.uniform(0.0, 0.35, len(src))
    gw, gh = w[src], h[src]
    hit_box = np.c_[
        x[src] + rng.normal(0, 1, len(src)) * q * gw,
        y[src] + rng.normal(0, 1, len(src)) * q * gh,
        gw * np.exp(rng.normal(0, 1, len(src)) * q),
        gh * np.exp(rng.normal(0, 1, len(src)) * q),
    ]
    hit_score = np.clip(0.9 - q + rng.normal(0, 0.2, len(src)), 0.001, 1.0)
    # Background: random boxes of random classes with low scores fill each image up.
    n_hits = np.bincount(h_img, minlength=n_images + 1)[1:]
    n_bg = dets_per_image - n_hits
    b_img = np.repeat(np.arange(1, n_images + 1), n_bg)
    nb = len(b_img)
    bg_box = np.c_[
        rng.uniform(0, 600, nb),
        rng.uniform(0, 440, nb),
        np.exp(rng.uniform(np.log(4), np.log(300), nb)),
        np.exp(rng.uniform(np.log(4), np.log(300), nb)),
    ]
    image_id = np.r_[h_img, b_img]
    order = np.argsort(image_id, kind="stable")  # hits first within each image
    dets = {
        "image_id": image_id[order],
        "category_id": np.r_[g_cat[src], rng.choice(cat_ids, size=nb, p=cat_p)][order],
        "bbox": np.round(np.r_[hit_box, bg_box][order], 2),
        "score": np.round(np.r_[hit_score, rng.beta(1.2, 6.0, nb)][order], 5),
    }
    return gt, dets


def write_results(path: Path, dets: dict[str, np.ndarray], chunk: int = 200_000) -> None:
    """Write detection columns as a COCO results JSON list, a chunk of records at a time."""
    n = len(dets["score"])
    with open(path, "w") as f:
        f.write("[")
        for s in range(0, n, chunk):
            part = slice(s, min(s + chunk, n))
            recs = (
                f'{{"image_id": {i}, "category_id": {c}, "bbox": [{b[0]}, {b[1]}, {b[2]}, '
                f'{b[3]}], "score": {sc}}}'
                for i, c, b, sc in zip(
                    dets["image_id"][part].tolist(),
                    dets["category_id"][part].tolist(),
                    dets["bbox"][part].tolist(),
                    dets["score"][part].tolist(),
                    strict=True,
                )
            )
            f.write((", " if s else "") + ", ".join(recs))
        f.write("]")


_PRELUDE = """
import json, resource, sys, time
def hwm():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
gt_path, dt_path = sys.argv[1], sys.argv[2]
"""

# Both COCO engines run the same timed script; only the import and the evaluator differ.
_COCOEVAL = """
import contextlib, io
{imports}
m0, c0 = hwm(), cpu()
with contextlib.redirect_stdout(io.StringIO()):
    t0 = time.perf_counter()
    gt = COCO(gt_path)
    dt = gt.loadRes(dt_path)
    t1, c1 = time.perf_counter(), cpu()
    ev = {evaluator}(gt, dt, "bbox"{extra})
    ev.evaluate()
    ev.accumulate()
    t2, c2 = time.perf_counter(), cpu()
    ev.summarize()
print(json.dumps({{"load": t1 - t0, "timed": t2 - t1, "cpu_timed": c2 - c1, "cpu": cpu() - c0,
                  "hwm0": m0, "hwm": hwm(), "AP": float(ev.stats[0])}}))
"""

CHILDREN = {
    "pycocotools": _PRELUDE
    + _COCOEVAL.format(
        imports="from pycocotools.coco import COCO\nfrom pycocotools.cocoeval import COCOeval",
        evaluator="COCOeval",
        extra="",
    ),
    "faster-coco-eval": _PRELUDE
    + _COCOEVAL.format(
        imports="from faster_coco_eval import COCO, COCOeval_faster",
        evaluator="COCOeval_faster",
        extra=", print_function=lambda *a, **k: None",
    ),
    "alrp analyze": _PRELUDE
    + """
import analysis
m0, c0 = hwm(), cpu()
phases = {}
t0 = time.perf_counter()
def progress(phase, done, total):
    phases.setdefault(phase, time.perf_counter() - t0)
r = analysis.analyze(dt_path, gt_path, progress=progress)
t1 = time.perf_counter()
names = list(phases)
starts = [phases[n] for n in names] + [t1 - t0]
c1 = cpu() - c0
print(json.dumps({"load": 0.0, "timed": t1 - t0, "cpu_timed": c1, "cpu": c1, "hwm0": m0,
                  "hwm": hwm(), "AP": r.coco["AP"], "moLRP": r.molrp,
                  "phases": {n: starts[i + 1] - starts[i] for i, n in enumerate(names)}}))
""",
}


#: The whole command, timed from outside its process (it has no "after the imports").
COMMAND = "alrp analyze command"


def run_command(gt_path: Path, dt_path: Path, checkout: Path = REPO) -> dict:
    """Run `alrp analyze` in a fresh process; its figures as a dict (CPU and peak memory
    from the child's own resource usage), with the modules of ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = dt_path.with_name("analysis.json")
    argv = [sys.executable, "-m", "alrp_cli", "analyze", str(dt_path), "--gt", str(gt_path)]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*argv, "--json", str(out)],
            cwd=dt_path.parent,  # not a checkout: the modules come from PYTHONPATH
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"alrp analyze failed: {err.read().decode()[-2000:]}")
    doc = json.loads(out.read_text())
    return {
        "load": 0.0,
        "timed": wall,
        "cpu_timed": usage.ru_utime + usage.ru_stime,
        "cpu": usage.ru_utime + usage.ru_stime,
        "hwm0": None,
        "hwm": usage.ru_maxrss * 1024,
        "AP": doc["files"][0]["coco"]["AP"],
        "process_wall": wall,
    }


def run_child(name: str, gt_path: Path, dt_path: Path) -> dict:
    """Run one engine in a fresh process; its figures as a dict."""
    if name == COMMAND:
        return run_command(gt_path, dt_path)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILDREN[name], str(gt_path), str(dt_path)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_wall"] = time.perf_counter() - t0
    return res


def main() -> None:
    """Generate the case, run the three engines, print the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dets-per-image", type=int, default=100)
    ap.add_argument("--skip", default="", help="comma-separated engines not to run")
    ap.add_argument("--out", type=Path, default=None, help="keep the generated files here")
    ap.add_argument(
        "--command-of",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also time the whole command of this checkout (repeatable)",
    )
    ap.add_argument("--rounds", type=int, default=1, help="run everything this many times")
    args = ap.parse_args()

    tmp = args.out or Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    tmp.mkdir(parents=True, exist_ok=True)
    gt_path, dt_path = tmp / "gt.json", tmp / "detections.json"
    t0 = time.perf_counter()
    gt, dets = generate(args.images, args.dets_per_image)
    gt_path.write_text(json.dumps(gt))
    write_results(dt_path, dets)
    n_gt, n_det = len(gt["annotations"]), len(dets["score"])
    del gt, dets
    print(f"generated {n_gt} ground truths, {n_det} detections in {time.perf_counter() - t0:.1f}s")
    load0 = os.getloadavg()[0]

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    others = {}  # the commands of other checkouts, by their rows' names
    for item in args.command_of:
        label, _, path = item.partition("=")
        others[f"{COMMAND} ({label})"] = Path(path).resolve()
    rounds: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for name in [n for n in [*CHILDREN, COMMAND] if n not in skip] + list(others):
            if name in others:
                r = run_command(gt_path, dt_path, others[name])
            else:
                r = run_child(name, gt_path, dt_path)
            rounds.setdefault(name, []).append(r)
            print(f"{name}: {json.dumps(r)}", flush=True)
    # Medians of the times; memory, AP and phases of the first round.
    results = {
        name: {
            **runs[0],
            **{k: statistics.median(r[k] for r in runs) for k in ("timed", "cpu_timed", "cpu")},
        }
        for name, runs in rounds.items()
    }

    mib = 2**20
    print()
    print(
        f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}; load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    cmd = f"python benchmarks/bench_analyze.py --images {args.images}"
    if args.dets_per_image != 100:
        cmd += f" --dets-per-image {args.dets_per_image}"
    if skip:
        cmd += f" --skip {','.join(sorted(skip))}"
    cmd += "".join(f" --command-of {item}" for item in args.command_of)
    if args.rounds != 1:
        cmd += f" --rounds {args.rounds} (medians of the rounds)"
    print(f"Command: {cmd}")
    print(
        f"Case: {args.images} images, {n_gt} ground truths, 80 classes, {n_det} detections, "
        f"results file {dt_path.stat().st_size / mib:.0f} MiB"
    )
    print()
    print(
        "| run | timed part | wall (s) | CPU (s) | loading (s) | CPU, whole process (s) "
        "| peak RSS after imports (MiB) | peak RSS (MiB) | growth per detection (bytes) | AP |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    parts = {"alrp analyze": "whole analysis", COMMAND: "whole command, start-up included"}
    for name, r in results.items():
        part = parts.get(name.split(" (")[0], "evaluate() + accumulate()")
        if r["hwm0"] is None:  # the command: no figures "after the imports"
            load, after, growth = "(included)", "-", "-"
        else:
            load, after = f"{r['load']:.2f}", f"{r['hwm0'] / mib:.0f}"
            growth = f"{(r['hwm'] - r['hwm0']) / n_det:.0f}"
        print(
            f"| {name} | {part} | {r['timed']:.2f} | {r['cpu_timed']:.2f} | {load} | "
            f"{r['cpu']:.2f} | "
            f"{after} | {r['hwm'] / mib:.0f} | {growth} | {r['AP']:.4f} |"
        )
    print()
    for name in [n for n in results if n.startswith(COMMAND)]:
        r = results[name]
        ratios = []
        for n in ("faster-coco-eval", "pycocotools"):
            if n in results:
                wall, cpu = (
                    r["timed"] / results[n]["timed"],
                    r["cpu_timed"] / results[n]["cpu_timed"],
                )
                ratios.append(f"{wall:.2f}× (CPU {cpu:.2f}×) {n}'s evaluate() + accumulate()")
        print(
            f"{name}: {r['timed']:.2f} s wall, {r['cpu_timed']:.2f} s CPU; "
            + ", ".join(ratios)
            + "."
        )
    if "alrp analyze" in results:
        ph = results["alrp analyze"]["phases"]
        print()
        print("analyze() phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in ph.items()))


if __name__ == "__main__":
    main()
