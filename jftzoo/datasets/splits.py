"""Reproducible splits (scikit-learn's splitters, seeded) that can be saved and checked later.

A split manifest names the dataset's checksum, so a result can say exactly which data it used, and
reading it back against different data fails instead of silently evaluating on other records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from jftzoo.datasets.records import Dataset
from jftzoo.errors import JftzooError, UsageError


@dataclass
class Split:
    """Named parts of a dataset ('train'/'val'/'test', or 'fold0'... for k-fold test folds)."""

    kind: str  # "kfold" | "ratio" | "official"
    seed: int | None
    dataset: str
    checksum: str
    parts: dict[str, list[str]]
    params: dict[str, object]


def check_min_class(dataset: Dataset, k: int) -> None:
    small = {label: n for label, n in dataset.class_counts().items() if n < k}
    if small:
        raise UsageError(
            f"{dataset.name}: classes {small} have fewer members than the {k} folds asked for; "
            "use fewer folds, more data, or drop those classes"
        )


def stratified_kfold(dataset: Dataset, k: int = 10, seed: int = 0) -> Split:
    """k stratified folds; part 'foldI' holds fold I's test ids (train = every other fold)."""
    from sklearn.model_selection import StratifiedKFold

    if k < 2:
        raise UsageError(f"k-fold needs at least 2 folds, got {k}")
    check_min_class(dataset, k)
    records = sorted(dataset.records, key=lambda r: r.id)
    labels = [r.label for r in records]
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = splitter.split(labels, labels)
    parts = {f"fold{i}": sorted(records[j].id for j in test) for i, (_, test) in enumerate(folds)}
    return Split("kfold", seed, dataset.name, dataset.checksum(), parts, {"folds": k})


def parse_ratio(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(p < 0 for p in parts) or parts[0] <= 0 or parts[2] <= 0:
        raise UsageError(f"split ratio {text!r} must look like 8:1:1 (train:val:test, train and test > 0)")
    total = sum(parts)
    return parts[0] / total, parts[1] / total, parts[2] / total


def ratio_split(dataset: Dataset, ratio: str = "8:1:1", seed: int = 0) -> Split:
    """Stratified train/val/test split in the given proportions (the common MVSA 8:1:1 protocol)."""
    from sklearn.model_selection import train_test_split

    train_f, val_f, test_f = parse_ratio(ratio)
    check_min_class(dataset, 3 if val_f else 2)
    records = sorted(dataset.records, key=lambda r: r.id)
    ids = [r.id for r in records]
    labels = [r.label for r in records]
    rest_ids, test_ids, rest_labels, _ = train_test_split(ids, labels, test_size=test_f, stratify=labels,
                                                          random_state=seed)
    if val_f:
        train_ids, val_ids = train_test_split(rest_ids, test_size=val_f / (train_f + val_f), stratify=rest_labels,
                                              random_state=seed)
    else:
        train_ids, val_ids = rest_ids, []
    parts = {"train": sorted(train_ids), "val": sorted(val_ids), "test": sorted(test_ids)}
    return Split("ratio", seed, dataset.name, dataset.checksum(), parts, {"ratio": ratio})


def official_split(dataset: Dataset) -> Split:
    if not dataset.splits:
        raise UsageError(f"{dataset.name} has no official splits; use k-fold or a ratio split")
    return Split("official", None, dataset.name, dataset.checksum(), dict(dataset.splits), {})


def write_split(split: Split, path: Path) -> None:
    Path(path).write_text(json.dumps(asdict(split), indent=1) + "\n", encoding="utf-8")


def read_split(path: Path, dataset: Dataset | None = None) -> Split:
    """Read a split manifest; with `dataset`, refuse it unless the data is exactly what it was made from."""
    try:
        split = Split(**json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise JftzooError(f"split manifest {path} cannot be read: {exc}") from exc
    if dataset is not None:
        actual = dataset.checksum()
        if actual != split.checksum:
            raise JftzooError(
                f"split manifest {path} was made from {split.dataset} with checksum {split.checksum}, but the "
                f"data given has checksum {actual}: the records differ, so this split does not apply"
            )
        unknown = {i for ids in split.parts.values() for i in ids} - {r.id for r in dataset.records}
        if unknown:
            raise JftzooError(
                f"split manifest {path} names {len(unknown)} ids not in the data, e.g. {sorted(unknown)[:3]}"
            )
    return split
