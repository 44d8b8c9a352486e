"""Summaries of benchmark records: one row per cell (mean ± std over folds and seeds), the
paper's Table 1 layout, and CSV / JSON / Markdown exports. No printing here: the CLI renders."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jftzoo.train.config import stored_field
from jftzoo.train.metrics import SCORES
from jftzoo.train.presets import options_on_top, recipe_of, with_options

ROW_KEYS = ("dataset", "text", "vision", "fusion", "mode", "weights")
ROW_ORDER = {"majority": 0, "svm": 1, "text-only": 2, "image-only": 2}  # baselines first, then the heads
NOTES = (
    "AUC: macro one-vs-rest ROC AUC (binary tasks: ROC AUC of the second label). Each cell: mean ± sample sd "
    "over n splits (seeds × folds) and a 95 % t-interval of the mean in brackets. Bold: the row with the best "
    "VALIDATION mean of that metric (its test figure is shown; test data picks nothing). k-fold intervals are "
    "optimistic (folds share training records); seeds of independent splits are the cleaner unit.",
)


def _clean(value: Any) -> Any:
    """NaN/inf -> None, so --json output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _split_label(record: dict[str, Any]) -> str:
    split = record.get("split", {})
    kind = f"{split.get('folds')}-fold" if split.get("kind") == "kfold" else split.get("ratio") or split.get("kind")
    return f"{kind}, groups {split.get('groups', 'none')}"


def _metric_stats(row: dict[str, Any], recs: Sequence[dict[str, Any]], source: str, prefix: str) -> None:
    from jftzoo.bench.stats import summarize_values

    for m in SCORES:
        stats = summarize_values((r[source][m] if source in r else None for r in recs), bounds=(0.0, 1.0))
        row[f"{prefix}{m}_mean"] = _clean(stats.mean)
        row[f"{prefix}{m}_std"] = _clean(stats.std)
        row[f"{prefix}{m}_ci95"] = [_clean(x) for x in stats.ci95] if stats.ci95 else None
        if m == "auc" and not prefix:
            row["nan_folds"] = stats.nan  # splits whose AUC is undefined (a one-class test part), left out


def summarize(records: Iterable[dict[str, Any]], cells: Sequence[Any] = (),
              unavailable: dict[Any, str] | None = None, failed: dict[Any, str] | None = None) -> list[dict[str, Any]]:
    """One row per configuration (`config_hash`), in the grid's order when given.

    Records of different configurations (another train option, encoder weights, jftzoo version or
    split protocol) are never averaged together: each gets its own row, and rows made by an older
    jftzoo are marked `outdated`.
    """
    from jftzoo.version import __version__

    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r.get("config_hash") or tuple(r.get(k) for k in ROW_KEYS)].append(r)
    rows = []
    for chash, recs in groups.items():
        first = recs[0]
        row: dict[str, Any] = {k: first.get(k) for k in ROW_KEYS}
        # Per-encoder weights: a cell is `random` if either encoder is, but each name is labelled alone.
        row["text_weights"] = first.get("text_weights", row["weights"]) if row["text"] else None
        row["vision_weights"] = first.get("vision_weights", row["weights"]) if row["vision"] else None
        row["config_hash"] = chash if isinstance(chash, str) else None
        row["recipe"] = recipe_of(first)
        row["recipe_options"] = options_on_top(first, row["recipe"]) or None  # `--average-top 3` on the recipe
        row["train_config"] = first.get("train_config")  # one configuration: the same for every record
        # models averaged on each split (--seed-ensemble; 1: one model); None where no configuration is stored
        row["seed_ensemble"] = stored_field(row["train_config"], "seed_ensemble") if row["train_config"] else None
        row["jftzoo_version"] = first.get("jftzoo_version")
        row["outdated"] = first.get("jftzoo_version") != __version__
        row["groups"] = first.get("split", {}).get("groups", "none")
        row["split"] = _split_label(first)
        _metric_stats(row, recs, "metrics", "")
        _metric_stats(row, recs, "val_metrics", "val_")
        row["n_splits"] = len(recs)
        row["seeds"] = sorted({r["seed"] for r in recs})
        row["n_seeds"] = len(row["seeds"])
        row["wall_s"] = float(sum(r.get("wall_s", 0.0) for r in recs))
        row["wall_s_by_device"] = wall_by_device(recs)
        row["samples_per_s"] = _clean(float(np.mean([r["samples_per_s"] for r in recs if r.get("samples_per_s")])))\
            if any(r.get("samples_per_s") for r in recs) else None
        shares = [r["explain"]["text_share"] for r in recs if r.get("explain")]
        row["text_share"] = float(np.mean(shares)) if shares else None  # bench --explain: mean over splits
        row["status"] = "ok"
        rows.append(row)
    for status, problems in (("unavailable", unavailable or {}), ("failed", failed or {})):
        for cell, why in problems.items():
            if any(r["dataset"] == cell.dataset and r["text"] == cell.text and r["vision"] == cell.vision and
                   r["fusion"] == cell.fusion and r["mode"] == cell.mode for r in rows):
                continue
            row = {"dataset": cell.dataset, "text": cell.text, "vision": cell.vision, "fusion": cell.fusion,
                   "mode": cell.mode, "weights": None, "config_hash": None, "outdated": False,
                   **{f"{p}{m}_{s}": None for p in ("", "val_") for m in SCORES for s in ("mean", "std", "ci95")},
                   "n_splits": 0, "n_seeds": 0, "nan_folds": 0, "seeds": [], "wall_s": 0.0, "samples_per_s": None,
                   "status": status, "reason": why}
            rows.append(row)
    order = {(c.dataset, c.text, c.vision, c.fusion, c.mode): i for i, c in enumerate(cells)}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    rows.sort(key=lambda r: (datasets.index(r["dataset"]), r["outdated"], ROW_ORDER.get(r["fusion"], 3),
                             order.get((r["dataset"], r["text"], r["vision"], r["fusion"], r["mode"]), len(order)),
                             str(r["text"]), str(r["vision"]), r["fusion"], r["mode"], str(r.get("config_hash"))))
    return rows


def device_label(record: dict[str, Any]) -> str:
    """Where a record ran: CPU, or the GPU's model (the record's `machine` names it), e.g. H100."""
    device = str(record.get("device", "cpu"))
    if "+" in device:  # an ensemble's members ran on several: its wall_s_by_device names each
        return "+".join(sorted({device_label({"device": d}) for d in device.split("+")}))
    if device.startswith("cuda"):
        return str(record.get("machine", "")).rsplit(", ", 1)[-1].replace("NVIDIA ", "").split(" ")[0] or "GPU"
    return "CPU" if device == "cpu" else device.split(":")[0].upper()


def wall_by_device(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Seconds per device label: a row whose seeds ran on a CPU and a GPU has two costs, not one sum (a GPU
    minute and a CPU minute are not one unit)."""
    out: dict[str, float] = {}
    for r in records:  # an ensemble record carries its members' split (it ran nothing itself)
        for device, seconds in (r.get("wall_s_by_device") or {device_label(r): r.get("wall_s", 0.0)}).items():
            out[device] = out.get(device, 0.0) + float(seconds)
    return dict(sorted(out.items()))


def fmt_cost(row: dict[str, Any]) -> str:
    """A row's cost: plain seconds when it all ran on CPUs, else per device (e.g. "1.9 h CPU + 14.5 min H100")."""
    per = row.get("wall_s_by_device") or {}
    if set(per) <= {"CPU"}:
        return fmt_seconds(row["wall_s"])
    return " + ".join(f"{fmt_seconds(seconds)} {device}" for device, seconds in per.items())


def best_in_columns(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Per metric, the index of the row with the best VALIDATION mean among current finished rows:
    the row a reader would pick; its test figure is what gets highlighted."""
    best: dict[str, int] = {}
    for m in SCORES:
        scored = [(r[f"val_{m}_mean"], i) for i, r in enumerate(rows)
                  if r.get(f"val_{m}_mean") is not None and not r.get("outdated")]
        if scored:
            best[m] = max(scored)[1]
    return best


def fmt_mean_std(row: dict[str, Any], metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "—"
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


def fmt_stat(row: dict[str, Any], metric: str) -> str:
    """mean ± sd [95 % CI], or the single value of a one-split row."""
    text = fmt_mean_std(row, metric)
    ci = row.get(f"{metric}_ci95")
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else text


def fmt_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def encoder_label(name: str | None, weights: str | None) -> str:
    if name is None:
        return "—"
    return f"{name} (random)" if weights == "random" else name


def seed_ensemble_mark(train_config: Mapping[str, Any] | None) -> str:
    """What a label adds for a configuration averaging several seeds' models (`--seed-ensemble`), so no table,
    chart or ensemble member passes it off as one model: " (ensemble of 5 seeds)", else ""."""
    n = stored_field(train_config, "seed_ensemble") if train_config else 1
    return f" (ensemble of {n} seeds)" if n and n > 1 else ""


def distinct_labels(labels: Mapping[str, tuple[str, str | None, Mapping[str, Any] | None]]) -> dict[str, str]:
    """Each configuration's label (config hash -> (label, its named recipe or None, its stored train config or
    None)), marked where it is an ensemble over seeds, and told apart where two share one: by the recipe's name,
    then by the training fields in which they differ (at most two, e.g. `concat (average_top=3)`), then, where
    that is not enough, by the hash."""
    labels = {h: (label + seed_ensemble_mark(config), recipe, config) for h, (label, recipe, config) in labels.items()}
    counts = Counter(label for label, _, _ in labels.values())
    named = {h: f"{label} ({recipe})" if counts[label] > 1 and recipe else label
             for h, (label, recipe, _) in labels.items()}
    groups: dict[str, list[str]] = defaultdict(list)
    for h, label in named.items():
        groups[label].append(h)
    for label, hashes in groups.items():
        configs = [labels[h][2] for h in hashes]
        if len(hashes) > 1 and all(c is not None for c in configs):
            fields = _differing_fields(configs)
            for h, config in zip(hashes, configs, strict=True):
                if fields:
                    named[h] = f"{label} ({', '.join(f'{k}={stored_field(config, k)}' for k in fields)})"
    counts = Counter(named.values())
    return {h: f"{label} [{h[:8]}]" if counts[label] > 1 else label for h, label in named.items()}


def _differing_fields(configs: Sequence[Mapping[str, Any]], most: int = 2) -> list[str]:
    """The training fields (at most `most`, by name) whose values differ among `configs`; none when more
    differ, since a long list reads worse than a hash."""
    names = sorted({k for c in configs for k in c} - {"head", "seed"})
    differ = [k for k in names if len({repr(stored_field(c, k)) for c in configs}) > 1]
    return differ if len(differ) <= most else []


def recipe_text(row: Mapping[str, Any]) -> str | None:
    """A summary row's recipe with the options given on top of it (`automm --average-top 3`), or None."""
    return with_options(row.get("recipe"), row.get("recipe_options"))


def config_label(row: dict[str, Any]) -> str:
    """The table's config cell: the hash's first 8 characters, and the named recipe (with any option on top of it)
    where the row has one."""
    short = (row.get("config_hash") or "—")[:8]
    recipe = recipe_text(row)
    return f"{short} ({recipe})" if recipe else short


def fusion_label(row: dict[str, Any]) -> str:
    status = "" if row["status"] == "ok" else f" ({row['status']})"
    old = f" (jftzoo {row.get('jftzoo_version') or '0.1.0 or older'})" if row.get("outdated") else ""
    return f"{row['fusion']}{seed_ensemble_mark(row.get('train_config'))}{status}{old}"


def splits_label(row: dict[str, Any]) -> str:
    nan = f", {row['nan_folds']} NaN AUC" if row.get("nan_folds") else ""
    return f"{row['n_splits']}{nan}"


SHARE_NOTE = ("text share (bench --explain): the text's share of the modality Shapley values of the predicted "
              "class's probability, pooled over each split's test records (an absent modality: the training part's "
              "mean embedding for frozen encoders, an empty text / a grey image through fine-tuned ones; "
              "docs/explain.md), mean over splits; image share = 1 - it.")
TABLE_COLUMNS = ("text", "vision", "fusion", "mode", "config", "n", "accuracy", "macro-F1", "weighted-F1", "AUC",
                 "val accuracy", "cost")


def table_columns(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """TABLE_COLUMNS, with "text share" when any row was explained (bench --explain)."""
    return TABLE_COLUMNS + (("text share",) if any(r.get("text_share") is not None for r in rows) else ())


def table_cells(row: dict[str, Any], best: dict[str, int], index: int, bold: Any, share: bool = False) -> list[str]:
    """The cells of one table row, shared by the Markdown and terminal tables; `share`: the text-share column."""
    cells = [encoder_label(row["text"], row.get("text_weights")),
             encoder_label(row["vision"], row.get("vision_weights")), fusion_label(row), row["mode"],
             config_label(row), splits_label(row)]
    for m in SCORES:
        text = fmt_stat(row, m)
        cells.append(bold(text) if best.get(m) == index and row.get(f"{m}_mean") is not None else text)
    cells += [fmt_mean_std(row, "val_accuracy"), fmt_cost(row)]
    if share:
        cells.append("—" if row.get("text_share") is None else f"{row['text_share']:.2f}")
    return cells


def protocol_line(rows: Sequence[dict[str, Any]]) -> str:
    protocols = sorted({r["split"] for r in rows if r.get("split")})
    seeds = sorted({s for r in rows for s in r.get("seeds", [])})
    return f"Protocol: {'; '.join(protocols) or '—'}; seeds {', '.join(map(str, seeds)) or '—'}."


def table_parts(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(title, rows) of each table: one per dataset and split protocol, in row order. Validation parts of
    different protocols differ, so "best on validation" is only ever decided within one protocol."""
    keys = list(dict.fromkeys((r["dataset"], r.get("split")) for r in rows))
    several = {d for d, _ in keys if sum(k[0] == d for k in keys) > 1}
    return [(f"{d} · {p}" if d in several else d, [r for r in rows if (r["dataset"], r.get("split")) == (d, p)])
            for d, p in keys]


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A table per dataset and split protocol; bold = best validation mean per metric (test figure shown)."""
    out = []
    for title, part in table_parts(rows):
        best = best_in_columns(part)
        columns = table_columns(part)
        share = len(columns) > len(TABLE_COLUMNS)
        out += [f"### {title}", "", protocol_line(part), "",
                "| " + " | ".join(columns) + " |",
                "|---|---|---|---|---|" + "---:|" * (len(columns) - 5)]
        for i, r in enumerate(part):
            out.append("| " + " | ".join(table_cells(r, best, i, lambda t: f"**{t}**", share)) + " |")
        out.append("")
        out += list(NOTES)
        if share:
            out.append(f"\n{SHARE_NOTE}")
        if any(r["weights"] == "random" for r in part):
            out.append("\n`(random)`: built with random weights (--random-init) — exercises the grid, not a result.")
        if any(r.get("outdated") for r in part):
            out.append("\n`(jftzoo X)`: made by an older jftzoo version; not comparable, never picked as best.")
        out.append("")
    return "\n".join(out)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = [*ROW_KEYS, "config_hash", "recipe", "recipe_options", "seed_ensemble", "jftzoo_version", "outdated",
              "groups", "split",
              "n_splits",
              "n_seeds", "nan_folds", *(f"{p}{m}_{s}" for p in ("", "val_") for m in SCORES
                             for s in ("mean", "std", "ci95_low", "ci95_high")), "wall_s", "samples_per_s", "status"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        flat = dict(r)
        for p in ("", "val_"):
            for m in SCORES:
                ci = r.get(f"{p}{m}_ci95") or (None, None)
                flat[f"{p}{m}_ci95_low"], flat[f"{p}{m}_ci95_high"] = ci
        writer.writerow({k: ("" if flat.get(k) is None else flat.get(k)) for k in fields})
    return buf.getvalue()


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps([{k: _clean(v) for k, v in r.items()} for r in rows], indent=2, allow_nan=False)


# -- the paper's Table 1 ------------------------------------------------------------------------------------
PAPER_NOTES = (
    "Protocol differences from the paper that matter: early stopping uses an inner validation split carved "
    "from each training fold (the published code stopped on the test fold, which flatters its figures); AUC is "
    "computed over each whole test fold (binary: ROC AUC; multiclass: macro one-vs-rest), then averaged over "
    "folds; the 'joint fine-tuning' row uses the published head (attention over a length-1 sequence, "
    "`attention-paper`); CLIP is CLIP's two towers with a concatenation head, fine-tuned.",
)


def paper_methods(text: str, vision: str) -> list[tuple[str, str, str | None, str | None, str]]:
    """(label, fusion, text, vision, mode) for each row of the paper's Table 1."""
    t = "DistilBERT" if text == "distilbert" else text
    v = "ResNet" if vision == "resnet50" else vision
    return [
        ("Majority class (not in the paper)", "majority", None, None, "frozen"),
        ("SVM (concatenation)", "svm", text, vision, "frozen"),
        (f"{v} only", "image-only", None, vision, "joint"),
        (f"{t} only", "text-only", text, None, "joint"),
        (f"{v}+{t}", "concat", text, vision, "joint"),
        ("CLIP", "clip", "clip-text", "clip-vision", "joint"),
        ("Joint fine-tuning (ours)", "attention-paper", text, vision, "joint"),
    ]


def paper_table(rows: Sequence[dict[str, Any]], text: str, vision: str, datasets: Sequence[str]) -> list[list[str]]:
    """Rows = methods, columns = datasets, AUC mean ± std (the first row is the header)."""
    table = [["Method", *datasets]]
    for label, fusion, t, v, mode in paper_methods(text, vision):
        line = [label]
        for dataset in datasets:
            match = [r for r in rows if (r["dataset"], r["fusion"], r["text"], r["vision"], r["mode"]) ==
                     (dataset, fusion, t, v, mode)]
            if not match:
                line.append("—")
                continue
            r = match[0]
            if r["status"] != "ok":
                line.append(r["status"])
                continue
            cell = fmt_mean_std(r, "auc")
            line.append(cell + (" (random)" if r["weights"] == "random" else ""))
        table.append(line)
    return table


def paper_markdown(table: list[list[str]]) -> str:
    header, *body = table
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n\n" + "\n".join(PAPER_NOTES) + "\n"
