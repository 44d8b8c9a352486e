"""Nothing slower than before: the default `jftzoo bench` and the frozen cache grid, previous vs current.

The previous implementation runs from a git worktree of `--rev` (default: the commit before issue
12's speed work), the current one from this checkout; each command runs in a fresh process with
PYTHONPATH pointing at one tree, in the order previous, current, previous, current (best of
`--rounds` each, so drift in machine load hits both alike). Printed: wall times and previous / current ratios
(> 1: the current code is faster).

Usage: HF_HUB_OFFLINE=1 python benchmarks/nothing_slower.py [--rev 042e802] [--limit 800] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mvsa_single"


def worktree(rev: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"jftzoo-prev-{rev}"
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                       capture_output=True)
    return path


def timed(cmd: list[str], tree: Path, tmp: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "JFTZOO_CACHE_DIR": str(tmp / "cache")}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} in {tree} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def measure(tree: Path, limit: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench = [sys.executable, "-m", "jftzoo", "bench", "--json"]
        cold = timed([*bench, "--out", str(tmp / "a")], tree, tmp)  # empty embedding cache
        warm = timed([*bench, "--out", str(tmp / "b")], tree, tmp)  # same cache, every head trains again
    with tempfile.TemporaryDirectory() as d:
        grid = timed([sys.executable, str(ROOT / "benchmarks" / "bench_cache_grid.py"), "--data",
                      f"mvsa-single:{DATA}", "--limit", str(limit), "--md", str(Path(d) / "grid.md")], tree, Path(d))
    return {"bench_default_cold_s": cold, "bench_default_warm_s": warm, "cache_grid_s": grid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="042e802", help="the previous implementation [042e802]")
    parser.add_argument("--limit", type=int, default=800, help="MVSA-Single records in the cache grid [800]")
    parser.add_argument("--rounds", type=int, default=2, help="previous/current alternations; best kept [2]")
    args = parser.parse_args()
    trees = {"previous": worktree(args.rev), "current": ROOT}
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            for key, value in measure(tree, args.limit).items():
                best[name][key] = min(best[name].get(key, float("inf")), value)
            print(name, {k: round(v, 1) for k, v in best[name].items()}, flush=True)
    summary = {"rev": args.rev, "limit": args.limit,
               **{f"{name}_{k}": round(v, 2) for name in trees for k, v in best[name].items()},
               **{f"{k.removesuffix('_s')}_previous_vs_current": round(best["previous"][k] / best["current"][k], 2)
                  for k in best["current"]}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
