"""The SVM baseline's fit + predict time, RBF (the paper's SVC) vs linear (LinearSVC), side by side.

A synthetic set shaped like MiniLM + EfficientNet-Lite0 frozen features (384 + 1280 = 1664 dims), 3 classes
whose means differ slightly (so neither model is trivial), split 8:2; both go through jftzoo's own
`baselines.svm` (standardised, Platt-scaled with 3-fold CalibratedClassifierCV).

Usage: python benchmarks/svm_baseline_speed.py [--n 7000] [--dims 1664] [--kernels linear,rbf]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def data(n: int, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.3, 0.15, 0.55])
    means = rng.normal(0, 0.08, (3, dims))
    return (rng.normal(0, 1, (n, dims)) + means[y]).astype(np.float32), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=7000)
    parser.add_argument("--dims", type=int, default=1664)
    parser.add_argument("--kernels", default="linear,rbf")
    args = parser.parse_args()
    from jftzoo.bench.baselines import svm

    x, y = data(args.n, args.dims)
    cut = int(0.8 * args.n)
    out = {"n_train": cut, "n_test": args.n - cut, "dims": args.dims}
    for kernel in args.kernels.split(","):
        t = time.perf_counter()
        (probs,) = svm(x[:cut], y[:cut], 3, [x[cut:]], seed=0, kernel=kernel)
        seconds = time.perf_counter() - t
        pred = probs.argmax(1)
        out[kernel] = {"seconds": round(seconds, 1), "accuracy": round(float((pred == y[cut:]).mean()), 3),
                       "majority_share_of_predictions": round(float(np.bincount(pred, minlength=3).max() / len(pred)),
                                                              3)}
        print(f"{kernel:>6}: {seconds:7.1f} s  accuracy {out[kernel]['accuracy']:.3f}", flush=True)
    if "linear" in out and "rbf" in out:
        out["rbf_over_linear_time"] = round(out["rbf"]["seconds"] / out["linear"]["seconds"], 1)
        print(f"rbf / linear time: {out['rbf_over_linear_time']}x")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
