"""Exact Shapley values for two players (text, image) and the modality shares derived from them.

With two modalities there are four coalitions, so nothing is sampled:

    phi_text  = ((v(T) - v(0)) + (v(TI) - v(I))) / 2
    phi_image = ((v(I) - v(0)) + (v(TI) - v(T))) / 2

and phi_text + phi_image = v(TI) - v(0) exactly (efficiency). A modality's *share* is its absolute
Shapley value over the sum of both absolute values: |phi_text| / (|phi_text| + |phi_image|), 0.5
when both are 0. Over many records (overall, per class) the share is a ratio of sums, so records
where the modalities moved the prediction more weigh more, and one record with two tiny values
cannot swing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COALITIONS = ("none", "text", "image", "both")  # which modalities are present


@dataclass(frozen=True)
class Shapley:
    """Per-record Shapley values (N,) of one value function, e.g. the predicted class's probability."""

    text: np.ndarray
    image: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """v(both) - v(none) per record: what the two values add up to."""
        return self.text + self.image


def at(probs: dict[str, np.ndarray], classes: np.ndarray) -> dict[str, np.ndarray]:
    """Each coalition's probability of one class per record: `probs[c]` (N, C) at `classes` (N,)."""
    rows = np.arange(len(classes))
    return {c: np.asarray(p)[rows, classes] for c, p in probs.items()}


def shapley(values: dict[str, np.ndarray]) -> Shapley:
    """Shapley values from `values[coalition]` (N,), one value function evaluated on the four coalitions."""
    missing = [c for c in COALITIONS if c not in values]
    if missing:
        raise ValueError(f"coalition values missing for {', '.join(missing)}")
    v = {c: np.asarray(values[c], dtype=np.float64) for c in COALITIONS}
    text = ((v["text"] - v["none"]) + (v["both"] - v["image"])) / 2
    image = ((v["image"] - v["none"]) + (v["both"] - v["text"])) / 2
    return Shapley(text=text, image=image)


def record_shares(phi: Shapley) -> np.ndarray:
    """The text share of each record (N,): |phi_text| / (|phi_text| + |phi_image|), 0.5 where both are 0;
    the image share is 1 minus it."""
    a, b = np.abs(phi.text), np.abs(phi.image)
    total = a + b
    return np.divide(a, total, out=np.full_like(a, 0.5), where=total > 0)


def pooled_share(phi: Shapley, where: np.ndarray | None = None) -> float:
    """The text share of a group of records: sum |phi_text| / sum (|phi_text| + |phi_image|), 0.5 if empty."""
    a, b = np.abs(phi.text), np.abs(phi.image)
    if where is not None:
        a, b = a[where], b[where]
    total = float(a.sum() + b.sum())
    return float(a.sum()) / total if total > 0 else 0.5
