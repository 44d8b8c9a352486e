"""Built-in fusion heads, registered through the same hook third-party plugins use."""

from __future__ import annotations

from collections.abc import Callable

from jftzoo.fusion.registry import FusionSpec
from jftzoo.hookspecs import hookimpl

H = "jftzoo.fusion.heads:"

# The released training script of the paper's attention head: AdamW with one learning rate for
# encoders and head, ExponentialLR(gamma=0.9) stepped per epoch, no warm-up, at least 3 epochs.
PAPER_RECIPE = {"lr_encoder": 3e-5, "lr_head": 3e-5, "scheduler": "exponential", "lr_gamma": 0.9,
                "warmup_ratio": 0.0, "min_epochs": 3, "text_normalizer": "none"}  # raw tweets, as released


@hookimpl
def register_fusions(register: Callable[[FusionSpec], None]) -> None:
    register(FusionSpec("attention", H + "AttentionHead",
                        "the paper's head, made real: the two projected modality vectors as 2 attended tokens"))
    register(FusionSpec("attention-paper", H + "PaperAttentionHead",
                        "the paper's released head and recipe: one 64-d token through a TransformerEncoderLayer "
                        "(attention over length 1, a projection); lr 3e-5, exponential decay",
                        train_preset=dict(PAPER_RECIPE)))
    register(FusionSpec("xattn", H + "CrossAttentionHead",
                        "transformer over [CLS; text tokens; image tokens] with masks", uses_tokens=True))
    register(FusionSpec("concat", H + "ConcatHead", "concatenation + feed-forward (the paper's baseline)"))
    register(FusionSpec("gated", H + "GatedHead", "learned per-sample modality weights, reported"))
    register(FusionSpec("late", H + "LateFusionHead", "average of two unimodal classifiers' logits"))
    register(FusionSpec("text-only", H + "TextOnlyHead", "unimodal baseline: text encoder only",
                        modalities=("text",)))
    register(FusionSpec("image-only", H + "ImageOnlyHead", "unimodal baseline: image encoder only",
                        modalities=("vision",)))
