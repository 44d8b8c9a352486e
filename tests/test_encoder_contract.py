"""The embed contract, checked on every registered encoder built with random weights (timm-style)."""

from __future__ import annotations

import functools

import pytest
import torch
from PIL import Image

import jftzoo
import jftzoo.weights
from jftzoo.encoders.base import Encoder
from jftzoo.errors import TokenizerUnavailableError

NAMES = [s.name for s in jftzoo.list_encoders()]


@functools.cache
def build(name: str) -> Encoder:
    torch.manual_seed(0)
    return jftzoo.get_encoder(name, pretrained=False)


def has_tokenizer(enc: Encoder) -> bool:
    try:
        enc.preprocess(["probe"])
    except TokenizerUnavailableError:
        return False
    return True


def sample_batch(enc: Encoder) -> dict[str, torch.Tensor]:
    if enc.modality == "vision":
        images = [Image.new("RGB", (320, 240), (200, 30, 30)), Image.new("RGB", (180, 260), (10, 90, 200))]
        return enc.preprocess(images)
    if has_tokenizer(enc):
        return enc.preprocess(["a short one", "a somewhat longer text about how much I love this picture"])
    # Hub-only tokenizers (roberta, mpnet, clip) are not available offline: feed token ids directly.
    ids = torch.randint(5, 1000, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("name", NAMES)
def test_spec_matches_the_built_model(name: str):
    spec = jftzoo.list_encoders(name)[0]
    enc = build(name)
    assert enc.modality == spec.modality
    assert enc.embed_dim == spec.dim
    assert not enc.pretrained and str(enc.weight_source) == "random (not pretrained)"
    assert "weights=random" in repr(enc)
    assert sum(p.numel() for p in enc.parameters()) == spec.params
    assert not enc.training  # get_encoder returns eval mode


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes_masks_and_gradients(name: str):
    enc = build(name)
    batch = sample_batch(enc)
    out = enc(batch)
    b = next(iter(batch.values())).shape[0]
    assert out.pooled.shape == (b, enc.embed_dim)
    assert out.tokens.ndim == 3 and out.tokens.shape[0] == b and out.tokens.shape[2] == enc.token_dim
    assert out.mask.dtype == torch.bool and out.mask.shape == out.tokens.shape[:2]
    if enc.modality == "text":
        assert torch.equal(out.mask, batch["attention_mask"].bool())
        assert batch["input_ids"].shape[1] < 64  # dynamic padding, never a fixed 512
    else:
        assert out.mask.all()
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.tokens).all()

    enc.zero_grad(set_to_none=True)
    (out.pooled.square().sum() + out.tokens.square().mean()).backward()
    groups = enc.layer_groups()
    bottom = [p for m in groups[0] for p in m.parameters()]
    top = [p for m in groups[-1] for p in m.parameters()]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in bottom), "no gradient reaches the bottom"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in top), "no gradient reaches the top"
    enc.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", NAMES)
def test_layer_groups_partition_every_parameter(name: str):
    enc = build(name)
    groups = enc.layer_groups()
    assert len(groups) >= 3  # embeddings/stem, blocks, top
    ids = [id(p) for g in groups for m in g for p in m.parameters()]
    assert len(ids) == len(set(ids)), "a parameter sits in two groups"
    assert set(ids) == {id(p) for p in enc.parameters()}, "a parameter is in no group"


@pytest.mark.parametrize("name", NAMES)
def test_freezing_all_but_the_top_group(name: str):
    enc = build(name)
    groups = enc.layer_groups()
    try:
        for g in groups[:-1]:
            for m in g:
                m.requires_grad_(False)
        out = enc(sample_batch(enc))
        (out.pooled.sum() + out.tokens.mean()).backward()
        frozen = [p for g in groups[:-1] for m in g for p in m.parameters()]
        assert all(p.grad is None for p in frozen)
        assert any(p.grad is not None for m in groups[-1] for p in m.parameters())
    finally:
        enc.requires_grad_(True)
        enc.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", NAMES)
def test_embed_is_deterministic_and_keeps_order(name: str):
    enc = build(name)
    if enc.modality == "vision":
        items = [Image.new("RGB", (64 + 40 * i, 200), (40 * i, 100, 255 - 40 * i)) for i in range(5)]
    elif has_tokenizer(enc):
        items = ["hi", "a much longer sentence about a sunny day at the beach", "ok then", "", "meh!"]
    else:
        pytest.skip("tokenizer files for this hub checkpoint are not available offline; forward is tested")
    first = enc.embed(items, batch_size=2)
    again = enc.embed(items, batch_size=2)
    assert first.shape == (len(items), enc.embed_dim)
    assert torch.equal(first, again)
    singles = torch.cat([enc.embed([x], batch_size=1) for x in items])
    torch.testing.assert_close(first, singles, atol=1e-4, rtol=1e-4)
    assert enc.embed([], batch_size=4).shape == (0, enc.embed_dim)


def test_channels_last_feature_maps_become_spatial_tokens():
    """timm models whose features are (B, H, W, C) (Swin) still give one token per position."""
    import timm

    from jftzoo.encoders.timm_vision import TimmVisionEncoder

    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0)
    enc = TimmVisionEncoder("swin-test", model, jftzoo.weights.RANDOM).eval()
    out = enc(enc.preprocess([Image.new("RGB", (224, 224), "green")]))
    assert enc.channels_last
    assert out.tokens.shape == (1, 49, 768) and out.pooled.shape == (1, 768)
    torch.testing.assert_close(out.tokens.mean(1), model.forward_features(enc.preprocess(
        [Image.new("RGB", (224, 224), "green")])["pixel_values"]).mean((1, 2)))
