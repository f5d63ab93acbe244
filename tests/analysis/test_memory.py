"""Peak memory of analyze() grows by at most 400 bytes per detection (docs/analyze.md).

Measured in a fresh process: the peak resident set (VmHWM) after the imports and the
ground truth, against the peak after the whole analysis of 200,000 detections.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BYTES_PER_DETECTION = 400

CHILD = """
import sys
import analysis
from analysis import load_gt

def hwm():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024

gt = load_gt(sys.argv[2])
before = hwm()
result = analysis.analyze(sys.argv[1], gt)
print(result.n_detections, before, hwm())
"""


def _write_case(tmp: Path, n_images: int, per_image: int) -> tuple[Path, Path]:
    """Ground truth (~6 boxes per image, 80 classes) and per_image detections per image."""
    rng = np.random.default_rng(0)
    n_gt = n_images * 6
    g_img = rng.integers(1, n_images + 1, n_gt)
    g_cat = rng.integers(1, 81, n_gt)
    g_box = np.round(np.c_[rng.uniform(0, 500, (n_gt, 2)), rng.uniform(4, 200, (n_gt, 2))], 2)
    anns = [
        {"id": i + 1, "image_id": int(a), "category_id": int(c), "bbox": b, "area": b[2] * b[3]}
        for i, (a, c, b) in enumerate(zip(g_img, g_cat, g_box.tolist(), strict=True))
    ]
    gt = {
        "images": [{"id": i} for i in range(1, n_images + 1)],
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, 81)],
        "annotations": anns,
    }
    n = n_images * per_image
    # Half the detections jitter a ground truth of their image, half are background.
    src = rng.integers(0, n_gt, n)
    hit = rng.random(n) < 0.5
    img = np.where(hit, g_img[src], np.repeat(np.arange(1, n_images + 1), per_image))
    cat = np.where(hit, g_cat[src], rng.integers(1, 81, n))
    box = np.where(
        hit[:, None], g_box[src] * rng.normal(1, 0.05, (n, 4)), g_box[rng.permutation(src)]
    )
    box[:, 2:] = np.maximum(box[:, 2:], 1.0)
    score = np.round(rng.random(n), 4)
    gt_path, dt_path = tmp / "gt.json", tmp / "dt.json"
    gt_path.write_text(json.dumps(gt))
    records = ",".join(
        f'{{"image_id":{a},"category_id":{c},"bbox":[{x:.2f},{y:.2f},{w:.2f},{h:.2f}],"score":{s}}}'
        for a, c, (x, y, w, h), s in zip(
            img.tolist(), cat.tolist(), box.tolist(), score.tolist(), strict=True
        )
    )
    dt_path.write_text(f"[{records}]")
    return gt_path, dt_path


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_memory_per_detection(tmp_path):
    gt_path, dt_path = _write_case(tmp_path, n_images=2000, per_image=100)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(dt_path), str(gt_path)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    n, before, after = map(int, out.stdout.split())
    assert n == 200_000
    per_detection = (after - before) / n
    print(f"peak growth {per_detection:.0f} bytes per detection")
    assert per_detection <= BYTES_PER_DETECTION, f"{per_detection:.0f} bytes per detection"
