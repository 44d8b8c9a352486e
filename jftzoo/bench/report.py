"""Summaries of benchmark records: one row per cell (mean ± std over folds and seeds), the
paper's Table 1 layout, and CSV / JSON / Markdown exports. No printing here: the CLI renders."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

METRICS = ("auc", "accuracy", "f1_macro", "f1_weighted")
ROW_KEYS = ("dataset", "text", "vision", "fusion", "mode", "weights")


def _clean(value: Any) -> Any:
    """NaN/inf -> None, so --json output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summarize(records: Iterable[dict[str, Any]], cells: Sequence[Any] = (),
              unavailable: dict[Any, str] | None = None, failed: dict[Any, str] | None = None) -> list[dict[str, Any]]:
    """One row per (dataset, text, vision, fusion, mode, weights), in the grid's order when given."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(r.get(k) for k in ROW_KEYS)].append(r)
    rows = []
    for key, recs in groups.items():
        row: dict[str, Any] = dict(zip(ROW_KEYS, key, strict=True))
        # Per-encoder weights: a cell is `random` if either encoder is, but each name is labelled alone.
        row["text_weights"] = recs[0].get("text_weights", row["weights"]) if row["text"] else None
        row["vision_weights"] = recs[0].get("vision_weights", row["weights"]) if row["vision"] else None
        for m in METRICS:
            values = np.array([r["metrics"][m] if r["metrics"][m] is not None else np.nan for r in recs], dtype=float)
            finite = values[np.isfinite(values)]
            row[f"{m}_mean"] = _clean(float(finite.mean())) if finite.size else None
            row[f"{m}_std"] = _clean(float(finite.std())) if finite.size else None
        row["folds"] = len(recs)
        row["seeds"] = sorted({r["seed"] for r in recs})
        row["wall_s"] = float(sum(r.get("wall_s", 0.0) for r in recs))
        row["samples_per_s"] = _clean(float(np.mean([r["samples_per_s"] for r in recs if r.get("samples_per_s")])))\
            if any(r.get("samples_per_s") for r in recs) else None
        row["status"] = "ok"
        rows.append(row)
    for status, problems in (("unavailable", unavailable or {}), ("failed", failed or {})):
        for cell, why in problems.items():
            if any(r["dataset"] == cell.dataset and r["text"] == cell.text and r["vision"] == cell.vision and
                   r["fusion"] == cell.fusion and r["mode"] == cell.mode for r in rows):
                continue
            row = {"dataset": cell.dataset, "text": cell.text, "vision": cell.vision, "fusion": cell.fusion,
                   "mode": cell.mode, "weights": None, **{f"{m}_{s}": None for m in METRICS for s in ("mean", "std")},
                   "folds": 0, "seeds": [], "wall_s": 0.0, "samples_per_s": None, "status": status, "reason": why}
            rows.append(row)
    order = {(c.dataset, c.text, c.vision, c.fusion, c.mode): i for i, c in enumerate(cells)}
    rows.sort(key=lambda r: (order.get((r["dataset"], r["text"], r["vision"], r["fusion"], r["mode"]), len(order)),
                             r["dataset"], str(r["text"]), str(r["vision"]), r["fusion"], r["mode"]))
    return rows


def best_in_columns(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Highest mean per metric among finished rows (for highlighting)."""
    best = {}
    for m in METRICS:
        values = [r[f"{m}_mean"] for r in rows if r.get(f"{m}_mean") is not None]
        if values:
            best[m] = max(values)
    return best


def fmt_mean_std(row: dict[str, Any], metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "—"
    return f"{mean:.3f} ± {std:.3f}" if row.get("folds", 0) > 1 else f"{mean:.3f}"


def fmt_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def encoder_label(name: str | None, weights: str | None) -> str:
    if name is None:
        return "—"
    return f"{name} (random)" if weights == "random" else name


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A table per dataset, best value per column in bold."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        part = [r for r in rows if r["dataset"] == dataset]
        best = best_in_columns(part)
        out += [f"### {dataset}", "", "| text | vision | fusion | mode | AUC | accuracy | macro-F1 | weighted-F1 | "
                "folds | cost |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in part:
            cells = []
            for m in METRICS:
                text = fmt_mean_std(r, m)
                cells.append(f"**{text}**" if r.get(f"{m}_mean") is not None and r[f"{m}_mean"] == best.get(m)
                             else text)
            status = "" if r["status"] == "ok" else f" ({r['status']})"
            out.append(f"| {encoder_label(r['text'], r.get('text_weights'))} | "
                       f"{encoder_label(r['vision'], r.get('vision_weights'))} | "
                       f"{r['fusion']}{status} | {r['mode']} | {' | '.join(cells)} | {r['folds']} | "
                       f"{fmt_seconds(r['wall_s'])} |")
        if any(r["weights"] == "random" for r in part):
            out.append("\n`(random)`: built with random weights (--random-init) — exercises the grid, not a result.")
        out.append("")
    return "\n".join(out)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = [*ROW_KEYS, *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")), "folds", "wall_s",
              "samples_per_s", "status"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
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
