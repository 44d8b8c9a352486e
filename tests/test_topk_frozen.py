"""top-k mode: the frozen prefix of each encoder is deterministic while the model trains."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import nn

import jftzoo
from jftzoo.datasets import load_dataset
from jftzoo.encoders.base import Encoder
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head
from jftzoo.train.model import FusionModel


@functools.cache
def batch_items() -> tuple[list[str], list[Any]]:
    ds = load_dataset("emoji-sentiment")
    records = ds.records[:3]
    return [r.text for r in records], [r.image for r in records]


def fusion_model(text: Encoder, vision: Encoder) -> FusionModel:
    cfg = HeadConfig(n_classes=3, text_dim=text.embed_dim, vision_dim=vision.embed_dim, d=16, hidden=16)
    return FusionModel(text, vision, build_head("concat", cfg))


def tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor in a module's output (tensors, tuples, dicts and transformers ModelOutputs)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in tensors(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in tensors(v)]
    return []


def frozen_outputs_are_identical(model: FusionModel) -> int:
    """Run the same batch twice in train mode; every all-frozen module must give bit-identical outputs.

    Returns how many modules were checked.
    """
    seen: dict[str, list[list[torch.Tensor]]] = {}
    handles = []
    for prefix, encoder in (("text", model.text), ("vision", model.vision)):
        for name, module in encoder.named_modules():
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                key = f"{prefix}.{name}"

                def hook(_m: nn.Module, _i: Any, out: Any, key: str = key) -> None:
                    seen.setdefault(key, []).append([t.detach().clone() for t in tensors(out)])

                handles.append(module.register_forward_hook(hook))
    texts, images = batch_items()
    batch = model.preprocess(texts, images)
    try:
        torch.manual_seed(0)
        model(batch)
        torch.manual_seed(1)  # a different dropout draw: only frozen modules must not notice
        model(batch)
    finally:
        for h in handles:
            h.remove()
    assert seen
    for key, (first, second) in seen.items():
        assert len(first) == len(second) and first, key
        for a, b in zip(first, second, strict=True):
            assert torch.equal(a, b), f"{key} is frozen but its output changed between two passes"
    return len(seen)


@pytest.fixture(scope="module")
def pretrained_model() -> FusionModel:
    return fusion_model(jftzoo.get_encoder("minilm"), jftzoo.get_encoder("efficientnet_lite0"))


def test_frozen_prefix_of_pretrained_encoders_is_deterministic_in_train_mode(pretrained_model: FusionModel):
    model = pretrained_model
    model.set_mode("top-k", 2)
    model.train()
    assert frozen_outputs_are_identical(model) > 10
    # Frozen BERT layers hold 13 parameter-free Dropout modules before the top 2 layers: all in eval mode.
    frozen_dropouts = [m for m in model.text.model.encoder.layer[:4].modules() if isinstance(m, nn.Dropout)]
    frozen_dropouts += [m for m in model.text.model.embeddings.modules() if isinstance(m, nn.Dropout)]
    assert len(frozen_dropouts) == 13 and not any(m.training for m in frozen_dropouts)


def test_dropout_still_acts_in_the_trainable_top(pretrained_model: FusionModel):
    model = pretrained_model
    model.set_mode("top-k", 2)
    model.eval()
    model.train()  # switching back and forth keeps the decisions
    top = model.text.model.encoder.layer[-1]
    assert all(p.requires_grad for p in top.parameters())
    dropouts = [m for m in top.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(m.training for m in dropouts)
    assert top.attention.self.training  # its sdpa attention dropout reads this flag
    assert model.head.training


def test_frozen_and_joint_modes():
    text = jftzoo.get_encoder("minilm", pretrained=False)
    vision = jftzoo.get_encoder("efficientnet_lite0", pretrained=False)
    model = fusion_model(text, vision)
    model.set_mode("frozen")
    model.train()
    assert not any(m.training for enc in (text, vision) for m in enc.modules())
    model.set_mode("joint")
    model.train()
    assert all(m.training for m in model.modules())


def test_frozen_prefix_of_random_encoders_of_other_families_is_deterministic():
    """DistilBERT (dropout 0.1 in embeddings, attention, feed-forward) and a timm ViT (blocks, attention)."""
    model = fusion_model(jftzoo.get_encoder("distilbert", pretrained=False),
                         jftzoo.get_encoder("vit", pretrained=False))
    model.set_mode("top-k", (2, 3))
    model.train()
    assert frozen_outputs_are_identical(model) > 10
    top = model.text.model.transformer.layer[-1]
    assert all(m.training for m in top.modules())
