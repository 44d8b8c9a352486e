"""Frozen encoder outputs computed once per record (jftzoo.features) and used by frozen training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import jftzoo
from jftzoo.datasets import load_dataset
from jftzoo.features import FeatureStore, encoder_fingerprint, item_digest
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head
from jftzoo.train.model import FusionModel
from jftzoo.train.trainer import TrainConfig, fit, predict_proba


@pytest.fixture(scope="module")
def records():
    ds = load_dataset("emoji-sentiment")
    by_label = {label: [r for r in ds.records if r.label == label][:5] for label in ds.labels}
    return [r for rs in by_label.values() for r in rs], ds.labels


@pytest.fixture(scope="module")
def encoders():
    return jftzoo.get_encoder("minilm"), jftzoo.get_encoder("efficientnet_lite0")


def test_each_item_is_encoded_once_and_outputs_match_the_encoder(records, encoders):
    recs, _ = records
    text, vision = encoders
    store = FeatureStore(batch_size=4)
    texts = [r.text for r in recs]
    first = store.features(text, texts, tokens=True)
    assert store.encoded["minilm"] == len(set(texts)) and store.passes["minilm"] == 1
    again = store.features(text, list(reversed(texts)), tokens=True)  # any order, nothing recomputed
    assert store.encoded["minilm"] == len(set(texts)) and store.passes["minilm"] == 1
    assert torch.equal(again.pooled, first.pooled.flip(0))
    with torch.inference_mode():
        direct = text(text.preprocess(texts[:3]))
    out = first.batch([0, 1, 2])
    torch.testing.assert_close(out.pooled, direct.pooled, atol=1e-5, rtol=1e-4)
    for i in range(3):  # padding removed per item, re-padded per batch with a matching mask
        n = int(direct.mask[i].sum())
        assert int(out.mask[i].sum()) == n
        torch.testing.assert_close(out.tokens[i, :n], direct.tokens[i, :n], atol=1e-5, rtol=1e-4)
    images = store.features(vision, [r.image for r in recs[:4]])
    assert images.pooled.shape == (4, vision.embed_dim) and images.tokens is None
    assert store.encoded["efficientnet_lite0"] == 4


def test_pooled_entries_are_extended_with_tokens_when_a_head_needs_them(records, encoders):
    recs, _ = records
    text, _ = encoders
    store = FeatureStore()
    store.features(text, [r.text for r in recs[:3]])
    assert store.passes["minilm"] == 1
    got = store.features(text, [r.text for r in recs[:3]], tokens=True)
    assert store.passes["minilm"] == 2 and got.tokens is not None and all(t.shape[1] == 384 for t in got.tokens)


def test_keys_follow_content_and_weights_not_ids(records, encoders, tmp_path):
    recs, _ = records
    text, _ = encoders
    copy = tmp_path / "copy.png"
    copy.write_bytes(recs[0].image.read_bytes())
    assert item_digest(copy) == item_digest(recs[0].image)
    assert item_digest("a") != item_digest("b")
    other = jftzoo.get_encoder("minilm", pretrained=False)  # same name, other weights
    assert encoder_fingerprint(other) != encoder_fingerprint(text)
    store = FeatureStore()
    store.features(text, ["one post"])
    with torch.no_grad():
        p = next(text.parameters())
        p.add_(1.0)
        try:
            store.features(text, ["one post"])  # the weights changed: a new fingerprint, so re-encoded
        finally:
            p.sub_(1.0)
    assert store.passes["minilm"] == 2


@pytest.mark.parametrize("head", ["concat", "xattn"])
def test_frozen_training_on_cached_outputs_predicts_like_the_full_model(records, encoders, head):
    recs, labels = records
    text, vision = encoders
    torch.manual_seed(0)
    cfg = HeadConfig(n_classes=3, text_dim=text.embed_dim, vision_dim=vision.embed_dim,
                     text_token_dim=text.token_dim, vision_token_dim=vision.token_dim, d=32, hidden=32)
    model = FusionModel(text, vision, build_head(head, cfg))
    store = FeatureStore()
    fit(model, recs, labels, TrainConfig(mode="frozen", min_epochs=2, max_epochs=2, batch_size=4), features=store)
    # Two epochs plus validation ran the encoders once per record, not once per epoch.
    assert store.encoded["minilm"] == len(recs) and store.encoded["efficientnet_lite0"] == len(recs)
    via_store = predict_proba(model, recs, features=store)
    assert store.encoded["minilm"] == len(recs)  # prediction reused them too
    np.testing.assert_allclose(via_store, predict_proba(model, recs), atol=1e-5)  # the full forward agrees


def test_disk_cache_serves_a_second_run_and_recovers_from_corrupt_entries(records, encoders, tmp_path):
    from jftzoo.cache import DiskCache

    recs, _ = records
    text, _ = encoders
    texts = [r.text for r in recs[:6]]
    first = FeatureStore(cache=DiskCache(tmp_path))
    want = first.features(text, texts, tokens=True)
    assert first.encoded["minilm"] == 6
    second = FeatureStore(cache=DiskCache(tmp_path))  # a new run: nothing in memory, all on disk
    got = second.features(text, texts, tokens=True)
    assert second.encoded["minilm"] == 0 and second.passes["minilm"] == 0
    assert torch.equal(got.pooled, want.pooled)
    assert all(torch.equal(a, b) for a, b in zip(got.tokens, want.tokens, strict=True))
    files = sorted(tmp_path.glob("embeddings/minilm/*/*/*.safetensors"))
    assert len(files) == 6
    files[0].write_bytes(files[0].read_bytes()[:-40])  # truncated
    raw = bytearray(files[1].read_bytes())
    raw[-5] ^= 0xFF  # one flipped bit in a tensor
    files[1].write_bytes(bytes(raw))
    third_cache = DiskCache(tmp_path)
    third = FeatureStore(cache=third_cache)
    again = third.features(text, texts, tokens=True)
    assert third_cache.corrupt["minilm"] == 2 and third.encoded["minilm"] == 2  # only the broken two re-ran
    torch.testing.assert_close(again.pooled, want.pooled, atol=1e-5, rtol=1e-4)
    info = DiskCache(tmp_path).info()
    assert [(i.encoder, i.entries) for i in info] == [("minilm", 6)] and info[0].fingerprint == first.fingerprint(text)
    assert DiskCache(tmp_path).clear() == (6, info[0].bytes) and DiskCache(tmp_path).info() == []


def test_a_preprocessing_change_is_never_served_stale_outputs(encoders):
    text, _ = encoders
    long_text = "a long post " * 40  # far more than 8 word pieces
    store = FeatureStore()
    before = store.features(text, [long_text]).pooled
    assert store.encoded["minilm"] == 1
    old = text.max_length
    text.max_length = 8
    try:
        after = store.features(text, [long_text]).pooled  # same encoder object, same weights
    finally:
        text.max_length = old
    assert store.encoded["minilm"] == 2  # re-encoded under the new preprocessing
    assert not torch.allclose(before, after, atol=1e-3)
    with torch.inference_mode():
        text.max_length = 8
        try:
            direct = text(text.preprocess([long_text])).pooled
        finally:
            text.max_length = old
    torch.testing.assert_close(after, direct, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(store.features(text, [long_text]).pooled, before)  # the old length: the old entry
    assert store.encoded["minilm"] == 2


def test_the_vocabulary_is_hashed_once_per_tokenizer(encoders, monkeypatch):
    text, _ = encoders
    tok = text.tokenizer
    calls = []
    real = tok.get_vocab
    monkeypatch.setattr(tok, "get_vocab", lambda: calls.append(1) or real())
    text._vocab_hash = None
    first = text.preprocess_config()
    assert text.preprocess_config() == first and len(calls) == 1  # memoised
    monkeypatch.setattr(text, "_tokenizer", type(tok).from_pretrained(tok.name_or_path, local_files_only=True))
    assert text.preprocess_config()["vocab"] == first["vocab"] and len(calls) == 1  # not the spied object
    assert text._vocab_hash[0] is text._tokenizer  # a new tokenizer object was hashed anew


def test_the_fingerprint_names_the_preprocessing_library_versions(encoders, monkeypatch):
    from importlib import metadata

    from jftzoo.features import describe_encoder

    text, _ = encoders
    described = describe_encoder(text)
    want = {name: metadata.version(name) for name in ("torch", "transformers", "timm", "tokenizers", "Pillow")}
    assert described["libraries"] == want
    fp = encoder_fingerprint(text)
    real = metadata.version

    def fake(name: str) -> str:
        if name == "tokenizers":
            return "0.0.1"
        if name == "Pillow":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", fake)
    changed = describe_encoder(text)["libraries"]
    assert changed["tokenizers"] == "0.0.1" and changed["Pillow"] is None and changed["torch"] == want["torch"]
    assert encoder_fingerprint(text) != fp


def test_a_pass_cut_at_batch_boundaries_gives_the_floats_of_one_pass(encoders):
    """What `bench --executor ray` relies on: `pending` lists a pass in its encoding order, and slices of it at
    multiples of the batch size, encoded apart (as Ray workers do), make the same batches as one pass."""
    text = encoders[0]
    items = [r.text for r in load_dataset("emoji-sentiment").records[:70]]  # varied lengths, 9 batches of 8
    whole = FeatureStore(batch_size=8)
    expected = whole.features(text, items).pooled
    parts = FeatureStore(batch_size=8)
    planned: set[str] = set()
    order = parts.pending(text, items, planned=planned)
    assert len(order) == len({item_digest(x) for x in items if x}) and len(planned) == len(order)
    assert parts.pending(text, items, planned=planned) == []  # already planned: nothing twice
    for start in range(0, len(order), 16):  # two batches a slice, as a worker would take it
        parts.features(text, [x for _, x in order[start : start + 16]])
    assert parts.encoded[text.name] == len(order)
    assert torch.equal(parts.features(text, items).pooled, expected)  # all from memory now, bit for bit
