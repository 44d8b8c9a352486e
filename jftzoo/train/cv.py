"""Stratified (group-aware by default) k-fold cross-validation: every fold's figures kept, mean and
sample sd reported, folds with an undefined metric counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jftzoo.datasets.groups import groups_for
from jftzoo.datasets.records import Dataset
from jftzoo.datasets.splits import stratified_kfold
from jftzoo.features import FeatureStore
from jftzoo.train.metrics import SCORES, evaluate


def cross_validate(
    make_classifier: Callable[[], Any],
    dataset: Dataset,
    folds: int = 10,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    features: FeatureStore | None = None,
    groups: str = "near-duplicates",
    backend: str = "pytorch",
) -> dict[str, Any]:
    """Train a fresh classifier per fold (early stopping inside the training folds only) and test on
    the held-out fold; AUC is computed over each whole test fold. Frozen encoders run once per
    record over all folds (one shared `FeatureStore`), not once per fold."""
    features = features if features is not None else FeatureStore(backend=backend)
    split = stratified_kfold(dataset, folds, seed, groups_for(dataset, groups))
    by_id = dataset.by_id()
    results = []
    weights: dict[str, str] = {}  # modality -> "pretrained" | "random", as built
    for i, (name, test_ids) in enumerate(split.parts.items()):
        held_out = set(test_ids)
        train = [r for r in dataset.records if r.id not in held_out]
        test = [by_id[t] for t in test_ids]
        clf = make_classifier()
        shared = features if clf.train_config.mode == "frozen" else None
        clf.fit(dataset.subset(train), features=shared)
        probs = clf.predict_proba(test, features=shared)
        index = {c: j for j, c in enumerate(clf.classes_)}
        metrics = evaluate([index[r.label] for r in test], probs, list(clf.classes_))
        results.append({"fold": name, "best_epoch": clf.best_epoch_, **metrics})
        if progress:
            progress(i + 1, folds)
        if not weights:
            weights = {m: ("pretrained" if enc.pretrained else "random")
                       for m, enc in (("text", clf.model_.text), ("vision", clf.model_.vision)) if enc is not None}
    summary: dict[str, Any] = {}
    for key in SCORES:
        values = np.array([r[key] for r in results], dtype=float)
        finite = values[np.isfinite(values)]  # a NaN fold (AUC of a one-class test fold) is counted, not hidden
        summary[f"{key}_mean"] = float(finite.mean()) if finite.size else float("nan")
        summary[f"{key}_std"] = float(finite.std(ddof=1)) if finite.size > 1 else float("nan")
        summary[f"{key}_nan_folds"] = int(values.size - finite.size)
    return {"folds": results, **summary, "k": folds, "seed": seed, "checksum": split.checksum,
            "split_digest": split.digest(), "groups": split.groups, "weights": weights}
