"""Wall time of the default `jftzoo bench` (demo set, minilm + efficientnet_lite0, main heads frozen
plus the top-k concat row of the `demo` recipe, 5-fold CV), end to end as a user runs it: a fresh
process, cold embedding cache; then again with the cache warm (a new results folder, so every head
trains again; the top-k prefix cache lives in memory, so each run computes it once).

Usage: python benchmarks/bench_default.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(out: Path, cache: Path) -> float:
    env = {**os.environ, "JFTZOO_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jftzoo", "bench", "--out", str(out)], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"jftzoo bench failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(done.stdout)
    print(done.stderr.strip().splitlines()[-1])
    return wall


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        cold = run(Path(tmp) / "r1", Path(tmp) / "cache")
        warm = run(Path(tmp) / "r2", Path(tmp) / "cache")
    lines = [
        "# Default `jftzoo bench` wall time",
        "",
        "Command: `python benchmarks/bench_default.py` (runs `HF_HUB_OFFLINE=1 jftzoo bench` in a fresh process twice)",
        "",
        f"Machine: {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, no GPU, fp32.",
        "",
        "| run | wall time (process start to exit) |",
        "|---|---:|",
        f"| cold embedding cache | {cold:.1f} s |",
        f"| warm embedding cache (new results folder: every head trains again) | {warm:.1f} s |",
        "",
        "The grid: majority, svm, text-only, image-only, concat, attention, gated, late (frozen) and concat top-k",
        "(recipe `demo`: top layer group of each encoder, 2 epochs, through the prefix cache); 45 tasks.",
        "",
        f"Target (issue 15): under 2 minutes warm on 2 CPU cores — {'met' if warm < 120 else 'NOT met'} "
        f"({warm:.0f} s); cold: {cold:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "bench_default.md"
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
