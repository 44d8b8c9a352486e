"""The benchmark figure: one panel per (dataset, split protocol, mode); rows of different protocols (random
or group-aware splits, k-fold or a ratio) are never drawn as one. With several encoder pairs, a heatmap of pairs
(rows) x heads and baselines (columns), colour = mean AUC; with one pair, a bar chart of the heads' mean
AUC and its 95 % interval, which says the same without one-cell heatmaps. matplotlib (Agg) is imported
here only."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jftzoo.bench.report import distinct_labels, encoder_label, recipe_text

UNIMODAL = {"text-only": "text", "image-only": "vision", "svm": None}


def _shown(r: dict[str, Any]) -> bool:
    return r.get("auc_mean") is not None and r["fusion"] != "majority" and not r.get("outdated")


def bar_colours(heads: Sequence[str]) -> list[str]:
    """Grey for baselines and unimodal rows, blue for fusion heads; a head shown twice carries its recipe or
    hash after a space."""
    return ["#9a9a9a" if h.split(" ")[0] in UNIMODAL else "#3b6fb6" for h in heads]


def panels(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    """(dataset, split protocol, mode) of every panel, in row order; rows without an AUC are left out. The
    SVM (always frozen) is drawn in every mode's panel of its dataset and protocol as a reference."""
    def key(r: dict[str, Any]) -> tuple[str, str | None, str]:
        return r["dataset"], r.get("split"), r["mode"]

    return list(dict.fromkeys(key(r) for r in rows if _shown(r) and r["fusion"] != "svm")) or \
        list(dict.fromkeys(key(r) for r in rows if _shown(r)))


def _pair(r: dict[str, Any]) -> tuple[str, str]:
    return encoder_label(r["text"], r.get("text_weights")), encoder_label(r["vision"], r.get("vision_weights"))


def bar_labels(cells: Sequence[dict[str, Any]]) -> list[str]:
    """Each bar's AUC, and its number of splits where it has fewer than the panel's fullest row: a one-seed
    bar has no interval, and without the count it reads like a figure as firm as its neighbours'."""
    most = max((c.get("n_splits") or 0) for c in cells) if cells else 0
    out = []
    for c in cells:
        n = c.get("n_splits") or 0
        out.append(f"{c['auc_mean']:.3f}" + (f" ({n} split{'s' if n != 1 else ''} of {most})" if n < most else ""))
    return out


def panel_grid(rows: Sequence[dict[str, Any]], dataset: str, protocol: str | None, mode: str
               ) -> tuple[list[str], list[str], list[list[dict[str, Any] | None]]]:
    """(pair labels, head names, cells): a unimodal row fills every pair that holds its encoder. Two
    configurations of one head (another recipe, another device) are two columns, told apart by their recipe's
    name or their hash."""
    part = [r for r in rows if r["dataset"] == dataset and r.get("split") == protocol and _shown(r)
            and (r["mode"] == mode or r["fusion"] == "svm")]
    pairs = list(dict.fromkeys(_pair(r) for r in part if r["text"] and r["vision"]))
    if not pairs:  # only unimodal rows: one row per encoder
        pairs = list(dict.fromkeys(_pair(r) for r in part))
    by_pair: dict[tuple[Any, Any], dict[str, tuple[str, str | None, Any]]] = defaultdict(dict)
    for r in part:
        by_pair[_pair(r)][r.get("config_hash") or r["fusion"]] = (r["fusion"], recipe_text(r), r.get("train_config"))
    labels = {pair: distinct_labels(configs) for pair, configs in by_pair.items()}

    def head(r: dict[str, Any]) -> str:
        return labels[_pair(r)][r.get("config_hash") or r["fusion"]]

    heads = list(dict.fromkeys(head(r) for r in part))
    cells: list[list[dict[str, Any] | None]] = [[None] * len(heads) for _ in pairs]
    for r in part:
        t, v = _pair(r)
        for i, (pt, pv) in enumerate(pairs):
            if (r["text"] is None or t == pt) and (r["vision"] is None or v == pv):
                cells[i][heads.index(head(r))] = r
    return [f"{t} + {v}" for t, v in pairs], heads, cells


def heatmap(rows: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Write the PNG; None when no row has an AUC to show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = panels(rows)
    if not keys:
        return None
    grids = [panel_grid(rows, d, p, m) for d, p, m in keys]
    several_protocols = len({(d, p) for d, p, _ in keys}) > len({d for d, _, _ in keys})
    bars = all(len(pairs) == 1 for pairs, _, _ in grids)
    widest = max(len(heads) for _, heads, _ in grids)
    heights = [max(1.6, 0.42 * len(heads) + 0.9) if bars else 0.55 * len(pairs) + 1.6 for pairs, heads, _ in grids]
    width = 8.0 if bars else max(6.0, 1.05 * widest + 3.2)
    fig, axes = plt.subplots(len(keys), 1, figsize=(width, sum(heights) + 0.3), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    image = None
    labels = [bar_labels(cells[0]) if bars else [] for _, _, cells in grids]  # type: ignore[arg-type]
    for ax, (dataset, protocol, mode), (pairs, heads, cells), texts in zip(axes[:, 0], keys, grids, labels,
                                                                          strict=True):
        majority = next((r for r in rows if r["dataset"] == dataset and r.get("split") == protocol
                         and r["fusion"] == "majority" and r.get("auc_mean") is not None), None)
        where = f"{dataset}\n{protocol} · " if several_protocols else f"{dataset}\n"  # two lines: long paths
        if bars:
            values = [c["auc_mean"] for c in cells[0]]  # type: ignore[index]
            ci = [c.get("auc_ci95") for c in cells[0]]  # type: ignore[union-attr]
            err = np.array([[v - lo, hi - v] if lo is not None and hi is not None else [0, 0]
                            for v, (lo, hi) in zip(values, [x if x else (None, None) for x in ci], strict=True)]).T
            colours = bar_colours(heads)
            ax.barh(range(len(heads)), values, xerr=err, color=colours, capsize=3)
            ax.set_yticks(range(len(heads)), heads, fontsize=9)
            ax.invert_yaxis()
            low = min([0.5, *[v for v in values if v == v]]) - 0.02
            ax.set_xlim(max(0.0, low), 1.0)
            for i, (v, label) in enumerate(zip(values, texts, strict=True)):
                ax.text(v + err[1][i] + 0.006, i, label, va="center", ha="left", fontsize=8)  # right of the interval
            if majority is not None:
                ax.axvline(majority["auc_mean"], color="black", ls="--", lw=0.8)
            ax.set_xlabel("AUC (macro one-vs-rest), mean over splits; bars: 95 % interval; dashed: majority",
                          fontsize=8)
            ax.set_title(f"{where}{mode} · {pairs[0]}", fontsize=10, loc="left")
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            continue
        grid = np.array([[c["auc_mean"] if c else np.nan for c in row] for row in cells], dtype=float)
        image = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                        color="white" if value < 0.8 else "black")
        ax.set_xticks(range(len(heads)), heads, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(pairs)), pairs, fontsize=8)
        ax.set_title(f"{where}{mode}", fontsize=10, loc="left")
    if image is not None:
        fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.8, label="AUC (macro one-vs-rest, mean over splits)")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # What the picture shows rides along as PNG text, so tools (and tests) can read it.
    meta = [{"dataset": d, "protocol": proto, "mode": m, "pairs": p, "heads": h, **({"labels": t} if bars else {})}
            for (d, proto, m), (p, h, _), t in zip(keys, grids, labels, strict=True)]
    kind = "bars" if bars else "heatmap"
    fig.savefig(out, dpi=110, metadata={"jftzoo-panels": json.dumps(meta), "jftzoo-kind": kind})
    plt.close(fig)
    return out
