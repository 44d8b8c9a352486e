"""Should the MVSA readers normalise tweets by default? (issue 13: "on by default for the MVSA readers only if it
helps"). Decided on VALIDATION: frozen concat, late and text-only on MiniLM-L6 + EfficientNet-Lite0, random
8:1:1 splits (`--groups none`), seeds 0-4, each head with raw tweets and with the tweet normaliser, paired
record by record on the same validation parts (`jftzoo results compare --part val`); test is reported beside.

  HF_HUB_OFFLINE=1 python benchmarks/mvsa_normaliser.py [--seeds 0,1,2,3,4] [--out benchmarks/results/mvsa_normaliser]

Both settings run through `jftzoo bench` into one results store (resumable) and the comparison is written to
benchmarks/results/mvsa_normaliser.md.
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
DATA = "mvsa-single:../shared/data/mvsa_single"  # as the answer table's commands name it (run from the repository root)
HEADS = ("concat", "late", "text-only")  # the frozen heads that read text (image-only trains the same either way)


def jftzoo(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "jftzoo", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        sys.exit(f"jftzoo {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mvsa_normaliser")
    args = parser.parse_args()
    hashes: dict[tuple[str, str], str] = {}
    for normaliser in ("none", "tweet"):
        rows = json.loads(jftzoo("bench", "--data", DATA, "--split", "8:1:1", "--groups", "none", "--seeds",
                                 args.seeds, "--fusion", "concat,late", "--mode", "frozen", "--text-normalizer",
                                 normaliser, "--out", str(args.out), "--json"))
        for r in rows:
            if r["fusion"] in HEADS:
                hashes[(r["fusion"], normaliser)] = r["config_hash"]
    # the store's table and figure with both settings (each bench's summary.md holds only its own grid)
    jftzoo("results", "export", "--results", str(args.out), "--format", "md", "--out", str(args.out))
    lines = ["# The tweet normaliser on MVSA-Single: the default decided on validation", "",
             f"Command: `HF_HUB_OFFLINE=1 python benchmarks/mvsa_normaliser.py --seeds {args.seeds}` (two `jftzoo "
             "bench` runs into `benchmarks/results/mvsa_normaliser/`, `--text-normalizer none` and `tweet`; frozen "
             "MiniLM-L6 + EfficientNet-Lite0, random 8:1:1 splits, `--groups none`). Each head with the normaliser "
             "against the same head on raw tweets, paired record by record on the same splits (`jftzoo results "
             "compare --part val`, then `--part test`): difference in accuracy, 95 % CI from a paired bootstrap "
             "within splits, p from a paired permutation test. The decision reads the validation columns only. "
             f"Every row of the store: `{args.out.name}/results.md`.", "",
             "| head | val accuracy raw | val accuracy tweet | val diff | val 95 % CI | val p | test diff | "
             "test 95 % CI | pairs (splits) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts: list[tuple[str, dict[str, Any]]] = []
    for head in HEADS:
        parts = {}
        for part in ("val", "test"):
            parts[part] = json.loads(jftzoo("results", "compare", "--results", str(args.out), "--a",
                                            f"config_hash={hashes[(head, 'tweet')]}", "--b",
                                            f"config_hash={hashes[(head, 'none')]}", "--part", part, "--json"))
        v, t = parts["val"], parts["test"]
        verdicts.append((head, v))
        lines.append(f"| {head} | {v['b_mean']:.4f} | {v['a_mean']:.4f} | {v['diff']:+.4f} | [{v['ci95'][0]:+.4f}, "
                     f"{v['ci95'][1]:+.4f}] | {v['p_value']:.3f} | {t['diff']:+.4f} | [{t['ci95'][0]:+.4f}, "
                     f"{t['ci95'][1]:+.4f}] | {v['n_pairs']} ({v['n_splits']}) |")
    helps = [h for h, v in verdicts if v["ci95"][0] > 0]
    hurts = [h for h, v in verdicts if v["ci95"][1] < 0]
    lines += ["", f"Helps on validation (CI above 0): {', '.join(helps) or 'none'}; hurts (CI below 0): "
              f"{', '.join(hurts) or 'none'}. " + ("So the MVSA readers default to it (`train_defaults` of the "
                                                  "mvsa-single and mvsa-multiple kinds; `--text-normalizer none` "
                                                  "turns it off)." if helps and not hurts else
                                                  "So it stays off by default.")]
    out = args.out.parent / f"{args.out.name}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
