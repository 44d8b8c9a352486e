"""Integrated gradients (Captum) for one record: over words and over image regions, for one class.

Each modality is attributed with the other held at its actual value, from a baseline where the
modality says nothing: every word piece replaced by padding (special tokens kept) for text, a
mid-grey image for vision. Attributions are taken at the token embeddings (word pieces, summed over
the embedding dimension and merged back to words) and at the input pixels (summed over channels and
pooled into the encoder's spatial grid: 7x7 positions for EfficientNet at 224 px, 14x14 patches for
a ViT-B/16). Completeness: the attributions of a modality sum to the class logit at the record minus
the logit at that modality's baseline, up to the integral's approximation error, reported per record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from jftzoo.datasets.records import Record
from jftzoo.encoders.base import EncoderOutput
from jftzoo.explain.coalitions import GREY, expand_output

N_STEPS = 50  # Gauss-Legendre points of the path integral (Captum's default method)


@dataclass
class Completeness:
    """sum of attributions vs the logit difference they should add up to."""

    attribution_sum: float
    logit_difference: float  # logit(record) - logit(baseline), for the explained class

    @property
    def error(self) -> float:
        return self.attribution_sum - self.logit_difference

    @property
    def relative_error(self) -> float:
        return abs(self.error) / max(abs(self.logit_difference), 1e-6)

    def as_dict(self) -> dict[str, float]:
        return {"attribution_sum": self.attribution_sum, "logit_difference": self.logit_difference,
                "error": self.error, "relative_error": self.relative_error}


@dataclass
class WordAttribution:
    words: list[tuple[str, float]]  # (word, attribution) in text order
    completeness: Completeness


@dataclass
class RegionAttribution:
    regions: list[list[float]]  # (grid, grid) attribution per spatial position / patch, rows top to bottom
    completeness: Completeness


def _on(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def word_attributions(model: Any, record: Record, target: int, image: EncoderOutput | None,
                      n_steps: int = N_STEPS) -> WordAttribution | None:
    """Integrated gradients over the text's words for class `target`, the image's output held fixed.
    None when the model reads no text, its text encoder offers no attribution layer, or the post has no text."""
    from captum.attr import LayerIntegratedGradients

    enc = model.text
    layer = enc.attribution_layer() if enc is not None and model.uses("text") and record.has_text else None
    if layer is None:  # no text model, no attribution layer, or a post without text: no words to weigh
        return None
    device = next(model.parameters()).device
    batch = enc.preprocess([record.text])
    base = _on(enc.attribution_baseline(batch), device)
    batch = _on(batch, device)
    rest = {k: v for k, v in batch.items() if k != "input_ids"}  # attention mask etc., the same on the path

    def logits(input_ids: torch.Tensor) -> torch.Tensor:
        b = input_ids.shape[0]
        out = enc({"input_ids": input_ids, **{k: v.expand(b, -1) for k, v in rest.items()}})
        return model.head(out, expand_output(image, b) if image is not None else None)  # (b, C)

    lig = LayerIntegratedGradients(logits, layer)
    attr = lig.attribute(batch["input_ids"], baselines=base["input_ids"], target=target, n_steps=n_steps,
                         internal_batch_size=n_steps)  # (1, N, E)
    per_token = attr.sum(-1)[0].detach().float().cpu()  # (N,)
    with torch.no_grad():
        diff = float(logits(batch["input_ids"])[0, target] - logits(base["input_ids"])[0, target])
    words = [(word, float(per_token[pos].sum())) for word, pos in enc.word_spans(record.text)]
    return WordAttribution(words=words, completeness=Completeness(float(per_token.sum()), diff))


def _pixel_key(batch: dict[str, torch.Tensor]) -> str:
    keys = [k for k, v in batch.items() if v.is_floating_point() and v.ndim == 4]
    if len(keys) != 1:
        raise ValueError(f"expected one (B, 3, H, W) image tensor in the vision batch, got {sorted(batch)}")
    return keys[0]


def region_attributions(model: Any, record: Record, target: int, text: EncoderOutput | None,
                        n_steps: int = N_STEPS) -> RegionAttribution | None:
    """Integrated gradients over image regions for class `target`, the text's output held fixed.

    Encoders with region features (timm's: the last feature map or patch tokens) are attributed there,
    from the grey image's features: one path through pooling and the head, cheap and near-exact.
    Others are attributed at the pixels (a path through the whole encoder), pooled into a grid.
    None when the model reads no image or the post has none.
    """
    from captum.attr import IntegratedGradients
    from PIL import Image

    from jftzoo.images import load_image

    enc = model.vision
    if enc is None or not model.uses("vision") or not record.has_image:
        return None
    device = next(model.parameters()).device
    image = load_image(record.image, 0)
    batch = _on(enc.preprocess([image]), device)
    grey_batch = _on(enc.preprocess([Image.new("RGB", image.size, GREY)]), device)

    def head(out: EncoderOutput) -> torch.Tensor:
        b = out.pooled.shape[0]
        return model.head(expand_output(text, b) if text is not None else None, out)  # (b, C)

    with torch.no_grad():
        features, grey = enc.region_features(batch), enc.region_features(grey_batch)
    at_regions = features is not None
    if at_regions:
        def logits(x: torch.Tensor) -> torch.Tensor:
            return head(enc.from_region_features(x))
    else:  # attribute the pixels
        key = _pixel_key(batch)
        features, grey = batch[key], grey_batch[key]

        def logits(x: torch.Tensor) -> torch.Tensor:
            return head(enc({key: x}))

    attr = IntegratedGradients(logits).attribute(features, baselines=grey, target=target, n_steps=n_steps,
                                                 internal_batch_size=n_steps)  # like `features`, (1, ...)
    with torch.no_grad():
        diff = float(logits(features)[0, target] - logits(grey)[0, target])
    total = float(attr.sum())
    if at_regions:
        grid = enc.region_grid(attr[0].detach().float().cpu())
    else:
        with torch.no_grad():
            n_tokens = enc(batch).tokens.shape[1]
        grid = pool_regions(attr.sum(1)[0].detach().float().cpu(), max(1, math.isqrt(n_tokens)))
    return RegionAttribution(regions=grid.tolist(), completeness=Completeness(total, diff))


def pool_regions(pixel_map: torch.Tensor, grid: int) -> torch.Tensor:
    """(H, W) -> (grid, grid) sums; exact block sums when the size divides, area-scaled means otherwise."""
    h, w = pixel_map.shape
    if h % grid == 0 and w % grid == 0:
        return pixel_map.view(grid, h // grid, grid, w // grid).sum((1, 3))
    return F.adaptive_avg_pool2d(pixel_map[None, None], grid)[0, 0] * (h * w / grid**2)
