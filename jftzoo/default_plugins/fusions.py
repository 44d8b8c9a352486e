"""Built-in fusion heads, registered through the same hook third-party plugins use."""

from __future__ import annotations

from collections.abc import Callable

from jftzoo.fusion.registry import FusionSpec
from jftzoo.hookspecs import hookimpl

H = "jftzoo.fusion.heads:"


@hookimpl
def register_fusions(register: Callable[[FusionSpec], None]) -> None:
    register(FusionSpec("attention", H + "AttentionHead",
                        "the paper's head, made real: the two projected modality vectors as 2 attended tokens"))
    register(FusionSpec("attention-paper", H + "PaperAttentionHead",
                        "the paper's published code: attention over a sequence of length 1 (a projection)"))
    register(FusionSpec("xattn", H + "CrossAttentionHead",
                        "transformer over [CLS; text tokens; image tokens] with masks", uses_tokens=True))
    register(FusionSpec("concat", H + "ConcatHead", "concatenation + feed-forward (the paper's baseline)"))
    register(FusionSpec("gated", H + "GatedHead", "learned per-sample modality weights, reported"))
    register(FusionSpec("late", H + "LateFusionHead", "average of two unimodal classifiers' logits"))
    register(FusionSpec("text-only", H + "TextOnlyHead", "unimodal baseline: text encoder only",
                        modalities=("text",)))
    register(FusionSpec("image-only", H + "ImageOnlyHead", "unimodal baseline: image encoder only",
                        modalities=("vision",)))
