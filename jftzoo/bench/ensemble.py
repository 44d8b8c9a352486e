"""Opt-in ensembles over fusion heads, built from stored predictions (`--ensemble`).

Heads trained on the same encoders, mode, split, fold and seed saw the same training records and are
scored on the same test records, so their class probabilities can be averaged record by record: an
ensemble row costs no training. Its records are derived, never mixed with trained ones: the fusion
is named `ensemble(a+b+...)`, the record says `ensemble: true` and lists its members' keys, and its
validation figures come from the members' validation probabilities, like every other row's.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jftzoo.bench.predictions import read_parts
from jftzoo.bench.report import wall_by_device

SINGLE = ("majority", "svm", "text-only", "image-only", "clip")  # baselines and unimodal rows never join


def ensemble_records(records: Sequence[dict[str, Any]], results_dir: Path,
                     fusions: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One derived record per (dataset, encoders, mode, split, fold, seed) holding two or more heads."""
    import numpy as np

    from jftzoo.train.metrics import evaluate

    groups: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if r.get("ensemble") or r["fusion"] in SINGLE or (fusions and r["fusion"] not in fusions):
            continue
        key = (r["dataset"], r["text"], r["vision"], r["mode"], r.get("split", {}).get("digest"), r["fold"],
               r["seed"], r.get("jftzoo_version"))
        groups[key].setdefault(r["fusion"], r)  # the first finished configuration of each head
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        names = sorted(members)
        first = members[names[0]]
        parts = {}
        stored = [read_parts(results_dir, members[n]) for n in names]  # test and val from one read each
        for part in ("test", "val"):
            preds = [s[part] for s in stored]
            ids = preds[0].ids
            if any(p.ids != ids for p in preds):  # never happens for one split; refuse rather than misalign
                break
            parts[part] = (ids, preds[0].true, np.mean([p.probs for p in preds], axis=0), preds[0].labels)
        else:
            keys = [members[n]["key"] for n in names]
            hashes = sorted(members[n].get("config_hash") or "" for n in names)
            record = {k: v for k, v in first.items() if k not in ("metrics", "val_metrics", "predictions", "history",
                                                                  "best_epoch", "epochs_run", "train_config")}
            ids, true, probs, labels = parts["test"]
            _, vtrue, vprobs, _ = parts["val"]
            record.update({
                "fusion": f"ensemble({'+'.join(names)})", "ensemble": True, "members": keys,
                "predictions": {"members": [members[n]["predictions"] for n in names]},
                "key": hashlib.sha256("\0".join(keys).encode()).hexdigest(),
                "config_hash": hashlib.sha256("\0".join(hashes).encode()).hexdigest()[:16],
                "metrics": evaluate(true, probs, labels), "val_metrics": evaluate(vtrue, vprobs, labels),
                "wall_s": float(sum(members[n].get("wall_s", 0.0) for n in names)),
                "wall_s_by_device": wall_by_device([members[n] for n in names]), "samples_per_s": None,
            })
            out.append(record)
    return out
