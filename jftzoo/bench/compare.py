"""Paired comparison of two result rows on the same test (or validation) records and splits.

Two rows run on the same splits see the same test records, so their difference is measured far
more precisely than the two rows' own intervals suggest: the paired bootstrap resamples records
within each split (the same records for both rows) and the permutation test swaps the two rows'
predictions record by record. Rows run on different splits are refused: a difference between
them mixes the methods with the luck of the split. On the validation part (`part="val"`) the same
comparison is how to choose between two configurations without reading a test record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jftzoo.bench.predictions import Predictions, read_predictions
from jftzoo.errors import JftzooError, UsageError
from jftzoo.train.metrics import SCORES

PARTS = ("test", "val")  # which stored predictions a comparison pairs


@dataclass
class Comparison:
    metric: str
    a: dict[str, Any]  # the selected rows' identifying fields
    b: dict[str, Any]
    a_mean: float
    b_mean: float
    diff: float  # mean over splits of metric(a) - metric(b)
    ci95: tuple[float, float]  # paired bootstrap over records within splits
    p_value: float  # two-sided paired permutation test (swap a/b per record)
    n_pairs: int  # paired records over all splits
    n_splits: int
    resamples: int
    part: str = "test"  # the records compared: test (report) or val (choose)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_selector(text: str) -> dict[str, str]:
    """`fusion=concat,mode=frozen` -> {"fusion": "concat", "mode": "frozen"}."""
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"selector {text!r}: expected KEY=VALUE[,KEY=VALUE], e.g. fusion=concat,mode=frozen")
        out[key.strip()] = value.strip()
    return out


def training_fields() -> list[str]:
    """The training fields a selector may name: not the per-run ones (seed, workers, image_cache), which no
    stored configuration holds and which would match every row."""
    from jftzoo.train.config import RUNTIME_ONLY, field_defaults

    return [k for k in field_defaults() if k not in RUNTIME_ONLY]


def row_field(row: dict[str, Any], key: str) -> Any:
    """A row's field, else a training field of its stored configuration (TrainConfig's default where the
    configuration predates the field), so `average_top=3` or `lr_encoder=3e-5` pick a row without its hash."""
    from jftzoo.train.config import stored_field

    return row.get(key) if key in row else stored_field(row.get("train_config"), key)


def _same(have: Any, value: str) -> bool:
    """A selector's value matches the field's as text, or as a number (`3e-5` is `3e-05`, `0.90` is `0.9`)."""
    text = str(have if have is not None else "none")
    if text == value:
        return True
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def select_row(rows: Sequence[dict[str, Any]], selector: dict[str, str], name: str) -> dict[str, Any]:
    """The one row whose fields match (config_hash by prefix; training fields such as average_top through its
    stored configuration); an error lists the candidates."""
    from jftzoo.errors import suggest

    if rows:
        fields = [*rows[0], *training_fields()]
        unknown = [k for k in selector if k not in fields]
        if unknown:
            hint = suggest(unknown[0], fields)
            did = f" Did you mean {hint[0]!r}?" if hint else ""
            raise UsageError(f"--{name}: no field {unknown[0]!r} in the rows or their training configurations.{did}")

    def matches(row: dict[str, Any]) -> bool:
        for key, value in selector.items():
            have = row_field(row, key)
            if key == "config_hash":
                if not str(have).startswith(value):
                    return False
            elif not _same(have, value):
                return False
        return True

    found = [r for r in rows if r.get("status", "ok") == "ok" and matches(r)]
    if len(found) == 1:
        return found[0]
    shown = "\n".join(f"  {describe(r)}" for r in (found or rows)[:20])
    if not found:
        hints = []
        for key, value in selector.items():
            known = sorted({str(v if (v := row_field(r, key)) is not None else "none") for r in rows})
            if value not in known and key != "config_hash":
                close = suggest(value, known)
                hints.append(f"{key}={value!r}: did you mean {close[0]!r}?" if close else
                             f"{key} is one of {', '.join(known)}")
        guessed = hints and all("did you mean" in h for h in hints)  # then the rows are only noise
        raise UsageError(f"--{name} {selector} matches no row. {' '.join(hints)}"
                         + ("" if guessed else f"\nRows:\n{shown}"))
    raise UsageError(f"--{name} {selector} matches {len(found)} rows; add fields (e.g. config_hash=...) to pick "
                     f"one:\n{shown}")


def describe(row: dict[str, Any]) -> str:
    keys = ("dataset", "text", "vision", "fusion", "mode", "weights", "config_hash")
    return ", ".join(f"{k}={row.get(k) if row.get(k) is not None else 'none'}" for k in keys)


def _binary_auc(positive: Any, scores: Any) -> float:
    """ROC AUC as the Mann-Whitney U statistic over tie-averaged ranks (what roc_auc_score computes)."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metric_value(metric: str, y: Any, probs: Any, n_classes: int) -> float:
    """One metric, computed as `jftzoo.train.metrics.evaluate` does (tested equal), but fast enough
    for thousands of bootstrap resamples: vectorised confusion counts and rank-based AUC."""
    import numpy as np

    pred = probs.argmax(1)
    if metric == "accuracy":
        return float((pred == y).mean())
    if metric in ("f1_macro", "f1_weighted"):
        cm = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
        tp = np.diag(cm).astype(float)
        denom = cm.sum(0) + cm.sum(1)  # predicted + true per class; F1 = 2 TP / (P + T), 0 where both are 0
        f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
        if metric == "f1_macro":
            return float(f1.mean())
        support = cm.sum(1)
        return float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return _binary_auc(y == 1, probs[:, 1])
    scores = probs[:, present] / probs[:, present].sum(1, keepdims=True) if len(present) < probs.shape[1] else \
        probs[:, present]
    return float(np.mean([_binary_auc(y == c, scores[:, j]) for j, c in enumerate(present)]))


def split_unit(record: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(split digest, fold, seed): the scored split a record belongs to; records of two rows pair on it."""
    return (record.get("split") or {}).get("digest"), record["fold"], record["seed"]


def on_shared_splits(records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    """Each row's records on the splits both rows have, and how many splits each had beyond them: a row still
    running (or partial) compared with a finished one on what they share, the rest left out and counted."""
    shared = {split_unit(r) for r in records_a} & {split_unit(r) for r in records_b}
    if not shared:
        raise JftzooError("the two rows share no split (same seed, split digest and fold): nothing to pair")
    a = [r for r in records_a if split_unit(r) in shared]
    b = [r for r in records_b if split_unit(r) in shared]
    return a, b, len(records_a) - len(a), len(records_b) - len(b)


def _pairs(results_dir: Path, records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]],
           part: str = "test") -> list[tuple[Predictions, Predictions]]:
    def by_split(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
        return {split_unit(r): r for r in records}

    a, b = by_split(records_a), by_split(records_b)
    if None in {k[0] for k in (*a, *b)}:
        raise JftzooError("a record has no split digest (made by jftzoo 0.1.0 or older): its test records cannot "
                          "be matched; re-run both rows with this version")
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b), key=str), sorted(set(b) - set(a), key=str)
        raise JftzooError(
            f"the two rows were not run on the same splits ({len(only_a)} split(s) only in A, e.g. "
            f"{_split_name(only_a)}; {len(only_b)} only in B, e.g. {_split_name(only_b)}): a paired comparison "
            "needs the same test records. Run both in one `jftzoo bench` (same seeds, --folds/--split, --groups) "
            "or with the same --split-file, or compare them on the splits both have (`--shared-splits`)."
        )
    out = []
    for key in sorted(a, key=str):
        pa, pb = read_predictions(results_dir, a[key], part), read_predictions(results_dir, b[key], part)
        if not pa.same_records(pb):
            raise JftzooError(f"split {_split_name([key])}: the rows' stored {part} records differ; cannot pair them")
        out.append((pa, pb))
    return out


def _split_name(keys: Sequence[tuple]) -> str:
    return ", ".join(f"{str(d)[:12]}/{f}/seed {s}" for d, f, s in keys[:2]) or "none"


def paired_compare(results_dir: Path, row_a: dict[str, Any], row_b: dict[str, Any],
                   records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]], metric: str = "accuracy",
                   resamples: int = 1000, seed: int = 0, part: str = "test") -> Comparison:
    import numpy as np

    if metric not in SCORES:
        raise UsageError(f"--metric {metric!r}: expected one of {', '.join(SCORES)}")
    if part not in PARTS:
        raise UsageError(f"--part {part!r}: expected one of {', '.join(PARTS)}")
    pairs = _pairs(Path(results_dir), records_a, records_b, part)
    data = [(np.asarray(pa.true), pa.probs, pb.probs, len(pa.labels)) for pa, pb in pairs]

    def mean_diff(take: Any = None, swap: Any = None) -> tuple[float, float]:
        ma, mb = [], []
        for i, (y, a, b, c) in enumerate(data):
            if swap is not None:
                s = swap[i][:, None]
                a, b = np.where(s, b, a), np.where(s, a, b)
            if take is not None:
                y, a, b = y[take[i]], a[take[i]], b[take[i]]
            ma.append(metric_value(metric, y, a, c))
            mb.append(metric_value(metric, y, b, c))
        return float(np.nanmean(ma)), float(np.nanmean(mb))

    a_mean, b_mean = mean_diff()
    observed = a_mean - b_mean
    rng = np.random.default_rng(seed)
    boots, perms = [], []
    for _ in range(resamples):
        ba, bb = mean_diff(take=[rng.integers(0, len(y), len(y)) for y, *_ in data])
        boots.append(ba - bb)
        pa, pb = mean_diff(swap=[rng.random(len(y)) < 0.5 for y, *_ in data])
        perms.append(pa - pb)
    low, high = (float(x) for x in np.nanpercentile(boots, [2.5, 97.5]))
    extreme = sum(abs(d) >= abs(observed) - 1e-12 for d in perms)
    p_value = (extreme + 1) / (resamples + 1)
    keys = ("dataset", "text", "vision", "fusion", "mode", "weights", "config_hash")
    return Comparison(metric, {k: row_a.get(k) for k in keys}, {k: row_b.get(k) for k in keys}, a_mean, b_mean,
                      observed, (low, high), float(p_value), sum(len(y) for y, *_ in data), len(data), resamples,
                      part)
