"""Per-record test (and validation) predictions, one compact file per record beside results.jsonl.

Keeping every test probability lets any metric be recomputed later and makes paired comparisons
on the same records possible (`jftzoo results compare`). Files are NumPy `.npz` (no pickles: ids
are stored as fixed-width unicode), written to a temporary name, fsync'd and renamed, before the
record that names them is appended, so a record never points at a missing or partial file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jftzoo.atomic import atomic_write
from jftzoo.errors import JftzooError

FOLDER = "predictions"


@dataclass
class Predictions:
    labels: list[str]  # class order of `probs` columns
    ids: list[str]
    true: list[int]  # index into `labels`
    probs: Any  # (N, C) float32

    def same_records(self, other: Predictions) -> bool:
        """Scored on the same records, in the same order, with the same labels: what averaging or pairing needs."""
        return self.ids == other.ids and self.true == other.true and self.labels == other.labels

    @property
    def accuracy(self) -> float:
        import numpy as np

        return float(np.mean(self.probs.argmax(1) == np.asarray(self.true))) if self.ids else float("nan")


def write_predictions(results_dir: Path, key: str, test: Predictions, val: Predictions | None = None) -> dict[str, str]:
    """Write `predictions/<key>.npz`; returns {"file": relative path, "sha256": digest} for the record."""
    import io

    import numpy as np

    arrays: dict[str, Any] = {"labels": np.array(test.labels, dtype=str), "ids": np.array(test.ids, dtype=str),
                              "true": np.asarray(test.true, dtype=np.int16),
                              "probs": np.asarray(test.probs, dtype=np.float32)}
    if val is not None:
        arrays.update({"val_ids": np.array(val.ids, dtype=str), "val_true": np.asarray(val.true, dtype=np.int16),
                       "val_probs": np.asarray(val.probs, dtype=np.float32)})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    path = Path(results_dir) / FOLDER / f"{key}.npz"
    atomic_write(path, data)
    return {"file": f"{FOLDER}/{path.name}", "sha256": hashlib.sha256(data).hexdigest()}


def predictions_bytes(results_dir: Path, record: dict[str, Any]) -> bytes:
    """The bytes of the record's predictions file, checked against the digest the record stored."""
    path = Path(results_dir) / record["predictions"]["file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JftzooError(f"predictions file {path} of record {record['key'][:12]} cannot be read: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != record["predictions"]["sha256"]:
        raise JftzooError(f"predictions file {path} does not match the digest its record stored: it was changed or "
                          "damaged; delete that record's line from results.jsonl and re-run `jftzoo bench`")
    return data


def read_predictions(results_dir: Path, record: dict[str, Any], part: str = "test") -> Predictions:
    """The record's stored predictions (`part` 'test' or 'val'), checked against the record's digest."""
    return read_parts(results_dir, record, (part,))[part]


def read_parts(results_dir: Path, record: dict[str, Any], parts: Sequence[str] = ("test", "val")
               ) -> dict[str, Predictions]:
    """Several parts of the record's stored predictions from one read (and one digest check) of its file."""
    import io

    import numpy as np

    meta = record.get("predictions")
    if meta and "members" in meta:  # a derived ensemble record: its members' probabilities, averaged
        return _averaged(results_dir, record, parts)
    if not meta:
        raise JftzooError(f"record {str(record.get('key'))[:12]} has no stored predictions (made by jftzoo "
                          f"{record.get('jftzoo_version', '0.1.0 or older')}); re-run its cell with `jftzoo bench`")
    data = predictions_bytes(Path(results_dir), record)
    out = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        for part in parts:
            prefix = "" if part == "test" else "val_"
            if f"{prefix}ids" not in z:
                raise JftzooError(f"{Path(results_dir) / meta['file']} holds no {part} predictions")
            out[part] = Predictions([str(x) for x in z["labels"]], [str(x) for x in z[f"{prefix}ids"]],
                                    [int(x) for x in z[f"{prefix}true"]], z[f"{prefix}probs"])
    return out


def _averaged(results_dir: Path, record: dict[str, Any], parts: Sequence[str]) -> dict[str, Predictions]:
    import numpy as np

    members = [read_parts(results_dir, {"key": key, "predictions": meta}, parts)
               for key, meta in zip(record["members"], record["predictions"]["members"], strict=True)]
    out = {}
    for part in parts:
        first = members[0][part]
        for key, other in zip(record["members"][1:], members[1:], strict=True):
            if not other[part].same_records(first):
                raise JftzooError(f"ensemble member {key[:12]} was scored on other {part} records than "
                                  f"{record['members'][0][:12]}; its members cannot be averaged")
        out[part] = Predictions(first.labels, first.ids, first.true, np.mean([m[part].probs for m in members], axis=0))
    return out
