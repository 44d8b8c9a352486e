"""Peak memory of `jftzoo predict --data ... --output FILE` as the dataset grows: a fresh process per size,
peak RSS from /usr/bin/time. Flat peaks mean memory is bounded by the chunk, not the dataset.

Usage: python benchmarks/predict_memory.py --sizes 1000,4000 [--chunk 1024]
The CSV repeats the demo set's posts (their images referenced, not copied); the model is a frozen concat
head trained for one epoch on the demo set (its quality is irrelevant here).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,4000")
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    from jftzoo.datasets import load_dataset
    from jftzoo.train.classifier import FusionClassifier

    demo = load_dataset("emoji-sentiment")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        FusionClassifier(fusion="concat", max_epochs=1, min_epochs=1, workers=0).fit(demo).save(model)
        rows = ["| records | chunk | peak RSS (MiB) | wall (s) | rows written |", "|---:|---:|---:|---:|---:|"]
        for n in (int(x) for x in args.sizes.split(",")):
            manifest = Path(tmp) / f"posts{n}.csv"
            with open(manifest, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["id", "text", "image", "label"])
                for i in range(n):
                    r = demo.records[i % len(demo)]
                    writer.writerow([f"p{i}", r.text, str(r.image).lstrip("/"), r.label])  # under --image-root /
            out = Path(tmp) / f"pred{n}.jsonl"
            cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "jftzoo", "predict", str(model), "--data",
                   f"csv:{manifest}", "--image-root", "/", "--output", str(out), "--chunk", str(args.chunk)]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                sys.exit(done.stderr[-3000:])
            peak_mib = int(done.stderr.strip().splitlines()[-1]) / 1024
            written = len(out.read_text().splitlines())
            rows.append(f"| {n:,} | {args.chunk} | {peak_mib:.0f} | {wall:.0f} | {written:,} |")
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
