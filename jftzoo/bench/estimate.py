"""How long a bench plan will take, before it starts: from the results store's own past runs on the same kind
of device (CPU, CUDA, MPS) where it has them, else from rates measured on the 2-core reference CPU.

An estimate says where it came from ("measured": finished runs of the same configuration; "similar": the
same mode, head and encoders under other options; "default": the reference rates), so nobody mistakes a
guess for a measurement. Training time only: a one-time encoder or prefix pass over uncached data adds to it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Seconds per training record per epoch (validation included) on the reference machine: 2 CPU cores,
# MiniLM-L6 + EfficientNet-Lite0 (benchmarks/results/mvsa_single*, mode_step_speed.md, the default bench).
# Rough: the demo's short posts run 5-20x faster than MVSA's tweets; top-k is per trained layer group
# (its cost grows with k). A store's own measured runs replace them as soon as it has any.
DEFAULT_RATES = {"frozen": 0.001, "frozen-tokens": 0.04, "top-k": 0.03, "joint": 0.25}
BASELINE_RATES = {"majority": 0.0, "svm": 0.005}  # seconds per training record, one fit


@dataclass
class Estimate:
    seconds: float
    source: str  # measured | similar | default


def _rate(record: dict[str, Any]) -> float | None:
    n, s = record.get("n_train"), record.get("train_s")
    if not n or s is None:
        return None
    return float(s) / (n * (record.get("epochs_run") or 1))


class Estimator:
    """Estimates from a results store's records (`ResultStore.records()`) made on the same kind of device."""

    def __init__(self, records: Iterable[dict[str, Any]], device: str = "cpu") -> None:
        # A joint training is ~20x faster on an H100 than on the reference CPU: only the same kind of device counts.
        from jftzoo.devices import device_kind

        self.by_hash: dict[str, list[dict[str, Any]]] = {}
        self.by_kind: dict[tuple[Any, ...], list[float]] = {}
        for r in records:
            if device_kind(r.get("device")) != device_kind(device):
                continue
            self.by_hash.setdefault(str(r.get("config_hash")), []).append(r)
            rate = _rate(r)
            if rate is not None:
                self.by_kind.setdefault((r.get("mode"), r.get("fusion"), r.get("text"), r.get("vision")),
                                        []).append(rate)

    def task(self, cell: Any, config_hash: str, n_train: int, max_epochs: int, tokens: bool = False,
             top_k: int = 2) -> Estimate:
        """Seconds one (cell, fold, seed) task should train for, with the source of the figure."""
        same = [r for r in self.by_hash.get(config_hash, []) if r.get("train_s") is not None and r.get("n_train")]
        if same:
            return Estimate(statistics.mean(r["train_s"] * n_train / r["n_train"] for r in same), "measured")
        baseline = cell.fusion in BASELINE_RATES
        epochs = 1 if baseline else max_epochs
        similar = self.by_kind.get((cell.mode, cell.fusion, cell.text, cell.vision))
        if similar:
            return Estimate(statistics.median(similar) * n_train * epochs, "similar")
        if baseline:
            return Estimate(BASELINE_RATES[cell.fusion] * n_train, "default")
        mode = "frozen-tokens" if cell.mode == "frozen" and tokens else cell.mode
        rate = DEFAULT_RATES.get(mode, DEFAULT_RATES["joint"]) * (top_k if mode == "top-k" else 1)
        return Estimate(rate * n_train * epochs, "default")


def describe(seconds: float) -> str:
    """"about 1 h 20 min", "about 40 s"."""
    if seconds < 60:
        return f"about {max(seconds, 1):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"
