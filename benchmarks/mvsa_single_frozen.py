"""MVSA-Single, frozen mode: every head beside the majority, SVM and unimodal baselines, 5 seeds,
group-aware 8:1:1, with paired comparisons of each head against text-only.

The runs go through `jftzoo bench` (resumable: stop and start again freely); this script makes the
committed table from its results store:

  HF_HUB_OFFLINE=1 jftzoo bench --data mvsa-single:../shared/data/mvsa_single --split 8:1:1 \\
      --seeds 0,1,2,3,4 --fusion majority,svm,text-only,image-only,concat,attention,attention-paper,gated,late,xattn \\
      --mode frozen --text-normalizer none --out benchmarks/results/mvsa_single_frozen
  python benchmarks/mvsa_single_frozen.py [--results benchmarks/results/mvsa_single_frozen] [--resamples 1000]

Writes benchmarks/results/mvsa_single_frozen.md (the table, the comparisons, the command),
mvsa_single_frozen.json (exactly `jftzoo results export --format json`) and
mvsa_single_frozen.compare.json (every paired comparison). A store that is not finished yet gives a
table marked PARTIAL with the missing rows named.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADS = ["concat", "attention", "attention-paper", "gated", "late", "xattn"]
EXPECTED = ["majority", "svm", "text-only", "image-only", *HEADS]
SEEDS = 5
COMMAND = ("HF_HUB_OFFLINE=1 jftzoo bench --data mvsa-single:../shared/data/mvsa_single --split 8:1:1 "
           "--seeds 0,1,2,3,4 --fusion majority,svm,text-only,image-only,concat,attention,attention-paper,gated,"
           "late,xattn --mode frozen --text-normalizer none --svm-kernel rbf "
           "--out benchmarks/results/mvsa_single_frozen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "mvsa_single_frozen")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()

    from jftzoo.bench.compare import paired_compare
    from jftzoo.bench.report import summarize, to_json, to_markdown
    from jftzoo.bench.store import ResultStore

    records = [r for r in ResultStore(args.results).records() if r.get("mode") == "frozen"]
    rows = [r for r in summarize(records) if not r["outdated"]]
    done = {r["fusion"]: r["n_splits"] for r in rows}
    missing = [f"{f} ({done.get(f, 0)}/{SEEDS} seeds)" for f in EXPECTED if done.get(f, 0) < SEEDS]
    by_hash = {}
    for r in records:
        by_hash.setdefault(r["config_hash"], []).append(r)
    text_only = next((r for r in rows if r["fusion"] == "text-only"), None)
    comparisons = []
    for row in rows:
        if text_only is None or row["fusion"] in ("text-only", "majority") or row is text_only:
            continue
        a, b = by_hash[row["config_hash"]], by_hash[text_only["config_hash"]]
        common = {(r["split"]["digest"], r["fold"], r["seed"]) for r in a} & {
            (r["split"]["digest"], r["fold"], r["seed"]) for r in b}
        a = [r for r in a if (r["split"]["digest"], r["fold"], r["seed"]) in common]
        b = [r for r in b if (r["split"]["digest"], r["fold"], r["seed"]) in common]
        for metric in ("accuracy", "auc"):
            c = paired_compare(args.results, row, text_only, a, b, metric, args.resamples)
            comparisons.append(c.to_dict())
    lines = ["# MVSA-Single, frozen encoders: every head and baseline, 5 seeds, group-aware 8:1:1", ""]
    if missing:
        lines += [f"**PARTIAL:** not finished yet: {', '.join(missing)}. The command below resumes where it "
                  "stopped.", ""]
    lines += [
        f"Command: `{COMMAND}`, then `python benchmarks/mvsa_single_frozen.py`. The results store (records, split "
        "manifests, every test prediction) is committed beside this file: `jftzoo results show --results "
        "benchmarks/results/mvsa_single_frozen` re-makes the table, `jftzoo results predictions --results ...` "
        "prints every test probability.",
        "",
        "Protocol: MiniLM-L6 + EfficientNet-Lite0 with their real pre-trained weights (offline extra), frozen; "
        "MVSA-Single with the merge label policy (4,511 posts); for each seed 0-4 a stratified 8:1:1 split in which "
        "near-duplicate posts (same normalised text or byte-identical image) never cross parts "
        "(`--groups near-duplicates`); early stopping on the split's validation part (at least 3, at most 10 epochs, "
        "patience 2); test parts only scored. `attention-paper` trains with the released recipe (one learning rate "
        "3e-5, ExponentialLR 0.9), which is made for fine-tuning the encoders, not for a head alone.",
        "",
        re.sub(r"^### .*$", "## Table", to_markdown(rows), count=1, flags=re.MULTILINE).rstrip(),
        "",
        "Cost: wall time summed over the 5 splits, measured while other jobs (test runs) shared the machine's 2 "
        "cores: relative, not absolute, figures. The encoder passes (once per encoder for all rows and seeds) "
        "are not in them.",
        "",
        "## Paired comparisons against text-only",
        "",
        "Each head minus `text-only` on the same test records of the same splits: `diff` = mean over splits of "
        "(head - text-only), 95 % CI from a paired bootstrap of records within splits, p from a paired permutation "
        f"test ({args.resamples} resamples each; `jftzoo results compare --a fusion=HEAD --b fusion=text-only "
        "--metric accuracy|auc`).",
        "",
        "| head | metric | head | text-only | diff | 95 % CI | p | pairs (splits) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in comparisons:
        lines.append(f"| {c['a']['fusion']} | {c['metric']} | {c['a_mean']:.3f} | {c['b_mean']:.3f} | "
                     f"{c['diff']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] | {c['p_value']:.3f} | "
                     f"{c['n_pairs']} ({c['n_splits']}) |")
    out = args.results.parent / f"{args.results.name}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.results.parent / f"{args.results.name}.json").write_text(to_json(rows) + "\n", encoding="utf-8")
    (args.results.parent / f"{args.results.name}.compare.json").write_text(
        json.dumps(comparisons, indent=2) + "\n", encoding="utf-8")
    print(out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
