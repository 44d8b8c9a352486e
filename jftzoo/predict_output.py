"""Predictions written to a CSV or JSON Lines file chunk by chunk, so a large dataset is predicted with
bounded memory. Rows go to FILE.partial (each chunk flushed as written: a stopped run leaves whole rows there)
and the file takes its own name only when every record is written."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jftzoo.errors import UsageError

FORMATS = (".csv", ".jsonl")


def write_predictions(clf: Any, records: Sequence[Any], path: Path, batch_size: int = 32,
                      chunk: int = 1024) -> int:
    """Predict `records` `chunk` at a time with `clf` (a fitted FusionClassifier) and append each chunk's
    rows (id, label, one probability per class) to `path` (.csv or .jsonl); returns the rows written."""
    from jftzoo.atomic import disk_full_is_clear

    if path.suffix not in FORMATS:
        raise UsageError(f"--output {path}: name a .csv or .jsonl file")
    classes = [str(c) for c in clf.classes_]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        with disk_full_is_clear(path, "predictions"):
            written = _write(clf, records, partial, path.suffix == ".csv", classes, batch_size, chunk)
            os.replace(partial, path)  # only a finished file has the name asked for
    except KeyboardInterrupt:
        raise  # Ctrl-C: the whole rows written so far stay in FILE.partial
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk or a failure: no space to keep it, nothing would trust it
        raise
    return written


def partial_path(path: Path) -> Path:
    """Where rows go while predicting: a stopped run leaves whole rows here, never under the final name."""
    return path.with_name(path.name + ".partial")


def _write(clf: Any, records: Sequence[Any], path: Path, as_csv: bool, classes: list[str], batch_size: int,
           chunk: int) -> int:
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh) if as_csv else None
        if writer is not None:
            writer.writerow(["id", "label", *(f"p_{c}" for c in classes)])
        for start in range(0, len(records), chunk):
            part = list(records[start : start + chunk])
            probs = clf.predict_proba(part, batch_size)  # (n, C): only this chunk's outputs are held
            for r, p in zip(part, probs, strict=True):
                label = classes[int(p.argmax())]
                if writer is not None:
                    writer.writerow([r.id, label, *(f"{float(x):.6f}" for x in p)])
                else:
                    fh.write(json.dumps({"id": r.id, "label": label,
                                         "probs": {c: float(x) for c, x in zip(classes, p, strict=True)}}) + "\n")
            fh.flush()
            written += len(part)
    return written
