"""The benchmark heatmap: text encoders x vision encoders, colour = mean AUC, one panel per
(dataset, fusion head, mode). matplotlib (Agg backend: no screen needed) is imported here only."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jftzoo.bench.report import encoder_label


def panels(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(dataset, fusion, mode) of every panel, in row order; rows without an AUC are left out."""
    return list(dict.fromkeys((r["dataset"], r["fusion"], r["mode"]) for r in rows
                              if r.get("auc_mean") is not None and r["fusion"] != "majority" and not r.get("outdated")))


def heatmap(rows: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Write the PNG; None when no row has an AUC to show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = panels(rows)
    if not keys:
        return None
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    image = None
    for ax, (dataset, fusion, mode) in zip(axes.flat, keys, strict=False):
        part = [r for r in rows if (r["dataset"], r["fusion"], r["mode"]) == (dataset, fusion, mode)
                and r.get("auc_mean") is not None and not r.get("outdated")]
        texts = list(dict.fromkeys(encoder_label(r["text"], r.get("text_weights")) for r in part))
        visions = list(dict.fromkeys(encoder_label(r["vision"], r.get("vision_weights")) for r in part))
        grid = np.full((len(texts), len(visions)), np.nan)
        for r in part:
            i = texts.index(encoder_label(r["text"], r.get("text_weights")))
            j = visions.index(encoder_label(r["vision"], r.get("vision_weights")))
            grid[i, j] = r["auc_mean"]
        image = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white" if value < 0.8 else "black")
        ax.set_xticks(range(len(visions)), visions, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(texts)), texts, fontsize=8)
        ax.set_title(f"{dataset}\n{fusion} / {mode}", fontsize=9)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="AUC (macro one-vs-rest, mean over splits)")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The panel list rides along as PNG text, so tools (and tests) can read what the picture shows.
    fig.savefig(out, dpi=110, metadata={"jftzoo-panels": json.dumps([list(k) for k in keys])})
    plt.close(fig)
    return out
