"""Validation-selected ensembles across rows of a results store (`--select-ensemble N`).

`ensemble.py` averages the heads of one mode; the strongest mix is often across modes (a fine-tuned
multimodal model beside a frozen SVM and a fine-tuned text model all err differently). Which mix to
use is a choice, so it is made like every other choice: on validation only. Every subset of up to N
table rows (configurations) that were scored on the same splits is tried, each scored by its mean
validation metric over those splits; the best one (ties: fewer members, then name order) is the
pick, and its test figures are only reported. Single rows are among the subsets, so the pick may be
one row, in which case no ensemble row is added. The pick's own validation figure is the maximum of
the search and so optimistic; its test figure is not (test is never read to choose).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jftzoo.bench.compare import metric_value, split_unit
from jftzoo.bench.predictions import Predictions, read_parts
from jftzoo.bench.report import distinct_labels, wall_by_device
from jftzoo.errors import JftzooError, UsageError
from jftzoo.train.metrics import SCORES
from jftzoo.train.presets import recipe_label

EXCLUDED = ("majority",)  # constant class priors: adds nothing to an average
MAX_SUBSETS = 200_000  # exhaustive: ~0.2 ms a subset and split (MVSA, 452 records), so minutes at most

Unit = tuple[Any, Any, Any]  # (split digest, fold, seed): one scored split (compare.split_unit)


class TooManySubsets(UsageError):
    """A search beyond MAX_SUBSETS, with its counts as fields, so a caller that shows several caps can say why
    one was not searched without reading the message."""

    def __init__(self, max_members: int, rows: int, subsets: int, limit: int, fits: int) -> None:
        self.max_members, self.rows, self.subsets, self.limit, self.fits = max_members, rows, subsets, limit, fits
        super().__init__(f"--select-ensemble {max_members} over {rows} rows is {subsets:,} subsets to score "
                         f"(at most {limit:,}); take --select-ensemble {fits} or fewer")


@dataclass
class EnsembleChoice:
    """Validation's pick for one dataset and split protocol."""

    dataset: str
    protocol: dict[str, Any]
    members: list[str]  # row labels, e.g. "top-k concat"
    member_hashes: list[str]  # the rows' config hashes
    val_score: float  # mean validation metric over `units`: the search's maximum (optimistic)
    metric: str
    units: list[Unit]
    candidates: int  # rows complete on `units`
    subsets: int  # subsets scored
    left_out: list[str] = field(default_factory=list)  # rows lacking some of `units`
    records: list[dict[str, Any]] = field(default_factory=list)  # derived, one per unit; [] if one row won

    def describe(self) -> str:
        pick = " + ".join(self.members)
        return (f"{self.dataset} ({_protocol_label(self.protocol)}): validation picks {pick} "
                f"(mean validation {self.metric} {self.val_score:.3f} over {len(self.units)} splits; "
                f"best of {self.subsets} subsets of {self.candidates} rows, so that figure is optimistic; "
                "test only reported)")


def _protocol_label(protocol: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(protocol.items()) if v is not None]
    return ", ".join(parts) or "default protocol"


def row_label(record: dict[str, Any]) -> str:
    return f"{record['mode']} {record['fusion']}"


def select_ensembles(records: Sequence[dict[str, Any]], results_dir: Path, max_members: int = 3,
                     metric: str = "accuracy", modes: Sequence[str] | None = None) -> list[EnsembleChoice]:
    """One choice per (dataset, protocol) with at least two rows scored on the same splits; `modes` limits
    the candidates (e.g. `("frozen",)`: what ensembling alone gives, to set beside a mix with fine-tuned rows)."""
    if max_members < 1:
        raise JftzooError(f"--select-ensemble takes at least 1 member, got {max_members}")
    if metric not in SCORES:
        raise JftzooError(f"unknown selection metric {metric!r}; choose one of {', '.join(SCORES)}")
    from jftzoo.version import __version__

    protocols: dict[str, list[dict[str, Any]]] = defaultdict(list)
    outdated: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.get("ensemble") or r["fusion"] in EXCLUDED or not r.get("predictions"):
            continue
        if modes and r["mode"] not in modes:
            continue
        group = json.dumps([r["dataset"], r.get("protocol") or {}], sort_keys=True)
        if r.get("jftzoo_version") != __version__:  # the tables keep older versions' rows apart: so does this
            outdated[group].add(f"{row_label(r)} (jftzoo {r.get('jftzoo_version')})")
            continue
        protocols[group].append(r)
    choices = []
    for group, members in protocols.items():
        choice = _select(members, Path(results_dir), max_members, metric)
        if choice is not None:
            choice.left_out += sorted(outdated[group])
            choices.append(choice)
    return choices


def _labels(rows: dict[str, Any]) -> dict[str, str]:
    """Each configuration's row label; where two configurations share one (one head under two recipes), each
    of them gets its recipe's name or its hash, so members and left-out rows read apart."""
    firsts = {h: next(iter(b.values())) for h, b in rows.items()}
    return distinct_labels({h: (row_label(r), recipe_label(r), r.get("train_config")) for h, r in firsts.items()})


def _select(group: list[dict[str, Any]], results_dir: Path, max_members: int, metric: str) -> EnsembleChoice | None:
    import numpy as np

    rows: dict[str, dict[Unit, dict[str, Any]]] = defaultdict(dict)
    for r in group:
        rows[r.get("config_hash") or r["key"]].setdefault(split_unit(r), r)
    # Every member must have been scored on the same splits: the largest set of splits two or more rows
    # have (ties: the one most rows have); rows lacking some of them are left out and listed.
    def covering(s: frozenset) -> int:
        return sum(s <= set(b) for b in rows.values())

    shared = [frozenset(b) for b in rows.values() if covering(frozenset(b)) >= 2]
    if not shared:
        return None
    units = sorted(max(shared, key=lambda s: (len(s), covering(s))), key=str)
    labels = _labels(rows)
    complete = sorted((h for h, b in rows.items() if set(units) <= set(b)), key=lambda h: labels[h])
    left_out = sorted(labels[h] for h in rows if h not in complete)
    if len(complete) < 2:
        return None
    total = sum(math.comb(len(complete), k) for k in range(1, min(max_members, len(complete)) + 1))
    if total > MAX_SUBSETS:
        fits = max((k for k in range(1, max_members + 1)
                    if sum(math.comb(len(complete), j) for j in range(1, k + 1)) <= MAX_SUBSETS), default=1)
        raise TooManySubsets(max_members, len(complete), total, MAX_SUBSETS, fits)
    loaded: dict[str, dict[Unit, dict[str, Predictions]]] = {}
    for h in complete:
        loaded[h] = {u: read_parts(results_dir, rows[h][u], ("val", "test")) for u in units}
    for u in units:
        first = loaded[complete[0]][u]
        for h in complete[1:]:
            for part in ("val", "test"):
                if not loaded[h][u][part].same_records(first[part]):
                    raise JftzooError(
                        f"records {rows[complete[0]][u]['key'][:12]} and {rows[h][u]['key'][:12]} share split "
                        f"{str(u[0])[:12]} (fold {u[1]}, seed {u[2]}) but not their {part} records or labels; the "
                        "store is inconsistent: re-run one of them with `jftzoo bench`")

    def score(subset: tuple[str, ...]) -> float:
        values = []
        for u in units:
            val = loaded[subset[0]][u]["val"]
            probs = np.mean([loaded[h][u]["val"].probs for h in subset], axis=0)
            values.append(metric_value(metric, np.asarray(val.true), probs, len(val.labels)))
        return float(np.nanmean(values))

    best: tuple[float, int, tuple[str, ...]] | None = None
    subsets = 0
    for size in range(1, min(max_members, len(complete)) + 1):
        for subset in itertools.combinations(complete, size):  # `complete` is in label order: ties go to it
            subsets += 1
            s = score(subset)
            if best is None or s > best[0]:
                best = (s, size, subset)
    assert best is not None
    val_score, _, pick = best
    first_record = rows[pick[0]][units[0]]
    choice = EnsembleChoice(
        dataset=first_record["dataset"], protocol=dict(first_record.get("protocol") or {}),
        members=[labels[h] for h in pick], member_hashes=list(pick), val_score=val_score,
        metric=metric, units=units, candidates=len(complete), subsets=subsets, left_out=left_out)
    if len(pick) > 1:
        choice.records = [_derived(choice, [rows[h][u] for h in pick], [loaded[h][u] for h in pick], max_members)
                          for u in units]
    return choice


def _derived(choice: EnsembleChoice, members: list[dict[str, Any]], preds: list[dict[str, Predictions]],
             max_members: int) -> dict[str, Any]:
    import numpy as np

    from jftzoo.train.metrics import evaluate

    first = members[0]
    record = {k: v for k, v in first.items() if k not in ("metrics", "val_metrics", "predictions", "history",
                                                          "best_epoch", "epochs_run", "train_config", "key",
                                                          "config_hash", "peak_rss_mb", "peak_gpu_mb")}
    modes = sorted({m["mode"] for m in members})
    texts = sorted({str(m["text"]) for m in members if m.get("text") not in (None, "-")})
    visions = sorted({str(m["vision"]) for m in members if m.get("vision") not in (None, "-")})
    keys = [m["key"] for m in members]
    metrics = {}
    for part in ("test", "val"):
        p = preds[0][part]
        metrics[part] = evaluate(p.true, np.mean([x[part].probs for x in preds], axis=0), p.labels)
    record.update({
        "mode": "+".join(modes), "fusion": f"ensemble({'+'.join(choice.members)})",
        "text": "+".join(texts) or "-", "vision": "+".join(visions) or "-",
        "fingerprints": {k: v for m in members for k, v in (m.get("fingerprints") or {}).items()},
        "device": "+".join(sorted({str(m.get("device", "cpu")) for m in members})),
        "ensemble": True, "members": keys,
        "selection": {"on": "validation", "metric": choice.metric, "max_members": max_members,
                      "candidates": choice.candidates, "subsets": choice.subsets, "val_score": choice.val_score},
        "key": hashlib.sha256(("selected\0" + "\0".join(keys)).encode()).hexdigest(),
        "config_hash": hashlib.sha256(("selected\0" + "\0".join(choice.member_hashes)).encode()).hexdigest()[:16],
        "predictions": {"members": [m["predictions"] for m in members]},
        "metrics": metrics["test"], "val_metrics": metrics["val"],
        "wall_s": float(sum(m.get("wall_s", 0.0) for m in members)), "wall_s_by_device": wall_by_device(members),
        "train_s": float(sum(m.get("train_s", m.get("wall_s", 0.0)) for m in members)), "samples_per_s": None,
    })
    return record
