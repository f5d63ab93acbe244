"""Benchmark `alrp analyze` on a generated COCO-val-sized case against COCOeval alone.

The case: 5,000 images, about 36,000 ground-truth boxes in 80 classes (about 1% crowd),
100 detections per image (500,000 in all): jittered copies of the ground truth with
scores loosely tied to their IoU, duplicates, and background boxes.

Run:  .venv/bin/python benchmarks/bench_analyze.py [--images 5000] [--repeat 1] [--memory]

In one process and one run it times
  1. pycocotools COCOeval: evaluate() + accumulate() (loading and loadRes not timed);
  2. faster-coco-eval COCOeval_faster: evaluate() + accumulate() (for reference);
  3. analysis.analyze(): the whole analysis of one file, from the JSON path to the
     result (parse, validation, COCO numbers, matching, oLRP, loss values, ranking);
and prints the figures as a Markdown table for docs/benchmarks.md. With --memory it also
runs analyze() alone in fresh processes on 1/4, 1/2 and all of the images and reports
their peak resident memory, to show that memory grows with the number of detections.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(n_images: int = 5000, dets_per_image: int = 100, seed: int = 0) -> tuple[dict, list]:
    """Generate (ground truth dict, results list) of a COCO-val-like case."""
    rng = np.random.default_rng(seed)
    n_cats = 80
    cat_ids = np.arange(1, 91)[np.sort(rng.choice(90, n_cats, replace=False))]
    images = [{"id": int(i), "width": 640, "height": 480} for i in range(1, n_images + 1)]
    categories = [{"id": int(c), "name": f"class{c}", "supercategory": "x"} for c in cat_ids]
    # About 7.2 boxes per image; a few classes dominate, as in COCO.
    cat_p = rng.dirichlet(np.full(n_cats, 0.6))
    annotations = []
    gt_per_image: list[list[tuple[int, list[float]]]] = []
    ann_id = 1
    for img in images:
        k = int(rng.poisson(7.2))
        cats = rng.choice(cat_ids, size=k, p=cat_p)
        boxes = []
        for c in cats:
            w = float(np.exp(rng.uniform(np.log(4), np.log(400))))
            h = float(np.clip(w * np.exp(rng.normal(0, 0.5)), 2, 470))
            w = min(w, 630.0)
            x = float(rng.uniform(0, 640 - w))
            y = float(rng.uniform(0, 480 - h))
            crowd = int(rng.random() < 0.01)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": img["id"],
                    "category_id": int(c),
                    "bbox": [x, y, w, h],
                    "area": w * h * 0.8,
                    "iscrowd": crowd,
                }
            )
            ann_id += 1
            boxes.append((int(c), [x, y, w, h]))
        gt_per_image.append(boxes)
    results = []
    for img, boxes in zip(images, gt_per_image, strict=True):
        n = 0
        for c, (x, y, w, h) in boxes:
            for _ in range(int(rng.integers(1, 4))):  # one true hit, sometimes duplicates
                if n >= dets_per_image:
                    break
                q = rng.uniform(0.0, 0.35)
                nx, ny = x + rng.normal(0, q) * w, y + rng.normal(0, q) * h
                nw, nh = w * np.exp(rng.normal(0, q)), h * np.exp(rng.normal(0, q))
                score = float(np.clip(0.9 - q + rng.normal(0, 0.2), 0.001, 1.0))
                results.append(_det(img["id"], c, nx, ny, nw, nh, score))
                n += 1
        while n < dets_per_image:  # background: random boxes, random classes, low scores
            w = float(np.exp(rng.uniform(np.log(4), np.log(300))))
            h = float(np.exp(rng.uniform(np.log(4), np.log(300))))
            c = int(rng.choice(cat_ids, p=cat_p))
            score = float(rng.beta(1.2, 6.0))
            x, y = rng.uniform(0, 600), rng.uniform(0, 440)
            results.append(_det(img["id"], c, x, y, w, h, score))
            n += 1
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, results


def _det(image_id: int, c: int, x: float, y: float, w: float, h: float, score: float) -> dict:
    return {
        "image_id": int(image_id),
        "category_id": int(c),
        "bbox": [round(float(x), 2), round(float(y), 2), round(float(w), 2), round(float(h), 2)],
        "score": round(score, 5),
    }


def time_pycocotools(gt_path: Path, dt_path: Path) -> float:
    """Seconds of pycocotools COCOeval evaluate() + accumulate()."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        ev = COCOeval(gt, dt, "bbox")
        t0 = time.perf_counter()
        ev.evaluate()
        ev.accumulate()
        elapsed = time.perf_counter() - t0
        ev.summarize()
    return elapsed


def time_faster_coco_eval(gt_path: Path, dt_path: Path) -> float:
    """Seconds of faster-coco-eval COCOeval_faster evaluate() + accumulate()."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(str(gt_path))
    dt = gt.loadRes(str(dt_path))
    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    t0 = time.perf_counter()
    ev.evaluate()
    ev.accumulate()
    return time.perf_counter() - t0


def time_analyze(gt_path: Path, dt_path: Path) -> tuple[float, dict[str, float], object]:
    """Seconds of the whole analysis of one file, with the time of each phase."""
    from analysis import analyze

    phases: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(phase: str, done: int, total: int) -> None:
        phases.setdefault(phase, time.perf_counter() - t0)

    result = analyze(dt_path, gt_path, progress=progress)
    elapsed = time.perf_counter() - t0
    names = list(phases)
    starts = [phases[n] for n in names] + [elapsed]
    return elapsed, {n: starts[i + 1] - starts[i] for i, n in enumerate(names)}, result


def _peak_rss_child(gt_path: Path, dt_path: Path) -> tuple[float, float]:
    """(peak RSS MiB after imports, peak RSS MiB after analyze) of a fresh process."""
    # VmHWM (peak RSS of this address space) rather than ru_maxrss, which Linux carries
    # over from the parent across fork + exec.
    code = (
        "import sys, analysis\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "r0 = hwm()\n"
        "analysis.analyze(sys.argv[1], sys.argv[2])\n"
        "print(r0, hwm())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(dt_path), str(gt_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    a, b = out.stdout.split()
    return float(a), float(b)


def main() -> None:
    """Generate the case, time the three, print the Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1, help="timing rounds (best is reported)")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS scaling")
    ap.add_argument("--out", type=Path, default=None, help="keep the generated files here")
    args = ap.parse_args()

    tmp = args.out or Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    tmp.mkdir(parents=True, exist_ok=True)
    gt_path, dt_path = tmp / "gt.json", tmp / "detections.json"
    t0 = time.perf_counter()
    gt, dets = generate(args.images)
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    n_gt, n_det = len(gt["annotations"]), len(dets)
    del gt, dets
    print(f"generated {n_gt} ground truths, {n_det} detections in {time.perf_counter() - t0:.1f}s")

    py, fast, ours = [], [], []
    phases: dict[str, float] = {}
    result = None
    for _ in range(args.repeat):
        py.append(time_pycocotools(gt_path, dt_path))
        print(f"pycocotools evaluate+accumulate: {py[-1]:.2f}s", flush=True)
        fast.append(time_faster_coco_eval(gt_path, dt_path))
        print(f"faster-coco-eval evaluate+accumulate: {fast[-1]:.2f}s", flush=True)
        t, ph, result = time_analyze(gt_path, dt_path)
        if not ours or t < min(ours):
            phases = ph
        ours.append(t)
        print(
            f"analyze (whole): {t:.2f}s  phases: "
            + ", ".join(f"{k} {v:.2f}s" for k, v in ph.items()),
            flush=True,
        )

    cpu = platform.processor() or platform.machine()
    print()
    print(
        f"Machine: {platform.system()} {cpu}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}; load average at start {os.getloadavg()[0]:.1f}"
    )
    print(
        f"Command: python benchmarks/bench_analyze.py --images {args.images} "
        f"--repeat {args.repeat}{' --memory' if args.memory else ''}"
    )
    print(f"Case: {args.images} images, {n_gt} ground truths, 80 classes, {n_det} detections")
    print()
    print(f"| what | seconds (best of {args.repeat}) | ratio to pycocotools |")
    print("|---|---:|---:|")
    for name, ts in (
        ("pycocotools COCOeval evaluate() + accumulate()", py),
        ("faster-coco-eval evaluate() + accumulate()", fast),
        ("`analysis.analyze()` whole analysis (parse to result)", ours),
    ):
        print(f"| {name} | {min(ts):.2f} | {min(ts) / min(py):.2f} |")
    print()
    print("analyze() phases (best round): " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))
    if result is not None:
        print(f"AP {result.coco['AP']:.4f}, moLRP {result.molrp:.4f}")

    if args.memory:
        print()
        print(
            "| images | detections | peak RSS after imports (MiB) | peak RSS after analyze (MiB) |"
            " growth (MiB) |"
        )
        print("|---:|---:|---:|---:|---:|")
        for frac in (4, 2, 1):
            n_img = args.images // frac
            g, d = generate(n_img)
            gp, dp = tmp / f"gt_{n_img}.json", tmp / f"det_{n_img}.json"
            gp.write_text(json.dumps(g))
            dp.write_text(json.dumps(d))
            r0, r1 = _peak_rss_child(gp, dp)
            print(f"| {n_img} | {len(d)} | {r0:.0f} | {r1:.0f} | {r1 - r0:.0f} |", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process: peak RSS {peak:.0f} MiB)")


if __name__ == "__main__":
    main()
