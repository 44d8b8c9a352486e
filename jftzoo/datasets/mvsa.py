"""MVSA-Single and MVSA-Multiple (Niu et al., MMM 2016) in their published layout.

    ROOT/labelResultAll.txt   "ID<TAB>text,image" header, then "<id><TAB><text>,<image>" per pair
                              (MVSA-Multiple: three "text,image" columns, one per annotator)
    ROOT/data/<id>.txt        the tweet (UTF-8 or a legacy 8-bit encoding)
    ROOT/data/<id>.jpg        the image

Label policies:
  merge     equal labels -> that label; neutral + polar -> the polar one; positive vs negative ->
            dropped (the rule most MVSA papers use). MVSA-Multiple first takes the majority text label
            and the majority image label over the three annotators (no majority -> dropped).
  text      the text label (MVSA-Multiple: majority over annotators)
  image     the image label (likewise)
  majority  MVSA-Multiple: merge each annotator's pair, then keep the label at least 2 of 3 agree on
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from jftzoo.datasets.checks import finalize
from jftzoo.datasets.records import Dataset, Problem, Record
from jftzoo.datasets.text import read_text
from jftzoo.errors import UsageError

LABELS = ("negative", "neutral", "positive")
POLICIES = ("merge", "text", "image", "majority")


def merge(text: str, image: str) -> str | None:
    if text == image:
        return text
    if "neutral" in (text, image):
        return image if text == "neutral" else text
    return None  # positive vs negative: the annotators disagree on polarity


def majority(labels: list[str]) -> str | None:
    label, n = Counter(labels).most_common(1)[0]
    return label if n * 2 > len(labels) else None


def apply_policy(pairs: list[tuple[str, str]], policy: str) -> tuple[str | None, str]:
    """(label or None, reason when dropped) for one post's annotator pairs."""
    texts = [t for t, _ in pairs]
    images = [i for _, i in pairs]
    if policy == "majority":
        if len(pairs) == 1:
            raise UsageError("label policy 'majority' needs several annotators (MVSA-Multiple)")
        merged = [merge(t, i) for t, i in pairs]
        label = majority([m or "conflict" for m in merged])
        return (label, "") if label not in (None, "conflict") else (None, "no majority among annotators")
    text, image = majority(texts), majority(images)
    if policy == "text":
        return text, "" if text else "no majority text label"
    if policy == "image":
        return image, "" if image else "no majority image label"
    if text is None or image is None:
        return None, "no majority text or image label"
    label = merge(text, image)
    return label, "" if label else "text and image labels disagree on polarity"


def read(
    root: Path,
    *,
    name: str = "mvsa-single",
    label_policy: str = "merge",
    balance: int | None = None,
    seed: int = 0,
    on_bad: str = "error",
    verify_images: bool = True,
) -> Dataset:
    if label_policy not in POLICIES:
        raise UsageError(f"label policy {label_policy!r} is not one of {', '.join(POLICIES)}")
    root = Path(root)
    index = root / "labelResultAll.txt"
    if not index.is_file():
        raise UsageError(f"{name}: {index} not found; point --data {name}:PATH at the folder holding "
                         "labelResultAll.txt and data/")
    records: list[Record] = []
    problems: list[Problem] = []
    dropped: Counter[str] = Counter()
    encodings: Counter[str] = Counter()
    lines = index.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        rid = fields[0].strip()
        where = f"{index.name}:{lineno}"
        if not rid or rid in (".", "..") or any(c in rid for c in "/\\\x00"):
            problems.append(Problem(rid or None, where, f"id {rid!r} is not a plain file name under data/"))
            continue
        pairs = []
        for cell in fields[1:]:
            parts = [p.strip() for p in cell.split(",")]
            if len(parts) != 2:
                problems.append(Problem(rid, where, f"malformed label cell {cell!r}; expected 'text,image'"))
                break
            pairs.append((parts[0], parts[1]))
        else:
            if not pairs:
                problems.append(Problem(rid, where, "row has no labels"))
                continue
            unknown = sorted({x for pair in pairs for x in pair} - set(LABELS))
            if unknown:
                problems.append(Problem(rid, where, f"unknown label value(s) {unknown}; expected {LABELS}"))
                continue
            label, reason = apply_policy(pairs, label_policy)
            if label is None:
                dropped[reason] += 1
                continue
            text_file = root / "data" / f"{rid}.txt"
            if not text_file.is_file():
                problems.append(Problem(rid, str(text_file), "text file is missing"))
                continue
            text, encoding = read_text(text_file)
            encodings[encoding] += 1
            records.append(Record(rid, text, root / "data" / f"{rid}.jpg", label, origin=str(text_file)))
    notes = [f"texts decoded as {enc}: {n}" for enc, n in sorted(encodings.items())]
    dataset = Dataset(name, root, LABELS, records, dropped=dict(dropped), notes=notes,
                      license="research use only (as the original MVSA corpus)")
    dataset = finalize(dataset, problems, on_bad, verify_images)
    if balance is not None:
        dataset = balance_classes(dataset, balance, seed)
    return dataset


def balance_classes(dataset: Dataset, per_class: int, seed: int) -> Dataset:
    """A seeded subsample of `per_class` records of each class (the paper's 'MVSA-1.2k')."""
    counts = dataset.class_counts()
    short = {label: n for label, n in counts.items() if n < per_class}
    if short:
        raise UsageError(f"--balance {per_class}: classes {short} have fewer records than that")
    rng = random.Random(seed)
    kept: list[Record] = []
    for label in dataset.labels:
        members = sorted((r for r in dataset.records if r.label == label), key=lambda r: r.id)
        kept += rng.sample(members, per_class)
    dataset.notes.append(f"balanced: {per_class} per class, seed {seed}, from {dict(counts)}")
    dataset.records = sorted(kept, key=lambda r: r.id)
    return dataset


def read_single(root: Path, **options: object) -> Dataset:
    return read(root, name="mvsa-single", **options)  # type: ignore[arg-type]


def read_multiple(root: Path, **options: object) -> Dataset:
    return read(root, name="mvsa-multiple", **options)  # type: ignore[arg-type]
