"""The four coalition forwards of a fitted model: each modality present, or replaced by its baseline.

Two baselines for an absent modality (`BASELINES`), and ``auto`` to pick one:

- ``mean``: the mean embedding of a reference set (the training part when a split is known, else
  the explained records): the pooled mean, and for heads that read tokens the mean token as a
  one-token sequence. ``auto`` picks it for frozen encoders: their embeddings of real posts are what
  the head was trained on, and a grey image or an empty text can lie far outside them.
- ``input``: what the model sees for "nothing": an empty text and a mid-grey image, each through the
  (fine-tuned or frozen) encoder. ``auto`` picks it for fine-tuned encoders (top-k, joint), whose
  embedding space moved during training, and where no reference records are at hand.

The head runs on the encoders' outputs with the absent modality's output swapped for the baseline's,
so the encoders run once per record, not four times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from jftzoo.datasets.records import Record
from jftzoo.encoders.base import EncoderOutput
from jftzoo.errors import UsageError
from jftzoo.explain.shapley import COALITIONS

BASELINES = ("input", "mean")
CHOICES = ("auto", *BASELINES)
GREY = (128, 128, 128)  # the mid-grey image of the "input" baseline

Progress = Callable[[int, int], None]


@dataclass
class Coalitions:
    """Class probabilities of each coalition, in record order."""

    probs: dict[str, np.ndarray]  # coalition -> (N, C)
    weights: np.ndarray | None  # (N, 2) the head's own text/image weights with both present, if it has any


def expand_output(out: EncoderOutput, b: int) -> EncoderOutput:
    """A one-item baseline output repeated for a batch of b."""
    return EncoderOutput(out.pooled.expand(b, -1), out.tokens.expand(b, -1, -1), out.mask.expand(b, -1))


def encode_records(model: torch.nn.Module, records: Sequence[Record], device: torch.device
                   ) -> tuple[EncoderOutput | None, EncoderOutput | None]:
    from jftzoo.train.model import run_present
    from jftzoo.train.trainer import to_device

    batch = to_device(model.preprocess([r.item("text") for r in records], [r.item("vision") for r in records]),
                      device)
    return (run_present(model.text, batch["text"], model.text) if "text" in batch else None,
            run_present(model.vision, batch["vision"], model.vision) if "vision" in batch else None)


def _raw(model: torch.nn.Module, text: str, image: Any, device: torch.device
         ) -> tuple[EncoderOutput | None, EncoderOutput | None]:
    """The encoders' outputs for this exact input, an empty text included (the `input` baseline)."""
    from jftzoo.train.trainer import to_device

    def run(encoder: Any, modality: str, item: Any) -> EncoderOutput | None:
        if encoder is None or not model.uses(modality):
            return None
        return encoder(to_device({"x": encoder.preprocess([item])}, device)["x"])

    return run(model.text, "text", text), run(model.vision, "vision", image)


def _as_absent(base: EncoderOutput | None, out: EncoderOutput | None, b: int) -> EncoderOutput | None:
    """The baseline for a batch of b, except where the post itself lacks the modality: there the post's own
    absence (the head's "missing" embedding) stands, so its Shapley value for that modality is exactly 0."""
    if base is None:
        return None
    expanded = expand_output(base, b)
    if out is None or out.present is None:
        return expanded
    return EncoderOutput(expanded.pooled, expanded.tokens, expanded.mask, out.present)


def frozen_encoders(model: torch.nn.Module) -> bool:
    """Whether no encoder weight trains (frozen mode): what `auto` decides by."""
    return not any(p.requires_grad for enc in (model.text, model.vision) if enc is not None for p in enc.parameters())


def resolve_baseline(model: torch.nn.Module, kind: str, has_reference: bool, frozen: bool | None = None) -> str:
    """`kind`, with "auto" made concrete: mean for frozen encoders with reference records, else input.
    `frozen`: whether the model was trained in frozen mode (a loaded model's weights all say trainable)."""
    if kind not in CHOICES:
        from jftzoo.errors import suggest

        hint = suggest(kind, CHOICES)
        raise UsageError(f"unknown baseline {kind!r}.{' Did you mean ' + repr(hint[0]) + '?' if hint else ''} "
                         f"Baselines: {', '.join(CHOICES)}")
    if kind != "auto":
        return kind
    frozen = frozen_encoders(model) if frozen is None else frozen
    return "mean" if has_reference and frozen else "input"


def baseline_outputs(model: torch.nn.Module, kind: str, reference: Sequence[Record] | None = None,
                     batch_size: int = 32, progress: Progress | None = None, features: Any = None
                     ) -> tuple[EncoderOutput | None, EncoderOutput | None]:
    """The (1-item) outputs that stand for an absent text and an absent image (`kind`: input or mean).
    `features` (a FeatureStore) serves frozen encoders' outputs of the reference records."""
    from PIL import Image

    from jftzoo.train.pipeline import plan_batches
    from jftzoo.train.trainer import FrozenInputs

    kind = resolve_baseline(model, kind, bool(reference))
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        if kind == "input":
            size = 224
            if model.vision is not None:
                size = int(getattr(model.vision, "data_config", {}).get("input_size", (3, 224, 224))[-1])
            return _raw(model, "", Image.new("RGB", (size, size), GREY), device)
        if not reference:
            raise UsageError("the 'mean' baseline needs reference records (e.g. the training part of the split)")
        sums: dict[str, list[torch.Tensor]] = {}
        counts: dict[str, int] = {}
        n = len(reference)
        frozen = FrozenInputs(model, reference, features) if features is not None else None
        for part in plan_batches(n, batch_size, None):
            outs = frozen.batch(part, device) if frozen is not None else \
                encode_records(model, [reference[i] for i in part], device)
            for name, out in zip(("text", "image"), outs, strict=True):
                if out is None:
                    continue
                w = out.mask.unsqueeze(-1).to(out.tokens.dtype)  # (B, N, 1)
                token = (out.tokens * w).sum(1) / w.sum(1).clamp(min=1)  # (B, Dt) each item's mean token
                keep = out.present if out.present is not None else torch.ones(len(part), dtype=torch.bool)
                keep = keep.to(out.pooled.device)  # (B,) posts without the modality do not enter its mean
                acc = sums.setdefault(name, [torch.zeros_like(out.pooled[0]), torch.zeros_like(token[0])])
                acc[0] += out.pooled[keep].float().sum(0).to(acc[0].dtype)
                acc[1] += token[keep].float().sum(0).to(acc[1].dtype)
                counts[name] = counts.get(name, 0) + int(keep.sum())
            if progress is not None:
                progress(part[-1] + 1, n)

    def mean(name: str) -> EncoderOutput | None:
        if name not in sums:
            return None
        pooled, token = sums[name]
        m = max(counts.get(name, 0), 1)
        return EncoderOutput(pooled=(pooled / m).unsqueeze(0), tokens=(token / m).view(1, 1, -1),
                             mask=torch.ones(1, 1, dtype=torch.bool, device=device))

    return mean("text"), mean("image")


def coalition_probs(model: torch.nn.Module, records: Sequence[Record],
                    baselines: tuple[EncoderOutput | None, EncoderOutput | None], batch_size: int = 32,
                    progress: Progress | None = None, features: Any = None) -> Coalitions:
    """Probabilities of every coalition for every record: one encoder pass, four head passes per batch.
    `features` (a FeatureStore) serves frozen encoders' outputs instead of running them again."""
    from jftzoo.train.pipeline import plan_batches
    from jftzoo.train.trainer import FrozenInputs

    device = next(model.parameters()).device
    frozen = FrozenInputs(model, records, features) if features is not None else None
    model.eval()
    text_base, image_base = baselines
    probs: dict[str, list[torch.Tensor]] = {c: [] for c in COALITIONS}
    weights: list[torch.Tensor] = []
    n = len(records)
    with torch.inference_mode():
        for part in plan_batches(n, batch_size, None):
            if frozen is not None:
                text, image = frozen.batch(part, device)
            else:
                text, image = encode_records(model, [records[i] for i in part], device)
            b = len(part)
            absent_text = _as_absent(text_base, text, b)
            absent_image = _as_absent(image_base, image, b)
            for coalition in COALITIONS:
                t = text if coalition in ("text", "both") else absent_text
                v = image if coalition in ("image", "both") else absent_image
                probs[coalition].append(model.head(t, v).float().softmax(-1).cpu())  # (B, C)
            weigh = getattr(model.head, "modality_weights", None)  # third-party heads may lack it
            w = weigh(text, image) if weigh is not None else None
            if w is not None:
                weights.append(w.float().cpu())  # (B, 2)
            if progress is not None:
                progress(part[-1] + 1, n)
    c = model.head.cfg.n_classes
    return Coalitions(probs={k: torch.cat(v).numpy() if v else np.zeros((0, c), np.float32) for k, v in probs.items()},
                      weights=torch.cat(weights).numpy() if weights else None)
