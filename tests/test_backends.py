"""Frozen-pass backends: OpenVINO for timm vision encoders, same embeddings, cached apart from PyTorch's."""

from __future__ import annotations

import pytest
import torch

import jftzoo
from jftzoo import backends
from jftzoo.datasets import load_dataset
from jftzoo.errors import UsageError
from jftzoo.features import FeatureStore


def _images(n: int = 6) -> list:
    return [r.image for r in load_dataset("emoji-sentiment").records[:n]]


def test_openvino_frozen_pass_matches_pytorch_and_is_keyed_apart():
    enc = jftzoo.get_encoder("efficientnet_lite0")
    images = _images()
    torch_store, ov_store = FeatureStore(), FeatureStore(backend="openvino")
    ref = torch_store.features(enc, images, tokens=True)
    got = ov_store.features(enc, images, tokens=True)
    cos = torch.nn.functional.cosine_similarity(ref.pooled, got.pooled, dim=-1)
    assert cos.min() >= 0.999
    assert all(torch.allclose(a, b, atol=1e-3) for a, b in zip(ref.tokens, got.tokens, strict=True))
    assert ov_store.fingerprint(enc) != torch_store.fingerprint(enc)  # never served as PyTorch's outputs
    assert backends.resolve("openvino", enc) == "openvino"


def test_text_encoders_stay_on_pytorch_under_every_setting():
    enc = jftzoo.get_encoder("minilm")
    assert backends.resolve("openvino", enc) == backends.resolve("auto", enc) == "pytorch"
    assert FeatureStore(backend="auto").fingerprint(enc) == FeatureStore().fingerprint(enc)


def test_missing_openvino_is_a_usage_error_and_auto_falls_back(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda name: name == "pytorch")
    with pytest.raises(UsageError, match=r"jftzoo\[openvino\]"):
        FeatureStore(backend="openvino")
    enc = jftzoo.get_encoder("efficientnet_lite0")
    assert backends.resolve("auto", enc) == "pytorch"
    with pytest.raises(UsageError, match="openvino"):
        backends.check_backend("openvno")
