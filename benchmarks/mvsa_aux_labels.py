"""Two levers NOT built into jftzoo, measured before building them (issue 13): does MVSA-Single's second
annotation, or a flipped image, lift a frozen concat head?

1. Per-modality labels as auxiliary targets. Every MVSA-Single post carries a text annotator's label and an image
   annotator's label; the merge policy keeps one (docs/datasets.md). Here the head's text branch also predicts the
   text label and its image branch the image label (an extra cross-entropy each, weight `aux`), training data only.
2. Horizontal-flip augmentation of the frozen image embedding (EfficientNet-Lite0 run once more on flipped
   images): training draws the flipped embedding for half the records, prediction averages both.
Each variant also as an ensemble of 5 initialisations (probabilities averaged), the cheapest ensemble there is.

A small two-branch head (each encoder -> 256, ReLU, dropout 0.3, concat -> 3 classes; AdamW 1e-3, batch 32, early
stopping on validation accuracy, patience 5) on the real frozen embeddings of MiniLM-L6 + EfficientNet-Lite0 (raw
tweets), the library's own splits (`ratio_split`, 8:1:1, seeds 0-4) on both protocols. Each variant against
`base` on the same test records: paired bootstrap over records within splits (1,000 resamples), as `jftzoo
results compare` does. Validation chooses; test is only reported.

  HF_HUB_OFFLINE=1 python benchmarks/mvsa_aux_labels.py [--seeds 0,1,2,3,4] [--out FILE.md]

Cost on the project's 2-core CPU: 24 min the first time, the encoder passes included (then cached by jftzoo's
embedding cache; flipped images under $TMPDIR).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data" / "mvsa_single"
LABELS = ("negative", "neutral", "positive")
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "aux 0.5": {"aux": 0.5},
    "aux 1": {"aux": 1.0},
    "flip": {"flip": True},
    "aux 0.5 + flip": {"aux": 0.5, "flip": True},
}
INITS = 5


class TwoBranch(nn.Module):
    """Concat fusion with a classifier on each branch too, so each branch can be taught its own annotator's label."""

    def __init__(self, text_dim: int, image_dim: int, hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        self.text, self.image = nn.Linear(text_dim, hidden), nn.Linear(image_dim, hidden)
        self.fused, self.text_out, self.image_out = nn.Linear(2 * hidden, 3), nn.Linear(hidden, 3), nn.Linear(hidden, 3)
        self.drop = nn.Dropout(dropout)

    def forward(self, t: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ht, hi = self.drop(F.relu(self.text(t))), self.drop(F.relu(self.image(i)))  # (B, H) each
        return self.fused(torch.cat([ht, hi], 1)), self.text_out(ht), self.image_out(hi)  # (B, 3) each


def embeddings(records: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(text, image, flipped image) pooled embeddings, through jftzoo's feature store and disk cache."""
    from PIL import Image

    from jftzoo.cache_layouts import embedding_cache
    from jftzoo.features import FeatureStore
    from jftzoo.registry import get_encoder

    store = FeatureStore(cache=embedding_cache(), batch_size=64)
    text = store.features(get_encoder("minilm", pretrained=True).eval(), [r.text for r in records]).pooled
    vision = get_encoder("efficientnet_lite0", pretrained=True).eval()
    image = store.features(vision, [r.image for r in records]).pooled
    flipped_dir = Path(tempfile.gettempdir()) / "jftzoo_mvsa_flipped"
    flipped_dir.mkdir(exist_ok=True)
    flipped = []
    for r in records:
        path = flipped_dir / f"{r.id}.png"  # lossless, so the flip is the only change
        if not path.exists():
            Image.open(r.image).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
        flipped.append(path)
    return text, image, store.features(vision, flipped).pooled


def annotator_labels(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each post's text and image annotator labels, from labelResultAll.txt."""
    pairs = {}
    for line in (DATA_DIR / "labelResultAll.txt").read_text(encoding="utf-8").splitlines()[1:]:
        rid, cell = line.split("\t")[:2]
        pairs[rid.strip()] = [LABELS.index(x.strip()) for x in cell.split(",")]
    return np.array([pairs[i][0] for i in ids]), np.array([pairs[i][1] for i in ids])


def train(x: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], parts: dict[str, list[int]], seed: int,
          aux: float = 0.0, flip: bool = False, epochs: int = 40, patience: int = 5
          ) -> tuple[float, np.ndarray, np.ndarray]:
    """(best validation accuracy, its validation and test probabilities)."""
    torch.manual_seed(seed)
    model = TwoBranch(x["text"].shape[1], x["image"].shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    y = targets["merged"]

    def probs(idx: list[int]) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            p = F.softmax(model(x["text"][idx], x["image"][idx])[0], 1)  # (n, 3)
            if flip:
                p = (p + F.softmax(model(x["text"][idx], x["flipped"][idx])[0], 1)) / 2
        model.train()
        return p.numpy()

    best: tuple[float, np.ndarray, np.ndarray] = (-1.0, np.empty(0), np.empty(0))
    stale = 0
    train_idx = torch.tensor(parts["train"])
    for _ in range(epochs):
        order = train_idx[torch.randperm(len(train_idx))]
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            image = x["image"][idx]
            if flip:
                image = torch.where((torch.rand(len(idx)) < 0.5)[:, None], x["flipped"][idx], image)
            fused, text_logits, image_logits = model(x["text"][idx], image)
            loss = F.cross_entropy(fused, y[idx])
            if aux:
                loss = loss + aux * (F.cross_entropy(text_logits, targets["text"][idx])
                                     + F.cross_entropy(image_logits, targets["image"][idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = probs(parts["val"])
        acc = float((val.argmax(1) == y[parts["val"]].numpy()).mean())
        if acc > best[0]:
            best, stale = (acc, val, probs(parts["test"])), 0
        else:
            stale += 1
            if stale >= patience:
                break
    return best


def paired(a: list[np.ndarray], b: list[np.ndarray], resamples: int = 1000, seed: int = 0
           ) -> tuple[float, float, float]:
    """Mean over splits of accuracy(a) - accuracy(b) (per-record correctness), and its bootstrap 95 % CI."""
    rng = np.random.default_rng(seed)
    observed = float(np.mean([x.mean() - y.mean() for x, y in zip(a, b, strict=True)]))
    boots = []
    for _ in range(resamples):
        takes = [rng.integers(0, len(x), len(x)) for x in a]
        boots.append(np.mean([x[t].mean() - y[t].mean() for x, y, t in zip(a, b, takes, strict=True)]))
    low, high = np.percentile(boots, [2.5, 97.5])
    return observed, float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mvsa_aux_labels.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)
    from jftzoo.bench.stats import summarize_values
    from jftzoo.datasets.groups import groups_for
    from jftzoo.datasets.registry import load_dataset
    from jftzoo.datasets.splits import ratio_split

    ds = load_dataset(f"mvsa-single:{DATA_DIR}")  # raw tweets: the normaliser is a training option
    ids = [r.id for r in ds.records]
    at = {rid: k for k, rid in enumerate(ids)}
    text, image, flipped = embeddings(ds.records)
    x = {"text": text, "image": image, "flipped": flipped}
    text_labels, image_labels = annotator_labels(ids)
    targets = {"merged": torch.tensor([LABELS.index(r.label) for r in ds.records]),
               "text": torch.tensor(text_labels), "image": torch.tensor(image_labels)}
    from jftzoo.datasets.mvsa import merge

    mismatched = [i for i, r, t, m in zip(ids, ds.records, text_labels, image_labels, strict=True)
                  if merge(LABELS[t], LABELS[m]) != r.label]
    if mismatched:  # the auxiliary targets must be the annotations the merged label came from
        raise SystemExit(f"annotator labels disagree with the reader's merged label for ids {mismatched[:5]}")
    agree = float((text_labels == image_labels).mean())
    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [
        "# Two levers measured before building them: annotator labels as auxiliary targets, flipped images",
        "",
        f"Command: `HF_HUB_OFFLINE=1 python benchmarks/mvsa_aux_labels.py --seeds {args.seeds}` (what it does and "
        "why: the script's docstring). MVSA-Single, merge policy (4,511 posts; the text and image annotators "
        f"agree on {agree:.1%} of them), MiniLM-L6 + EfficientNet-Lite0 frozen (real weights, raw tweets), a "
        f"two-branch concat head, 8:1:1 splits of seeds {args.seeds}. `ens5`: {INITS} initialisations averaged. "
        "Test diff: paired against `base` on the same test records, bootstrap 95 % CI. Validation chooses; test "
        "is only reported.",
        "",
    ]
    for protocol in ("none", "near-duplicates"):
        correct: dict[str, list[np.ndarray]] = {}
        val_acc: dict[str, list[float]] = {}
        for seed in seeds:
            split = ratio_split(ds, "8:1:1", seed, groups=groups_for(ds, protocol))
            parts = {k: [at[i] for i in split.parts[k]] for k in ("train", "val", "test")}
            y_val, y_test = targets["merged"][parts["val"]].numpy(), targets["merged"][parts["test"]].numpy()
            for name, options in VARIANTS.items():
                runs = [train(x, targets, parts, seed * 100 + r, **options) for r in range(INITS)]
                for label, (val, test) in ((name, (runs[0][1], runs[0][2])),
                                           (f"{name} ens5", (np.mean([r[1] for r in runs], 0),
                                                             np.mean([r[2] for r in runs], 0)))):
                    val_acc.setdefault(label, []).append(float((val.argmax(1) == y_val).mean()))
                    correct.setdefault(label, []).append((test.argmax(1) == y_test).astype(float))
            print(f"{protocol} seed {seed} done", flush=True)
        lines += [f"## `--groups {protocol}`", "",
                  "| variant | val accuracy | test accuracy (mean ± sd, 95 % CI) | test diff vs base (95 % CI) |",
                  "|---|---:|---:|---:|"]
        for label, rows in correct.items():
            s = summarize_values([r.mean() for r in rows], (0.0, 1.0))
            d, low, high = paired(rows, correct["base"])
            lines.append(f"| {label} | {np.mean(val_acc[label]):.3f} | {s.mean:.3f} ± {s.std:.3f} "
                         f"[{s.ci95[0]:.3f}, {s.ci95[1]:.3f}] | {d:+.3f} [{low:+.3f}, {high:+.3f}] |")
        lines.append("")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
