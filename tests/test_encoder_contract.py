"""The embed contract, checked on every registered encoder built with random weights (timm-style),
and the prefix/top split that lets top-k training cache the frozen prefix."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from PIL import Image

import jftzoo
import jftzoo.weights
from jftzoo.encoders.base import Encoder, EncoderOutput, ParameterGroup
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
    assert enc.nhwc_features and not enc.convolutional and enc.memory_format == "contiguous"
    assert out.tokens.shape == (1, 49, 768) and out.pooled.shape == (1, 768)
    torch.testing.assert_close(out.tokens.mean(1), model.forward_features(enc.preprocess(
        [Image.new("RGB", (224, 224), "green")])["pixel_values"]).mean((1, 2)))


# -- prefix / top split ---------------------------------------------------------------------------
NO_PREFIX = {"mpnet"}  # every MPNet block reads a relative position bias that layer_groups puts in the top group
SPLIT_NAMES = [n for n in NAMES if n not in NO_PREFIX]


def assert_same_output(out: EncoderOutput, ref: EncoderOutput) -> None:
    torch.testing.assert_close(out.pooled, ref.pooled, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.tokens, ref.tokens, atol=1e-5, rtol=0)
    assert torch.equal(out.mask, ref.mask)


def assert_same_real_tokens(out: EncoderOutput, ref: EncoderOutput) -> None:
    """Pooled vectors and every real token agree (padded positions are nobody's business)."""
    torch.testing.assert_close(out.pooled, ref.pooled, atol=1e-5, rtol=0)
    for i in range(ref.tokens.shape[0]):
        n = int(ref.mask[i].sum())
        assert out.mask[i, :n].all() and not out.mask[i, n:].any()
        torch.testing.assert_close(out.tokens[i, :n], ref.tokens[i, :n], atol=1e-5, rtol=0)


def rebatch(prefixes: list[dict[str, torch.Tensor]], extra: int = 0, fill: float = 0.0) -> dict[str, torch.Tensor]:
    """What a per-record cache does: strip each item's padded positions, then batch items again,
    padding per-token tensors to the longest item plus `extra` positions with `fill` (mask: False)."""
    items: list[dict[str, torch.Tensor]] = []
    for prefix in prefixes:
        mask = prefix["mask"]  # (B, N)
        for i in range(mask.shape[0]):
            n = int(mask[i].sum())
            assert mask[i, :n].all(), "real tokens come first"
            items.append({k: v[i, :n] if v.shape[:2] == mask.shape else v[i] for k, v in prefix.items()})
    length = max(int(it["mask"].shape[0]) for it in items) + extra
    out: dict[str, torch.Tensor] = {}
    for key in items[0]:
        per_token = prefixes[0][key].shape[:2] == prefixes[0]["mask"].shape
        if not per_token:
            out[key] = torch.stack([it[key] for it in items])
            continue
        padded = []
        for it in items:
            t = it[key]
            pad = torch.full((length - t.shape[0], *t.shape[1:]), fill, dtype=t.dtype)
            if key == "mask" or t.dtype in (torch.long, torch.int):
                pad = torch.zeros_like(pad)
            padded.append(torch.cat([t, pad]))
        out[key] = torch.stack(padded)  # (B, length, ...)
    return out


def calls(enc: Encoder, run: Any, *args: Any) -> tuple[Any, set[int]]:
    """`run(*args)`, and the ids of the parameter-owning modules of enc's layer groups it called."""
    called: set[int] = set()
    handles = [m.register_forward_hook(lambda mod, _i, _o: called.add(id(mod)))
               for g in enc.layer_groups() for m in g if not isinstance(m, ParameterGroup)]
    try:
        result = run(*args)
    finally:
        for h in handles:
            h.remove()
    return result, called


@contextmanager
def lively_vectors(enc: Encoder) -> Iterator[None]:
    """Norm scales, biases and layer scales drawn from U(0.5, 1.5) for the block, then restored.

    Random builds start timm-style with some of them constant (ResNet's last BN scale of each block
    is 0, ConvNeXt's layer scale 1e-6), which makes blocks near-identities that hide a wrong split.
    """
    vectors = [p for p in enc.parameters() if p.ndim <= 1]
    saved = [p.detach().clone() for p in vectors]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in vectors:
            p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, old in zip(vectors, saved, strict=True):
                p.copy_(old)


def group_modules(groups: list[list[torch.nn.Module]]) -> set[int]:
    return {id(m) for g in groups for m in g if not isinstance(m, ParameterGroup)}


@pytest.mark.parametrize("name", NAMES)
def test_which_encoders_split_into_prefix_and_top(name: str):
    assert build(name).supports_prefix() == (name not in NO_PREFIX)


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_top_of_prefix_is_forward(name: str):
    """top_forward(prefix_forward(batch, k), k) == forward(batch), and the prefix runs exactly the groups below k."""
    enc = build(name)
    with lively_vectors(enc):
        check_split(enc, sample_batch(enc))


def check_split(enc: Encoder, batch: dict[str, torch.Tensor]) -> None:
    groups = enc.layer_groups()
    with torch.no_grad():
        ref = enc(batch)
    assert torch.isfinite(ref.pooled).all() and torch.isfinite(ref.tokens).all()
    for k in (1, 2, len(groups)):
        below, top = group_modules(groups[: len(groups) - k]), group_modules(groups[len(groups) - k :])
        prefix, called = calls(enc, enc.prefix_forward, batch, k)
        assert called == below, f"k={k}: the prefix must run exactly the groups below the top k"
        assert prefix and all(not t.requires_grad for t in prefix.values())
        assert all(t.shape[0] == 2 for t in prefix.values()), "batch dimension first"
        if "mask" in prefix:
            assert prefix["mask"].dtype == torch.bool and prefix["mask"].ndim == 2
        out, called = calls(enc, enc.top_forward, prefix, k)
        assert called == top, f"k={k}: the top must run exactly the top k groups"
        assert out.pooled.requires_grad  # (tokens may not: ConvNeXt's top group 1 is its head norm alone)
        assert_same_output(out, ref)
        if "mask" in prefix:  # a cache strips padding per item and batches items again, padded with zeros or not
            for extra, fill in ((2, 0.0), (0, 1e3)):  # zeros up to a longer length; garbage in place
                assert_same_real_tokens(enc.top_forward(rebatch([prefix], extra, fill), k), ref)


@pytest.mark.parametrize("name", ["minilm", "efficientnet_lite0"])
def test_pretrained_prefix_cached_per_item_gives_the_batch_forward(name: str):
    """Real weights; each item's prefix computed alone (as a per-record cache does), then batched for the top."""
    enc = jftzoo.get_encoder(name)
    assert enc.pretrained and enc.supports_prefix()
    if enc.modality == "text":
        items: list[Any] = ["great", "what a lovely day at the beach with friends", "meh, not sure about this one"]
    else:
        items = [Image.new("RGB", (200 + 30 * i, 240), (60 * i, 120, 200 - 50 * i)) for i in range(3)]
    batch = enc.preprocess(items)
    with torch.no_grad():
        ref = enc(batch)
    for k in (1, 2):
        assert_same_output(enc.top_forward(enc.prefix_forward(batch, k), k), ref)
        singles = [enc.prefix_forward(enc.preprocess([x]), k) for x in items]
        if enc.modality == "text":
            assert_same_real_tokens(enc.top_forward(rebatch(singles), k), ref)
        else:
            joined = {key: torch.cat([p[key] for p in singles]) for key in singles[0]}
            out = enc.top_forward(joined, k)
            torch.testing.assert_close(out.pooled, ref.pooled, atol=1e-5, rtol=0)
            torch.testing.assert_close(out.tokens, ref.tokens, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["distilbert", "bert", "resnet50", "vit"])
def test_prefix_is_eval_mode_while_the_top_trains(name: str):
    """In train mode the prefix still computes as in eval mode (no dropout), and every module's mode survives."""
    enc = build(name)
    batch = sample_batch(enc)
    expected = enc.prefix_forward(batch, 2)
    try:
        enc.train()
        torch.manual_seed(1)
        got = enc.prefix_forward(batch, 2)
        assert all(m.training for m in enc.modules())
    finally:
        enc.eval()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_encoders_without_the_split_say_so():
    class Plain(Encoder):
        modality = "text"

    enc = Plain("plain")
    assert not enc.supports_prefix()
    with pytest.raises(NotImplementedError):
        enc.prefix_forward({}, 1)
    with pytest.raises(NotImplementedError):
        enc.top_forward({}, 1)
    with pytest.raises(NotImplementedError, match="mpnet"):
        build("mpnet").prefix_forward(sample_batch(build("mpnet")), 1)
    with pytest.raises(ValueError, match="k must be"):
        build("minilm").prefix_forward(sample_batch(build("minilm")), 0)
