"""The embedding cache at scale: the sharded (LMDB) layout against the per-file layout, side by side.

Writes N synthetic entries (384-d, as MiniLM's pooled output, and 1,280-d, as EfficientNet's) through each
layout's cache API (`put`, then `get`, checksums verified as in a real run), and prints entries/s for writing,
random reads and sequential reads, bytes on disk and files created, with the ratios.

    python benchmarks/scale_cache.py              # N = 200,000 per width (issue 17); about 7 minutes on 2 cores
    python benchmarks/scale_cache.py --n 20000    # a quicker look
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

from jftzoo.cache import DiskCache
from jftzoo.cache_shards import ShardedCache
from jftzoo.features import Entry


def disk_usage(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_blocks * 512 for p in files)


def run(layout: str, dim: int, n: int, reads: int, work: Path) -> dict[str, float]:
    root = work / f"{layout}-{dim}"
    cache = ShardedCache(root) if layout == "sharded" else DiskCache(root)
    ns = f"synthetic-{dim}/fp"
    pooled = torch.randn(n, dim)  # (N, D): made before timing
    keys = [f"{i:064x}" for i in range(n)]
    started = time.perf_counter()
    for i, key in enumerate(keys):
        cache.put(ns, key, Entry(pooled[i], None))
    if isinstance(cache, ShardedCache):
        cache.flush()
    write_s = time.perf_counter() - started
    fresh = ShardedCache(root) if layout == "sharded" else DiskCache(root)  # no warm in-process state
    sample = random.Random(0).sample(keys, min(reads, n))
    started = time.perf_counter()
    for key in sample:
        assert fresh.get(ns, key, tokens=False) is not None
    random_s = time.perf_counter() - started
    started = time.perf_counter()
    for key in keys[:reads]:
        assert fresh.get(ns, key, tokens=False) is not None
    seq_s = time.perf_counter() - started
    files, size = disk_usage(root)
    shutil.rmtree(root, ignore_errors=True)
    return {"write": n / write_s, "random": len(sample) / random_s, "sequential": min(reads, n) / seq_s,
            "files": files, "bytes": size, "write_s": write_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="entries per width")
    parser.add_argument("--reads", type=int, default=20_000, help="entries read back, randomly and in order")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jftzoo-scale-", dir=args.dir))
    print(f"# embedding cache at scale: {args.n:,} entries per width, {args.reads:,} reads each way\n")
    print("| width | layout | write entries/s | random read entries/s | sequential read entries/s | files | MiB on "
          "disk |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    ratios = []
    for dim in (384, 1280):
        got = {layout: run(layout, dim, args.n, args.reads, work) for layout in ("per-file", "sharded")}
        for layout, r in got.items():
            print(f"| {dim} | {layout} | {r['write']:,.0f} | {r['random']:,.0f} | {r['sequential']:,.0f} | "
                  f"{r['files']:,} | {r['bytes'] / 2**20:,.1f} |", flush=True)
        s, f = got["sharded"], got["per-file"]
        ratios.append((dim, s["write"] / f["write"], s["random"] / f["random"], s["sequential"] / f["sequential"],
                       f["files"] / max(s["files"], 1), s["files"] / args.n * 10_000))
    print("\n| width | write x | random read x | sequential read x | files per-file / sharded | sharded files per "
          "10,000 entries |")
    print("|---:|---:|---:|---:|---:|---:|")
    for dim, w, rr, sr, fr, per in ratios:
        print(f"| {dim} | {w:.1f} | {rr:.1f} | {sr:.1f} | {fr:,.0f} | {per:.2f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
