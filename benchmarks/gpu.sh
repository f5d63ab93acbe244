#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md, in one go, on a machine with CUDA GPUs:
#   1. the CUDA tests (pytest -m cuda, slow ones included);
#   2. `alrp bench --device cuda` at P = 2,000 positives, N = 32,000,000 logits;
#   3. step time of aLRP vs focal, with and without --amp, at the COCO preset
#      (ResNet-50, 512 px, batch 32) on a synthetic COCO-size set this script writes
#      (512 px images, 80 categories so the logits are COCO's size);
#   4. DDP scaling from 1 to all visible GPUs (8 images per GPU): images/s with
#      --ranking global and --ranking local;
#   5. with COCO=/path/to/coco (annotations/, train2017/, val2017/): the COCO preset on real
#      images, as the paper trains it (ResNet-50 from the ImageNet weights, official
#      augmentation, --amp), ITERS iterations at 8 images per GPU on 1 and on all visible
#      GPUs, then an evaluation of VAL images: images/s and the data loader's wait per step.
#      The ImageNet weights come from torch's cache or BACKBONE_WEIGHTS=FILE (no download
#      on a machine without internet).
# Writes one Markdown table to $OUT/gpu.md (default benchmarks/out/gpu.md) and prints it.
#
# Usage: bash benchmarks/gpu.sh            (from the repository root, alrp installed or
#                                           PYTHONPATH=. with torch/torchvision for CUDA)
# Knobs: PYTHON (python), OUT (benchmarks/out), STEPS (20 training steps per run),
#        SKIP_TESTS=1 to skip step 1, ONLY_COCO=1 to run step 5 alone, COCO, ITERS (300),
#        VAL (200), WORKERS (8 per process), BACKBONE_WEIGHTS;
#        DRY=1 (with COCO): write step 5's subsets and print its commands, run nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/out}
STEPS=${STEPS:-20}
DRY=${DRY:-0}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
if [ "$DRY" = 1 ]; then
  NGPU=${NGPU:-2}; GPU="dry run"; TORCH="-"; ONLY_COCO=1
else
  NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
  if [ "$NGPU" -lt 1 ]; then echo "gpu.sh: no CUDA device visible" >&2; exit 2; fi
  GPU=$($PY -c "import torch; print(torch.cuda.get_device_name(0))")
  TORCH=$($PY -c 'import torch; print(torch.__version__)')
fi
TABLE="$OUT/gpu.md"
{
  echo "# GPU figures ($(date -u +%Y-%m-%d), $NGPU x $GPU, torch $TORCH)"
  echo
  echo "| measurement | configuration | value |"
  echo "|---|---|---|"
} > "$TABLE"
row() { echo "| $1 | $2 | $3 |" >> "$TABLE"; }

coco_real() {  # 5. the COCO preset on real images (see the header)
  local iters=${ITERS:-300} val=${VAL:-200} n cmd run
  local weights=() gpus=(1)
  if [ -n "${BACKBONE_WEIGHTS:-}" ]; then weights=(--backbone-weights "$BACKBONE_WEIGHTS"); fi
  if [ "$NGPU" -gt 1 ]; then gpus+=("$NGPU"); fi
  for n in "${gpus[@]}"; do
    # a subset of exactly iters global batches (images with boxes), and VAL validation images
    local sub="$OUT/coco-subset-$n"
    mkdir -p "$sub"
    $PY - "$COCO" "$sub" $((8 * n * iters)) "$val" <<'PY'
import json, sys
from pathlib import Path
coco, sub, sizes = Path(sys.argv[1]), Path(sys.argv[2]), map(int, sys.argv[3:5])
for split, n in zip(("train2017", "val2017"), sizes, strict=True):
    d = json.loads((coco / "annotations" / f"instances_{split}.json").read_text())
    boxed = {a["image_id"] for a in d["annotations"]}
    d["images"] = [im for im in d["images"] if im["id"] in boxed][:n]
    ids = {im["id"] for im in d["images"]}
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in ids]
    (sub / f"instances_{split}.json").write_text(json.dumps(d))
    if len(ids) < n:
        print(f"gpu.sh: {coco}: only {len(ids)} {split} images with boxes", file=sys.stderr)
PY
    run="$OUT/coco-real-$n"
    cmd=("$PY" -m alrp_cli train --train-ann "$sub/instances_train2017.json"
      --train-images "$COCO/train2017" --val-ann "$sub/instances_val2017.json"
      --val-images "$COCO/val2017" --epochs 1 --log-every 20 --workers "${WORKERS:-8}"
      --amp --device cuda --nproc "$n" --batch-size $((8 * n)) --out "$run" "${weights[@]}")
    if [ "$DRY" = 1 ]; then echo "${cmd[*]}"; continue; fi
    rm -rf "$run"
    if "${cmd[@]}" > "$run.log" 2>&1; then
      row "COCO preset, real images" "$n GPU x 8 images, R50 ImageNet weights, --amp, $iters iterations" "$(loader_wait "$run")"
    else
      row "COCO preset, real images" "$n GPU x 8 images" "FAILED (exit $?, see $run.log)"
    fi
  done
}
loader_wait() {  # run dir -> "images/s, data wait per step" from the step records
  $PY - "$1" <<'PY'
import json, statistics, sys
from pathlib import Path
recs = [json.loads(x) for x in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in recs if r["type"] == "step"][1:]  # the first window holds the warm-up
cfg = json.loads((Path(sys.argv[1]) / "config.json").read_text())
ips = statistics.median(r["images_per_s"] for r in steps)
wait = statistics.median(r["data_s"] for r in steps)
step = cfg["optim"]["batch_size"] / ips
ap = next((r["AP"] for r in recs if r["type"] == "eval"), None)
print(f"{ips:.1f} images/s, {step:.3f} s/step, data-loader wait {wait * 1e3:.1f} ms/step "
      f"({100 * wait / step:.0f} %); AP after the run {ap}")
PY
}
if [ "${ONLY_COCO:-0}" = 1 ]; then
  if [ -z "${COCO:-}" ]; then echo "gpu.sh: ONLY_COCO/DRY need COCO=/path/to/coco" >&2; exit 2; fi
  coco_real
  [ "$DRY" = 1 ] || cat "$TABLE"
  exit 0
fi

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
  --val-images "$DATA/val2017" --epochs 1 --eval-every 100 --log-every 5 --workers 8
  --no-pretrained)  # step time from scratch: nothing to download (step 5 is pretrained)
step_time() {  # run dir -> "s/step images/s" from the step records after warm-up
  $PY - "$1" <<'PY'
import json, statistics, sys
from pathlib import Path
recs = [json.loads(x) for x in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in recs if r["type"] == "step"][1:]  # the first window holds the warm-up
cfg = json.loads((Path(sys.argv[1]) / "config.json").read_text())
ips = statistics.median(r["images_per_s"] for r in steps)
print(f"{cfg['optim']['batch_size'] / ips:.3f} s/step, {ips:.1f} images/s")
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

# 5. the COCO preset on real images
if [ -n "${COCO:-}" ]; then
  coco_real
else
  row "COCO preset, real images" "-" "skipped: set COCO=/path/to/coco"
fi
cat "$TABLE"
