"""The demo's frozen grid run by the local executor and by the local Ray executor, side by side (issue 17).

Each run is the real CLI (`python -m jftzoo bench ... --mode frozen`) in a fresh process with its own fresh
embedding cache, so both pay their frozen encoder passes and model loads; Ray's run also pays starting Ray.
Checks that both stores hold the same keys with the same metrics, and how many stored probabilities are bit
for bit equal (different torch thread counts move them by ~1e-7: the local executor uses every core's
threads in one process, a Ray task --cpus-per-cell threads).

Overhead per task: worker-seconds not spent inside a task's own timed work (`wall_s` of its record), over
the tasks: (wall x workers - sum of task wall_s) / tasks, for each executor.

  python benchmarks/scale_grid.py [--seeds 0] [--repeat 3] [--out benchmarks/results/scale_grid.md]

Local Ray starts with every core of the machine (one task per core, --cpus-per-cell 1).

Run it on a quiet machine: it measures wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run(executor: str, work: Path, seeds: str, attempt: int) -> dict[str, Any]:
    out, cache = work / f"out_{executor}_{attempt}", work / f"cache_{executor}_{attempt}"
    cmd = [sys.executable, "-m", "jftzoo", "bench", "--mode", "frozen", "--seeds", seeds, "--out", str(out),
           "--json", "--executor", executor]
    env = {**os.environ, "JFTZOO_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {"wall_s": wall, "records": {r["key"]: r for r in records}, "out": out,
            "task_s": sum(r["wall_s"] for r in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each executor, alternating; medians compared")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale_grid.md")
    args = parser.parse_args()
    import numpy as np

    from jftzoo.bench.predictions import read_predictions

    work = Path(tempfile.mkdtemp(prefix="jftzoo-scale-grid-"))
    try:
        workers = os.cpu_count() or 1  # local Ray starts with every core; a task asks for one
        runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        for attempt in range(args.repeat):
            for name in runs:
                runs[name].append(run(name, work, args.seeds, attempt))
        local, ray = (sorted(runs[name], key=lambda r: r["wall_s"])[len(runs[name]) // 2] for name in runs)
        a, b = local["records"], ray["records"]
        same_keys = set(a) == set(b)
        same_metrics = same_keys and all(a[k]["metrics"] == b[k]["metrics"] and
                                         a[k]["val_metrics"] == b[k]["val_metrics"] for k in a)
        bitwise, worst = 0, 0.0
        for k in a if same_keys else ():
            p, q = read_predictions(local["out"], a[k]).probs, read_predictions(ray["out"], b[k]).probs
            bitwise += bool(np.array_equal(p, q))
            worst = max(worst, float(np.abs(p - q).max()) if p.size else 0.0)
        n = len(a)
        threads = {r["machine"] for r in a.values()}
        rows = [("local", local, 1), ("ray", ray, workers)]
        lines = [
            "# Frozen demo grid: local executor vs local Ray executor (issue 17)", "",
            f"Command: `python benchmarks/scale_grid.py --seeds {args.seeds} --repeat {args.repeat}` "
            f"({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, quiet machine). "
            "Each run: `jftzoo bench --mode frozen` on the demo data (default heads and baselines, 5-fold, "
            f"seeds {args.seeds}: {n} tasks) in a fresh process with a fresh embedding cache, {args.repeat} times "
            "each, alternating; the table shows each executor's median run.", "",
            "| executor | workers | wall s (median) | every run, s | sum of task wall_s | overhead per task s | "
            "speed-up vs local |",
            "|---|---:|---:|---|---:|---:|---:|",
        ]
        for name, r, w in rows:
            overhead = (r["wall_s"] * w - r["task_s"]) / n
            every = ", ".join(f"{x['wall_s']:.1f}" for x in runs[name])
            lines.append(f"| {name} | {w} | {r['wall_s']:.1f} | {every} | {r['task_s']:.1f} | {overhead:.2f} | "
                         f"{local['wall_s'] / r['wall_s']:.2f}x |")
        lines += [
            "", f"Records: same keys {same_keys}; same test and validation metrics for every key {same_metrics}; "
            f"stored probabilities bit for bit equal in {bitwise}/{n} records (largest difference {worst:.2g}; "
            f"local ran with {', '.join(sorted(threads))}, each Ray task with 1 torch thread).", "",
            "Overhead per task: (wall x workers - sum of the tasks' own wall_s) / tasks: what a task slot spends "
            "outside a task's timed work (process start, Ray start-up and scheduling, model loads, frozen passes, "
            "writing the store).",
        ]
        text = "\n".join(lines) + "\n"
        args.out.write_text(text)
        print(text)
        if not same_metrics:
            sys.exit("records differ between executors")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
