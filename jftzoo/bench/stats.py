"""Summary statistics over splits: mean, sample sd and a 95 % t-interval, with NaNs counted.

Why a t-interval: a row has few splits (5 seeds, 10 folds), so the normal approximation is too
narrow. Folds of one k-fold share training records, so their interval is optimistic (Bengio &
Grandvalet 2004); seeds of independent splits are the cleaner unit, which docs/bench.md says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Summary:
    n: int  # finite values used
    nan: int  # values that were NaN/None (e.g. AUC of a test part holding one class), left out and counted
    mean: float | None
    std: float | None  # sample sd (ddof=1); None below 2 values
    ci95: tuple[float, float] | None  # t-interval of the mean; None below 2 values


def summarize_values(values: Iterable[float | None], bounds: tuple[float, float] | None = None) -> Summary:
    """`bounds`: the values the metric can take (accuracy, F1, AUC: 0 to 1). With 2 or 3 splits a t-interval
    can pass them (macro-F1 0.60 and 0.47 on two splits give [-0.29, 1.36]); it is clipped to them, which drops
    only impossible values and keeps the interval's coverage."""
    import numpy as np
    from scipy import stats

    raw = [np.nan if v is None else float(v) for v in values]
    arr = np.array(raw, dtype=float)
    finite = arr[np.isfinite(arr)]
    n, nan = int(finite.size), int(arr.size - finite.size)
    if n == 0:
        return Summary(0, nan, None, None, None)
    mean = float(finite.mean())
    if n < 2:
        return Summary(n, nan, mean, None, None)
    std = float(finite.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Summary(n, nan, mean, std, (low, high))
