"""Reproducible splits (scikit-learn's splitters, seeded) that can be saved and checked later.

A split manifest names the dataset's checksum, so a result can say exactly which data it used, and
reading it back against different data fails instead of silently evaluating on other records.
Splits are group-aware by default (`jftzoo.datasets.groups`): near-duplicate posts stay on one side
of every split, through scikit-learn's `StratifiedGroupKFold`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from jftzoo.datasets.groups import DuplicateGroups, crossing_groups
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
    groups: str = "none"  # "near-duplicates": duplicate groups never cross parts; "none": records independent

    def digest(self) -> str:
        """SHA-256 of the manifest's canonical JSON: what every record of a run names."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def _group_params(groups: DuplicateGroups | None) -> dict[str, object]:
    if groups is None:
        return {}
    return {"n_groups": groups.n_groups, "grouped_records": sum(len(m) for m in groups.members())}


def check_min_class(dataset: Dataset, k: int) -> None:
    small = {label: n for label, n in dataset.class_counts().items() if n < k}
    if small:
        raise UsageError(
            f"{dataset.name}: classes {small} have fewer members than the {k} folds asked for; "
            "use fewer folds, more data, or drop those classes"
        )


def stratified_kfold(dataset: Dataset, k: int = 10, seed: int = 0, groups: DuplicateGroups | None = None) -> Split:
    """k stratified folds; part 'foldI' holds fold I's test ids (train = every other fold).

    With `groups`, every duplicate group falls in one fold (`StratifiedGroupKFold`), so folds are
    only approximately equal in size and class balance.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if k < 2:
        raise UsageError(f"k-fold needs at least 2 folds, got {k}")
    check_min_class(dataset, k)
    records = sorted(dataset.records, key=lambda r: r.id)
    labels = [r.label for r in records]
    if groups is None:
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(labels, labels)
    else:
        _check_groups(groups, k)
        group_of = groups.mapping()
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class" is checked above by check_min_class
            warnings.simplefilter("ignore", UserWarning)
            folds = list(splitter.split(labels, labels, [group_of[r.id] for r in records]))
    parts = {f"fold{i}": sorted(records[j].id for j in test) for i, (_, test) in enumerate(folds)}
    return Split("kfold", seed, dataset.name, dataset.checksum(), parts, {"folds": k, **_group_params(groups)},
                 "none" if groups is None else "near-duplicates")


def _check_groups(groups: DuplicateGroups, n_splits: int) -> None:
    if groups.n_groups < n_splits:
        raise UsageError(f"only {groups.n_groups} distinct (non-duplicate) posts for {n_splits} parts; "
                         "use fewer folds or more data")


def _group_holdout(ids: list[str], labels: list[str], group_of: dict[str, int], fraction: float,
                   seed: int) -> tuple[list[int], list[int]]:
    """(rest, held-out) indices: about `fraction` held out, stratified, whole groups on one side.

    The held-out part is one fold of round(1 / fraction) stratified group folds, the usual way to
    get a group-aware stratified holdout from scikit-learn.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rest, held = next(iter(splitter.split(ids, labels, [group_of[i] for i in ids])))
    return list(rest), list(held)


def parse_ratio(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(p < 0 for p in parts) or parts[0] <= 0 or parts[2] <= 0:
        raise UsageError(f"split ratio {text!r} must look like 8:1:1 (train:val:test, train and test > 0)")
    total = sum(parts)
    return parts[0] / total, parts[1] / total, parts[2] / total


def ratio_split(dataset: Dataset, ratio: str = "8:1:1", seed: int = 0, groups: DuplicateGroups | None = None) -> Split:
    """Stratified train/val/test split in the given proportions (the common MVSA 8:1:1 protocol).

    Without `groups` the literature's random split (`train_test_split`); with them, whole duplicate
    groups on one side, the proportions then approximate (see `_group_holdout`).
    """
    from sklearn.model_selection import train_test_split

    train_f, val_f, test_f = parse_ratio(ratio)
    check_min_class(dataset, 3 if val_f else 2)
    records = sorted(dataset.records, key=lambda r: r.id)
    ids = [r.id for r in records]
    labels = [r.label for r in records]
    if groups is None:
        _check_part_sizes(dataset, ratio, len(ids), len(set(labels)), train_f, val_f, test_f)
        rest_ids, test_ids, rest_labels, _ = train_test_split(ids, labels, test_size=test_f, stratify=labels,
                                                              random_state=seed)
        if val_f:
            train_ids, val_ids = train_test_split(rest_ids, test_size=val_f / (train_f + val_f),
                                                  stratify=rest_labels, random_state=seed)
        else:
            train_ids, val_ids = rest_ids, []
    else:
        _check_groups(groups, 3 if val_f else 2)
        group_of = groups.mapping()
        rest, held = _group_holdout(ids, labels, group_of, test_f, seed)
        test_ids, rest_ids = [ids[i] for i in held], [ids[i] for i in rest]
        if val_f:
            train, val = _group_holdout(rest_ids, [labels[i] for i in rest], group_of, val_f / (train_f + val_f),
                                        seed)
            train_ids, val_ids = [rest_ids[i] for i in train], [rest_ids[i] for i in val]
        else:
            train_ids, val_ids = rest_ids, []
    parts = {"train": sorted(train_ids), "val": sorted(val_ids), "test": sorted(test_ids)}
    return Split("ratio", seed, dataset.name, dataset.checksum(), parts, {"ratio": ratio, **_group_params(groups)},
                 "none" if groups is None else "near-duplicates")


def _check_part_sizes(dataset: Dataset, ratio: str, n: int, n_classes: int, train_f: float, val_f: float,
                      test_f: float) -> None:
    """A stratified part needs a record of every class: say which part is too small (scikit-learn's own
    ValueError names neither the dataset nor the option), with the sizes `train_test_split` would make."""
    import math

    test = math.ceil(test_f * n)
    val = math.ceil(val_f / (train_f + val_f) * (n - test)) if val_f else None
    sizes = {"test": test, "val": val, "train": n - test - (val or 0)}
    small = {part: size for part, size in sizes.items() if size is not None and size < n_classes}
    if small:
        part, size = next(iter(small.items()))
        raise UsageError(f"{dataset.name}: a stratified {ratio} split of {n} records gives the {part} part {size} "
                         f"record(s) for {n_classes} classes (each part needs one of every class); give that part a "
                         "larger share of --split, or use more data")


def official_split(dataset: Dataset, groups: DuplicateGroups | None = None) -> Split:
    """The dataset's own splits, kept as given; with `groups`, a warning names duplicate groups that
    cross them (the published protocol leaks; we report it rather than change it)."""
    if not dataset.splits:
        raise UsageError(f"{dataset.name} has no official splits; use k-fold or a ratio split")
    params: dict[str, object] = {}
    if groups is not None:
        crossing = crossing_groups(groups, dataset.splits)
        params["crossing_groups"] = len(crossing)
        if crossing:
            shown = "; ".join(", ".join(m[:4]) + (" ..." if len(m) > 4 else "") for m in crossing[:5])
            warnings.warn(f"{dataset.name}: {len(crossing)} near-duplicate group(s) cross the official splits, "
                          f"kept as given (e.g. {shown}); figures on them include some memorisation",
                          UserWarning, stacklevel=2)
    return Split("official", None, dataset.name, dataset.checksum(), dict(dataset.splits), params, "official")


def write_split(split: Split, path: Path) -> str:
    """Write the manifest (with its digest) atomically; returns the digest."""
    from jftzoo.atomic import atomic_write

    digest = split.digest()
    atomic_write(Path(path), (json.dumps({"digest": digest, **asdict(split)}, indent=1) + "\n").encode("utf-8"))
    return digest


def read_split(path: Path, dataset: Dataset | None = None) -> Split:
    """Read a split manifest; with `dataset`, refuse it unless the data is exactly what it was made from."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
        stated = content.pop("digest", None)
        split = Split(**content)  # manifests older than groups: groups "none"
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise JftzooError(f"split manifest {path} cannot be read: {exc}") from exc
    if stated is not None and stated != split.digest():
        raise JftzooError(f"split manifest {path} was edited after it was written: its digest {stated[:16]}... no "
                          f"longer matches its content ({split.digest()[:16]}...); write it again with "
                          "`jftzoo data check --write-split`")
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


def subsample(ds: Dataset, limit: int | None, seed: int) -> Dataset:
    """A seeded stratified subsample of `limit` records (the whole dataset without a limit)."""
    if limit is None or limit >= len(ds):
        return ds
    from sklearn.model_selection import train_test_split

    records = sorted(ds.records, key=lambda r: r.id)
    kept, _ = train_test_split(records, train_size=limit, stratify=[r.label for r in records], random_state=seed)
    return ds.subset(kept)


def split_for(ds: Dataset, folds: int | None, ratio: str | None, seed: int,
              groups: DuplicateGroups | None = None) -> Split:
    """Stratified k-fold when `folds` is set, else the `ratio` (e.g. "8:1:1") split."""
    if folds is not None:
        return stratified_kfold(ds, folds, seed, groups)
    return ratio_split(ds, ratio or "8:1:1", seed, groups)


def matching_split(ds: Dataset, splits: dict[str, Split]) -> Split | None:
    """The manifest (path -> Split) made from exactly this data, matched by the dataset checksum;
    None when none was; the matched one is removed from `splits`."""
    checksum = ds.checksum()
    for path, split in list(splits.items()):
        if split.checksum == checksum:
            del splits[path]
            return split
    return None


def folds_of(split: Split) -> list[tuple[str, list[str], list[str], list[str]]]:
    """(fold name, train ids, validation ids (empty: carve from train), test ids) per fold."""
    if split.kind == "kfold":
        every = [i for ids in split.parts.values() for i in ids]
        out = []
        for name, test in split.parts.items():
            held_out = set(test)
            out.append((name, [i for i in every if i not in held_out], [], list(test)))
        return out
    if "train" not in split.parts or "test" not in split.parts:
        raise UsageError(f"split of {split.dataset} has parts {', '.join(split.parts)}; training needs 'train' and "
                         "'test' (and optionally 'val'), or k-fold parts")
    return [("test", list(split.parts["train"]), list(split.parts.get("val", [])), list(split.parts["test"]))]
