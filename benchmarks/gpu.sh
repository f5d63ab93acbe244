#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md, in one go, on a machine with CUDA GPUs:
#   1. the CUDA tests (pytest -m cuda, slow ones included);
#   2. `alrp bench --device cuda` at P = 2,000 positives, N = 32,000,000 logits;
#   3. step time of aLRP vs focal, with and without --amp, at the COCO preset
#      (ResNet-50, 512 px, batch 32) on a synthetic COCO-size set this script writes
#      (512 px images, 80 categories so the logits are COCO's size);
#   4. DDP scaling from 1 to all visible GPUs (8 images per GPU): images/s with
#      --ranking global and --ranking local.
# Writes one Markdown table to $OUT/gpu.md (default benchmarks/out/gpu.md) and prints it.
#
# Usage: bash benchmarks/gpu.sh            (from the repository root, alrp installed or
#                                           PYTHONPATH=. with torch/torchvision for CUDA)
# Knobs: PYTHON (python), OUT (benchmarks/out), STEPS (20 training steps per run),
#        SKIP_TESTS=1 to skip step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/out}
STEPS=${STEPS:-20}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$NGPU" -lt 1 ]; then echo "gpu.sh: no CUDA device visible" >&2; exit 2; fi
GPU=$($PY -c "import torch; print(torch.cuda.get_device_name(0))")
TABLE="$OUT/gpu.md"
{
  echo "# GPU figures ($(date -u +%Y-%m-%d), $NGPU x $GPU, torch $($PY -c 'import torch; print(torch.__version__)'))"
  echo
  echo "| measurement | configuration | value |"
  echo "|---|---|---|"
} > "$TABLE"
row() { echo "| $1 | $2 | $3 |" >> "$TABLE"; }

# 1. CUDA tests
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  if $PY -m pytest -q -m cuda tests > "$OUT/cuda-tests.log" 2>&1; then tests=pass; else tests=FAIL; fi
  row "CUDA tests" "pytest -m cuda" "$tests ($(tail -1 "$OUT/cuda-tests.log"))"
fi

# 2. the loss kernels at P = 2,000, N = 32M
$PY -m alrp_cli bench --device cuda --size 2000x32M --reference-repeats 0 \
  --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1
$PY - "$OUT/bench.json" >> "$TABLE" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["rows"]:
    print(f"| alrp bench, {r['loss']} | P={r['positives']:,} N={r['examples']:,} "
          f"{r['device']} {r['dtype']} | forward+backward {r['fast_s'] * 1e3:.1f} ms, "
          f"one sort of the logits {r['sort_s'] * 1e3:.1f} ms, "
          f"peak {r['fast_peak_bytes'] / 2**30:.2f} GiB |")
PY

# 3. a synthetic COCO-size set: 512 px images, 80 categories
DATA="$OUT/coco-size"
if [ ! -f "$DATA/annotations/instances_train2017.json" ]; then
  $PY -m alrp_cli data synth --out "$DATA" --num-train $((32 * STEPS)) --num-val 64 \
    --image-size 512 > /dev/null
  $PY - "$DATA" <<'PY'
import json, sys
from pathlib import Path
for split in ("train2017", "val2017"):
    p = Path(sys.argv[1]) / "annotations" / f"instances_{split}.json"
    d = json.loads(p.read_text())
    have = {c["id"] for c in d["categories"]}
    d["categories"] += [{"id": i, "name": f"empty{i}"} for i in range(1, 81) if i not in have]
    p.write_text(json.dumps(d))
(Path(sys.argv[1]) / "alrp-synth.json").unlink(missing_ok=True)  # COCO preset, not synthetic
PY
fi
COCO_ARGS=(--train-ann "$DATA/annotations/instances_train2017.json"
  --train-images "$DATA/train2017" --val-ann "$DATA/annotations/instances_val2017.json"
  --val-images "$DATA/val2017" --epochs 1 --eval-every 100 --log-every 5 --workers 8)
step_time() {  # run dir -> "s/step images/s" from the step records after warm-up
  $PY - "$1" <<'PY'
import json, statistics, sys
from pathlib import Path
recs = [json.loads(x) for x in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in recs if r["type"] == "step"][1:]  # the first window holds the warm-up
cfg = json.loads((Path(sys.argv[1]) / "config.json").read_text())
ips = statistics.median(r["images_per_s"] for r in steps)
print(f"{cfg['batch_size'] / ips:.3f} s/step, {ips:.1f} images/s")
PY
}
for loss in alrp focal; do
  for amp in --no-amp --amp; do
    run="$OUT/step-$loss$amp"; rm -rf "$run"
    $PY -m alrp_cli train "${COCO_ARGS[@]}" --loss "$loss" $amp --device cuda --out "$run" \
      > "$run.log" 2>&1
    row "step time, 1 GPU" "COCO preset (R50, 512 px, batch 32), --loss $loss $amp" "$(step_time "$run")"
  done
done

# 4. DDP scaling, 8 images per GPU
n=1
while [ "$n" -le "$NGPU" ]; do
  for ranking in global local; do
    [ "$n" -eq 1 ] && [ "$ranking" = local ] && continue
    run="$OUT/ddp-$n-$ranking"; rm -rf "$run"
    $PY -m torch.distributed.run --standalone --nproc_per_node "$n" -m alrp_cli train \
      "${COCO_ARGS[@]}" --batch-size $((8 * n)) --amp --ranking "$ranking" --out "$run" \
      > "$run.log" 2>&1
    row "DDP scaling" "$n GPU x 8 images, --amp, --ranking $ranking" "$(step_time "$run")"
  done
  if [ "$n" -lt "$NGPU" ] && [ $((n * 2)) -gt "$NGPU" ]; then n=$NGPU; else n=$((n * 2)); fi
done
cat "$TABLE"
