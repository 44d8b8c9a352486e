#!/usr/bin/env bash
# GPU check: the bench in every mode, train and predict on a CUDA device, and the same joint fit on the CPU
# beside it for a throughput ratio. DistilBERT with RANDOM weights (labelled random: no hub here) and
# EfficientNet-Lite0 with its real weights (offline extra), on the built-in demo dataset.
#
# Usage (jftzoo installed, a GPU present): OUT=gpu-check bash benchmarks/gpu_check.sh
# GPU=cpu LIMIT=24 FUSION=concat MODES=frozen runs the same steps on the CPU, small (a check of this script).
set -uo pipefail
OUT=${OUT:-gpu-check}
GPU=${GPU:-cuda}
LIMIT=${LIMIT:-}
FUSION=${FUSION:-concat,gated,attention,xattn,late}
MODES=${MODES:-frozen,top-k,joint}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
lim=${LIMIT:+--limit $LIMIT}
log() { echo "== $(date +%T) $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch, jftzoo; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'threads', torch.get_num_threads(), 'jftzoo', jftzoo.__version__)"
common=(--text distilbert --vision efficientnet_lite0 --random-init --split 8:1:1 --seeds 0 --epochs 3)

log "bench: frozen, top-k, joint on $GPU"
t0=$(date +%s)
jftzoo bench "${common[@]}" $lim --fusion "$FUSION" --mode "$MODES" \
    --device "$GPU" --out "$OUT/bench_gpu" --json > "$OUT/bench_gpu.json"
echo "rc=$? wall $(( $(date +%s) - t0 )) s"

log "bench: joint concat on the cpu (the ratio's other side; ${CPU_LIMIT:=100} records)"
t0=$(date +%s)
jftzoo bench "${common[@]}" --limit "${LIMIT:-$CPU_LIMIT}" --fusion concat --mode joint --device cpu \
    --out "$OUT/bench_cpu" --json > "$OUT/bench_cpu.json"
echo "rc=$? wall $(( $(date +%s) - t0 )) s"

log "train (joint attention) and predict on $GPU"
jftzoo train --text distilbert --vision efficientnet_lite0 --random-init --fusion attention --mode joint \
    --epochs 2 --device "$GPU" --out "$OUT/model" --json > "$OUT/train.json"
echo "train rc=$?"
jftzoo predict "$OUT/model" --data emoji-sentiment --device "$GPU" --json > "$OUT/predict.json"
echo "predict rc=$?"

log "summary"
python3 - "$OUT" <<'PY'
import json, math, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = []
for store in ("bench_gpu", "bench_cpu"):
    path = out / store / "results.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        r = json.loads(line)
        m = r.get("metrics", {})
        rows.append((store, r["device"], r["mode"], r["fusion"], m.get("accuracy"), r.get("samples_per_s"),
                     r.get("peak_gpu_mb"), r.get("status", "ok")))
def fmt(x, spec=""):
    return "-" if x is None else format(x, spec)


print(f"{'store':<10} {'device':<6} {'mode':<7} {'fusion':<11} {'acc':>6} {'samples/s':>10} {'peak GPU MB':>11}")
for s, d, mode, f, acc, sps, gpu, _ in rows:
    print(f"{s:<10} {fmt(d):<6} {fmt(mode):<7} {fmt(f):<11} {fmt(acc, '.3f'):>6} {fmt(sps, '.1f'):>10} "
          f"{fmt(gpu, '.0f'):>11}")
bad = [r for r in rows if r[4] is None or not math.isfinite(r[4])]
gpu_device = next((d for st, d, *_ in rows if st == "bench_gpu"), "?")
joint = {(s, f): sps for s, _, mode, f, _, sps, _, _ in rows if mode == "joint"}
if ("bench_gpu", "concat") in joint and ("bench_cpu", "concat") in joint:
    ratio = joint["bench_gpu", "concat"] / joint["bench_cpu", "concat"]
    print(f"joint concat samples/s, {gpu_device} / cpu: {ratio:.1f}x")
try:
    preds = json.loads((out / "predict.json").read_text())
except (OSError, ValueError):
    preds = []
print(f"records: {len(rows)}, without a finite accuracy: {len(bad)}; predictions: {len(preds)}")
PY
tar -czf "$OUT/stores.tar.gz" -C "$OUT" bench_gpu bench_cpu 2>/dev/null
