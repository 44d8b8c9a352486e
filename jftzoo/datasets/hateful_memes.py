"""Hateful Memes (Kiela et al., NeurIPS 2020) in its published layout, official splits kept.

    ROOT/img/<id>.png
    ROOT/train.jsonl, dev_seen.jsonl, dev_unseen.jsonl, test_seen.jsonl, test_unseen.jsonl
    each line: {"id": ..., "img": "img/<id>.png", "label": 0|1, "text": "..."}

A meme may sit in several split files (dev_unseen repeats part of dev_seen): it is one record, listed
in each split. Split files released without labels are left out, with a note saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from jftzoo.datasets.checks import finalize
from jftzoo.datasets.manifest import read_manifest
from jftzoo.datasets.records import Dataset, Problem, Record
from jftzoo.errors import UsageError

SPLITS = ("train", "dev_seen", "dev_unseen", "test_seen", "test_unseen")
LABELS = ("not-hateful", "hateful")
LABEL_NAMES = {"0": "not-hateful", "1": "hateful"}


def _has_labels(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:  # the reader reports undecodable lines
        for line in fh:
            if line.strip():
                try:
                    return "label" in json.loads(line)
                except json.JSONDecodeError:
                    return True  # let the reader report the bad line
    return False


def read(root: Path, *, on_bad: str = "error", verify_images: bool = True) -> Dataset:
    root = Path(root)
    present = [s for s in SPLITS if (root / f"{s}.jsonl").is_file()]
    if not present:
        raise UsageError(f"hateful-memes: none of {', '.join(s + '.jsonl' for s in SPLITS)} under {root}")
    records: dict[str, Record] = {}
    problems: list[Problem] = []
    splits: dict[str, list[str]] = {}
    notes = [f"split file not present: {s}.jsonl" for s in SPLITS if s not in present]
    for split in present:
        path = root / f"{split}.jsonl"
        if not _has_labels(path):
            notes.append(f"{path.name} has no labels (an unlabelled release): left out")
            continue
        part = read_manifest(path, fmt="jsonl", name=f"hateful-memes/{split}", image_field="img",
                             labels=LABELS, label_names=LABEL_NAMES, on_bad="skip", verify_images=False)
        problems += part.skipped
        splits[split] = [r.id for r in part.records]
        for r in part.records:
            first = records.setdefault(r.id, r)
            if (first.text, first.label, first.image) != (r.text, r.label, r.image):
                problems.append(Problem(r.id, r.origin, f"id also in {first.origin} with different content"))
    dataset = Dataset("hateful-memes", root, LABELS, list(records.values()), splits=splits, notes=notes,
                      license="Hateful Memes dataset licence agreement (research use)")
    return finalize(dataset, problems, on_bad, verify_images)
