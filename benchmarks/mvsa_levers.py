"""Each recipe lever alone on MVSA-Single, measured on VALIDATION (issue 13): frozen concat, random 8:1:1
splits (`--groups none`), seeds 0 and 1, each lever against the defaults on the same splits.

Frozen mode is where a lever can be measured cheaply on this CPU (the head alone trains on cached
embeddings); levers that act on the encoders (layer decay, augmentation) have no effect there and are
left to the fine-tuned rows. Every run goes through `jftzoo bench` into one results store (resumable):

  HF_HUB_OFFLINE=1 python benchmarks/mvsa_levers.py [--seeds 0,1] [--out benchmarks/results/mvsa_levers]

Writes benchmarks/results/mvsa_levers.md: per lever, mean validation accuracy and macro-F1 over the
seeds (what a choice may read), the paired validation difference against the defaults, and the test
accuracy beside it (reported, never used to choose).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = f"mvsa-single:{ROOT.parent / 'shared' / 'data' / 'mvsa_single'}"
LEVERS: dict[str, list[str]] = {
    "defaults": [],
    "label smoothing 0.1": ["--label-smoothing", "0.1"],
    "class weight balanced": ["--class-weight", "balanced"],
    "modality dropout 0.2": ["--modality-dropout", "0.2"],
    "cosine schedule": ["--scheduler", "cosine"],
    "EMA 0.99": ["--ema", "0.99"],
    "monitor accuracy (patience 3)": ["--monitor", "accuracy", "--patience", "3"],
    "tweet normaliser": ["--text-normalizer", "tweet"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mvsa_levers")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    results: dict[str, dict[str, Any]] = {}
    for name, options in LEVERS.items():
        # every lever against raw tweets (the MVSA readers now default to the tweet normaliser, chosen by this table)
        raw = [] if "--text-normalizer" in options else ["--text-normalizer", "none"]
        cmd = [sys.executable, "-m", "jftzoo", "bench", "--data", DATA, "--split", "8:1:1", "--groups", "none",
               "--seeds", args.seeds, "--fusion", "concat", "--mode", "frozen", "--out", str(args.out), "--json",
               *raw, *options]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"{name}: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        rows = json.loads(done.stdout)
        results[name] = next(r for r in rows if r["fusion"] == "concat")
        r = results[name]
        print(f"{name:32s} val acc {r['val_accuracy_mean']:.4f}  val F1 {r['val_f1_macro_mean']:.4f}  "
              f"test acc {r['accuracy_mean']:.4f}", flush=True)
    base = results["defaults"]
    lines = ["# Recipe levers one at a time: MVSA-Single, frozen concat, validation first", "",
             f"Command: `HF_HUB_OFFLINE=1 python benchmarks/mvsa_levers.py --seeds {args.seeds}` (each lever one "
             "`jftzoo bench` run into `benchmarks/results/mvsa_levers/`; random 8:1:1 splits, `--groups none`; "
             "MiniLM-L6 + EfficientNet-Lite0 pre-trained, frozen; concat head; raw tweets, `--text-normalizer none`, "
             "beside every lever but the normaliser). Choices read the validation "
             "columns only; test accuracy is reported beside them and was not used.", "",
             "| lever | val accuracy | val macro-F1 | val accuracy - defaults | test accuracy | seeds |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        diff = r["val_accuracy_mean"] - base["val_accuracy_mean"]
        lines.append(f"| {name} | {r['val_accuracy_mean']:.4f} | {r['val_f1_macro_mean']:.4f} | {diff:+.4f} | "
                     f"{r['accuracy_mean']:.4f} | {r['n_seeds']} |")
    out = args.out.parent / f"{args.out.name}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
