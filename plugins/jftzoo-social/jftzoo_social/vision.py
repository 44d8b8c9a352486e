"""A thin layer over jftzoo's timm factory, for a timm backbone run below its native input size.

DINOv2 ViTs are built by timm at 518 px: 1370 tokens per image, costly for joint fine-tuning. Spec
option ``img_size`` builds the model through jftzoo's generic factory at its native size, so the
hub checkpoint loads unchanged with jftzoo's own weight lookup and checks. Then it resamples the
position embeddings to ``img_size`` with timm's ``set_input_size`` and makes the eval transform
match (224 px: 257 tokens).

Spec options: everything `jftzoo.encoders.timm_vision.build` reads (``arch``, ...), plus ``img_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from jftzoo.encoders.timm_vision import TimmVisionEncoder
from jftzoo.encoders.timm_vision import build as timm_build
from jftzoo.registry import EncoderSpec
from jftzoo.weights import WeightSource


class SocialTimmEncoder(TimmVisionEncoder):
    """jftzoo's TimmVisionEncoder with the transform resized to the model's (resampled) input size."""

    def __init__(
        self, name: str, model: nn.Module, weight_source: WeightSource, img_size: int | None = None
    ) -> None:
        super().__init__(name, model, weight_source)
        if img_size is not None:
            import timm.data

            size = (3, img_size, img_size)
            self.data_config = timm.data.resolve_data_config({"input_size": size}, model=model)
            self.transform = timm.data.create_transform(**self.data_config)


def build(spec: EncoderSpec, pretrained: bool = True, weights: str | Path | None = None) -> SocialTimmEncoder:
    """jftzoo's timm factory (weight lookup, checks, head removal), then resize to ``img_size``."""
    base = timm_build(spec, pretrained=pretrained, weights=weights)
    model: Any = base.model
    img_size = spec.options.get("img_size")
    if img_size is not None:
        img_size = int(img_size)
        if not hasattr(model, "set_input_size"):
            arch = spec.options["arch"]
            raise ValueError(f"encoder {spec.name!r}: timm model {arch} cannot change its input size")
        model.set_input_size(img_size=(img_size, img_size))  # resamples pos_embed (bicubic)
    return SocialTimmEncoder(spec.name, model, base.weight_source, img_size)
