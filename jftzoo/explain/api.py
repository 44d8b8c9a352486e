"""`explain_record` and `explain_dataset`: how much each modality, word and image region counted.

Library code: returns plain dataclasses (JSON through `as_dict`), draws nothing unless asked for a
card, and reports progress through a callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jftzoo.datasets.records import Record
from jftzoo.errors import UsageError
from jftzoo.explain.shapley import COALITIONS, at, pooled_share, record_shares, shapley

ABLATION_METRICS = ("accuracy", "f1_macro", "auc")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class RecordExplanation:
    """One record: its prediction, the modality Shapley values and shares, word and region attributions."""

    id: str
    label: str  # the predicted class: every value below explains it
    probs: dict[str, float]
    shapley: dict[str, float]  # {"text": x, "image": y} of the predicted class's probability
    modality_shares: dict[str, float]  # {"text": s, "image": 1 - s}
    coalitions: dict[str, dict[str, float]]  # none/text/image/both -> class probabilities
    true_label: str | None = None
    shapley_loss: dict[str, float] | None = None  # of the cross-entropy loss, when the true label is known
    modality_weights: dict[str, float] | None = None  # the head's own weights (gated, attention heads)
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, integrated gradients), text order
    regions: list[list[float]] | None = None  # (grid, grid) integrated gradients per image region
    completeness: dict[str, dict[str, float]] = field(default_factory=dict)  # text / image -> Completeness
    text: str = ""
    image: str | None = None  # the image file, when it was one
    baseline: str = ""  # of the Shapley values: mean | input (integrated gradients start from padding / grey)
    card: str | None = None  # the PNG card's path, when drawn
    absent: list[str] = field(default_factory=list)  # modalities the post lacks ("text", "image"): their φ is 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["words"] = [[w, a] for w, a in self.words]
        return out


@dataclass
class DatasetExplanation:
    """Many records: modality shares overall and per class, ablation, the head's weights, per record."""

    n: int
    baseline: str
    labels: list[str]
    modality_shares: dict[str, float]  # overall {"text": s, "image": 1 - s}
    shapley: dict[str, float]  # mean Shapley value per modality (predicted class's probability)
    per_class: dict[str, dict[str, Any]]  # predicted class -> n, shares, mean Shapley values, head weights
    ablation: dict[str, dict[str, dict[str, Any]]]  # both/text/image -> metric -> {value, ci}
    modality_weights: dict[str, Any] | None  # the head's own weights: overall and per class (mean, sd)
    shapley_loss: dict[str, float] | None = None
    records: list[RecordExplanation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["records"] = [r.as_dict() for r in self.records]
        return out


def _model_of(model: Any, labels: Sequence[str] | None = None) -> tuple[Any, list[str], str, bool]:
    """(FusionModel, class labels, text normaliser, frozen encoders?) from a FusionClassifier, a model
    folder path, or a FusionModel with its `labels` (what the trainer and the bench hold)."""
    from jftzoo.explain.coalitions import frozen_encoders
    from jftzoo.train.classifier import FusionClassifier
    from jftzoo.train.model import FusionModel

    if isinstance(model, FusionModel):
        if labels is None:
            raise UsageError("explaining a FusionModel needs its class labels (labels=[...]), in class-index order")
        return model, [str(c) for c in labels], "none", frozen_encoders(model)
    if isinstance(model, (str, Path)):
        model = FusionClassifier.load(model)
    if not isinstance(model, FusionClassifier):
        raise UsageError(f"explain takes a fitted FusionClassifier, a model folder or a FusionModel, got "
                         f"{type(model).__name__}")
    model._check_fitted()
    return (model.model_, [str(c) for c in model.classes_], model.train_config.text_normalizer,
            model.mode == "frozen")


def _losses(probs: dict[str, np.ndarray], y: np.ndarray) -> dict[str, np.ndarray]:
    return {c: -np.log(np.clip(p, 1e-12, None)) for c, p in at(probs, y).items()}


def bootstrap(metric: str, y: np.ndarray, probs: np.ndarray, n_classes: int, resamples: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """The metric on all records and a 95 % percentile bootstrap interval over records."""
    from jftzoo.bench.compare import metric_value

    value = metric_value(metric, y, probs, n_classes)
    rng = np.random.default_rng(seed)
    draws = [metric_value(metric, y[i], probs[i], n_classes) for i in
             (rng.integers(0, len(y), len(y)) for _ in range(resamples))]
    draws = [d for d in draws if np.isfinite(d)]
    ci = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else [None, None]
    return {"value": value, "ci": ci}


def explain_dataset(model: Any, records: Sequence[Record], baseline: str = "auto",
                    reference: Sequence[Record] | None = None, batch_size: int = 32, resamples: int = 1000,
                    seed: int = 0, progress: Progress | None = None,
                    labels: Sequence[str] | None = None, features: Any = None,
                    frozen: bool | None = None) -> DatasetExplanation:
    """Modality Shapley values, shares, ablation and head weights over `records`.

    `model`: a fitted FusionClassifier or a model folder. `baseline`: "input" (an empty text / a grey
    image through the encoder), "mean" (the mean embedding of `reference`, else of `records`), or
    "auto": mean for frozen encoders, input for fine-tuned ones (`jftzoo.explain.coalitions`).
    Ablation and the loss's Shapley values need true labels: records whose label is not one of the
    model's classes are explained but left out of them (counted in `notes`). `labels`: with a bare
    FusionModel, its classes in index order. `features`: a FeatureStore (e.g. with the disk cache) that
    serves a frozen model's encoder outputs instead of running the encoders again. `frozen`: whether
    the encoders were frozen in training (default: from the classifier's mode, or the model's weights).
    """
    from jftzoo.explain.coalitions import baseline_outputs, coalition_probs, resolve_baseline
    from jftzoo.train.trainer import normalized_texts

    fm, labels, normalizer, was_frozen = _model_of(model, labels)
    frozen = was_frozen if frozen is None else frozen
    records = normalized_texts(list(records), normalizer)
    if not records:
        raise UsageError("no records to explain")
    ref = normalized_texts(list(reference), normalizer) if reference else records
    baseline = resolve_baseline(fm, baseline, True, frozen)
    features = features if frozen else None  # fine-tuned encoders' outputs are never cached
    stage = (lambda name: (lambda i, n: progress(name, i, n))) if progress else (lambda name: None)
    bases = baseline_outputs(fm, baseline, ref, batch_size, progress=stage("baseline"), features=features)
    co = coalition_probs(fm, records, bases, batch_size, progress=stage("records"), features=features)
    pred = co.probs["both"].argmax(1)
    phi = shapley(at(co.probs, pred))
    shares = record_shares(phi)
    index = {c: i for i, c in enumerate(labels)}
    known = np.array([r.label in index for r in records])
    notes = [] if known.all() else [f"{int((~known).sum())} record(s) without a known label: left out of the "
                                    "ablation and the loss's Shapley values"]
    y = np.array([index.get(r.label, -1) for r in records])
    phi_loss = shapley(_losses({c: p[known] for c, p in co.probs.items()}, y[known])) if known.any() else None
    ablation = {}
    if known.any():
        for coalition, name in (("both", "both"), ("text", "text only"), ("image", "image only")):
            ablation[name] = {m: bootstrap(m, y[known], co.probs[coalition][known], len(labels), resamples, seed)
                              for m in ABLATION_METRICS}
    weights = co.weights
    per_class: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(labels):
        where = pred == i
        share = pooled_share(phi, where) if where.any() else None  # no share for a class never predicted
        entry: dict[str, Any] = {"n": int(where.sum()), "text": share, "image": None if share is None else 1 - share}
        entry["shapley"] = {"text": float(phi.text[where].mean()) if where.any() else None,
                            "image": float(phi.image[where].mean()) if where.any() else None}
        if weights is not None and where.any():
            entry["head_weights"] = {"text": float(weights[where, 0].mean()), "image": float(weights[where, 1].mean())}
        per_class[c] = entry
    head_weights = None
    if weights is not None:
        head_weights = {"overall": {"text": {"mean": float(weights[:, 0].mean()), "sd": float(weights[:, 0].std())},
                                    "image": {"mean": float(weights[:, 1].mean()), "sd": float(weights[:, 1].std())}},
                        "note": "what the head reads (gate or attention weights), not what changes its answer: "
                                "they need not agree with the Shapley shares"}
    out_records = []
    for k, r in enumerate(records):
        out_records.append(RecordExplanation(
            id=r.id, label=labels[pred[k]],
            probs={c: float(p) for c, p in zip(labels, co.probs["both"][k], strict=True)},
            shapley={"text": float(phi.text[k]), "image": float(phi.image[k])},
            modality_shares={"text": float(shares[k]), "image": float(1 - shares[k])},
            coalitions={c: {lab: float(p) for lab, p in zip(labels, co.probs[c][k], strict=True)} for c in COALITIONS},
            true_label=r.label if known[k] else None,
            modality_weights={"text": float(weights[k, 0]), "image": float(weights[k, 1])} if weights is not None
            else None,
            text=r.text, image=str(r.image) if isinstance(r.image, (str, Path)) else None, baseline=baseline,
            absent=[m for m, has in (("text", r.has_text), ("image", r.has_image)) if not has]))
    if phi_loss is not None:
        for k, j in enumerate(np.flatnonzero(known)):
            out_records[j].shapley_loss = {"text": float(phi_loss.text[k]), "image": float(phi_loss.image[k])}
    overall = pooled_share(phi)
    return DatasetExplanation(
        n=len(records), baseline=baseline, labels=labels, modality_shares={"text": overall, "image": 1 - overall},
        shapley={"text": float(phi.text.mean()), "image": float(phi.image.mean())}, per_class=per_class,
        ablation=ablation, modality_weights=head_weights,
        shapley_loss={"text": float(phi_loss.text.mean()), "image": float(phi_loss.image.mean())}
        if phi_loss is not None else None,
        records=out_records, notes=notes)


def explain_record(model: Any, text: str | None = None, image: Any = None, record: Record | None = None,
                   baseline: str = "auto", reference: Sequence[Record] | None = None, n_steps: int = 50,
                   card: str | Path | None = None, labels: Sequence[str] | None = None,
                   features: Any = None) -> RecordExplanation:
    """One record: prediction, modality Shapley values and shares, integrated gradients over its words
    and image regions (Captum) with the completeness check, and optionally a PNG card at `card`."""
    import torch

    from jftzoo.explain.attribution import region_attributions, word_attributions
    from jftzoo.explain.coalitions import encode_records

    if record is None:
        if text is None and image is None:
            raise UsageError("give a record, or a text and/or an image (a post may lack either)")
        record = Record("record", text or "", image, "?")
    fm, labels, normalizer, frozen = _model_of(model, labels)
    from jftzoo.explain.coalitions import resolve_baseline
    from jftzoo.train.trainer import normalized_texts

    shown = record
    (record,) = normalized_texts([record], normalizer)
    baseline = resolve_baseline(fm, baseline, bool(reference), frozen)  # one record is no reference of its own
    ds = explain_dataset(fm, [record], baseline=baseline, reference=reference, resamples=0, labels=labels,
                         features=features, frozen=frozen)
    rx = ds.records[0]
    rx.id, rx.text = shown.id, record.text
    target = labels.index(rx.label)
    device = next(fm.parameters()).device
    with torch.no_grad():
        text_out, image_out = encode_records(fm, [record], device)
    words = word_attributions(fm, record, target, image_out, n_steps)
    regions = region_attributions(fm, record, target, text_out, n_steps)
    if words is not None:
        rx.words = words.words
        rx.completeness["text"] = words.completeness.as_dict()
    if regions is not None:
        rx.regions = regions.regions
        rx.completeness["image"] = regions.completeness.as_dict()
    if card is not None:
        from jftzoo.explain.card import draw_card

        rx.card = str(draw_card(rx, record.image, fm.vision, card))
    return rx
