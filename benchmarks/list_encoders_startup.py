"""How fast `jftzoo list-encoders` answers, next to the cost of merely importing torch, in one run.

Usage: python benchmarks/list_encoders_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int) -> float:
    """Median wall seconds of `runs` fresh processes (one warm-up run first, for the OS file cache)."""
    subprocess.run(cmd, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    rows = [
        ("python -c pass (interpreter start)", [py, "-c", "pass"]),
        ("jftzoo list-encoders (table)", [py, "-m", "jftzoo", "list-encoders"]),
        ("jftzoo list-encoders --json", [py, "-m", "jftzoo", "list-encoders", "--json"]),
        ("jftzoo --help", [py, "-m", "jftzoo", "--help"]),
        ("python -c 'import torch' (reference)", [py, "-c", "import torch"]),
        ("python -c 'import timm, transformers' (reference)", [py, "-c", "import timm, transformers"]),
    ]
    results = {label: timed(cmd, args.runs) for label, cmd in rows}
    print(f"median of {args.runs} runs, fresh process each")
    print("| command | seconds |")
    print("|---|---:|")
    for label, secs in results.items():
        print(f"| {label} | {secs:.3f} |")
    listing = results["jftzoo list-encoders (table)"]
    print(f"\nimport torch / list-encoders = {results[rows[4][0]] / listing:.1f}x")
    print(f"import timm+transformers / list-encoders = {results[rows[5][0]] / listing:.1f}x")


if __name__ == "__main__":
    main()
