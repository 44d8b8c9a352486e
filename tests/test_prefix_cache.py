"""top-k with a cached frozen prefix: the same training as running every layer, computed once per record."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import jftzoo
from jftzoo.datasets import load_dataset
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head
from jftzoo.train.model import FusionModel
from jftzoo.train.prefix import PrefixStore
from jftzoo.train.trainer import TrainConfig, fit


@functools.cache
def records() -> tuple:
    ds = load_dataset("emoji-sentiment")
    by_label = {label: [r for r in ds.records if r.label == label][:5] for label in ds.labels}
    recs = [r for rs in by_label.values() for r in rs]
    return tuple(recs[::3]), tuple(r for i, r in enumerate(recs) if i % 3), ds.labels  # val, train, labels


def model(pretrained: bool = True) -> FusionModel:
    torch.manual_seed(0)
    text = jftzoo.get_encoder("minilm", pretrained=pretrained)
    vision = jftzoo.get_encoder("efficientnet_lite0", pretrained=pretrained)
    cfg = HeadConfig(3, text.embed_dim, vision.embed_dim, d=16, hidden=16, dropout=0.1)
    return FusionModel(text, vision, build_head("gated", cfg))


@pytest.mark.parametrize("pretrained", [False, True])  # a random-weight pair and the real one
def test_cached_and_uncached_top_k_give_the_same_losses(pretrained: bool):
    val, train, labels = records()
    histories, notes = [], []
    for cached in (False, True):
        cfg = TrainConfig(mode="top-k", top_k=2, min_epochs=2, max_epochs=2, batch_size=4, lr_encoder=1e-4,
                          workers=0, prefix_cache=cached)
        result = fit(model(pretrained), list(train), labels, cfg, validation=list(val),
                     progress=lambda e: notes.append(e["message"]) if e["event"] == "note" else None)
        histories.append([(h["train_loss"], h["val_loss"]) for h in result.history])
    np.testing.assert_allclose(histories[0], histories[1], rtol=0, atol=2e-5)  # dropout in the top acts in both
    assert len(notes) == 1 and "prefix_cache=False" in notes[0]  # the uncached path says so, once


def test_the_prefix_runs_once_per_record_and_is_shared_between_fits():
    val, train, labels = records()
    store = PrefixStore()
    cfg = TrainConfig(mode="top-k", top_k=1, min_epochs=1, max_epochs=1, batch_size=4, workers=0)
    first = model()
    fit(first, list(train), labels, cfg, validation=list(val), prefix_store=store)
    n = len(train) + len(val)
    assert dict(store.encoded) == {"minilm": n, "efficientnet_lite0": n} and store.nbytes > 0
    fit(model(), list(train), labels, cfg, validation=list(val), prefix_store=store)  # another head, same encoders
    assert dict(store.encoded) == {"minilm": n, "efficientnet_lite0": n}  # nothing computed again
    half = PrefixStore("float16")
    fit(model(), list(train), labels, cfg, validation=list(val), prefix_store=half)
    assert half.nbytes * 2 == store.nbytes  # float16 storage: half the memory


def test_an_encoder_without_the_split_falls_back_with_a_note(monkeypatch):
    val, train, labels = records()
    m = model()
    monkeypatch.setattr(type(m.vision), "supports_prefix", lambda self: False)
    notes = []
    cfg = TrainConfig(mode="top-k", top_k=1, min_epochs=1, max_epochs=1, batch_size=4, workers=0)
    fit(m, list(train), labels, cfg, validation=list(val),
        progress=lambda e: notes.append(e["message"]) if e["event"] == "note" else None)
    assert notes == ["top-k runs every layer each step (no prefix cache): encoder 'efficientnet_lite0' does not "
                     "implement prefix_forward/top_forward"]


def test_train_cli_says_when_top_k_runs_uncached(tmp_path):
    import json

    from click.testing import CliRunner

    from jftzoo.cli import cli

    val, train, _ = records()
    root = tmp_path / "posts"
    (root / "img").mkdir(parents=True)
    lines = []
    for r in (*train, *val):
        (root / "img" / r.image.name).write_bytes(r.image.read_bytes())
        lines.append(json.dumps({"id": r.id, "text": r.text, "image": f"img/{r.image.name}", "label": r.label}))
    (root / "posts.jsonl").write_text("\n".join(lines) + "\n")
    args = ["train", "--fusion", "concat", "--mode", "top-k", "--top-k", "1", "--data", f"jsonl:{root / 'posts.jsonl'}",
            "--split", "3:1:1", "--groups", "none", "--epochs", "1", "--batch-size", "4", "--workers", "0"]
    res = CliRunner().invoke(cli, [*args, "--no-prefix-cache", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "note: top-k runs every layer each step (no prefix cache): turned off" in res.output
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b")])
    assert res.exit_code == 0 and "note:" not in res.output
    saved = json.loads((tmp_path / "b" / "config.json").read_text())["train"]
    assert saved["prefix_cache"] is True and saved["workers"] == 0 and saved["bucketing"] is True


def test_records_to_score_are_predicted_through_the_cached_prefix():
    """A bench's test part goes through the cached prefix: the same probabilities as the full forward,
    while only the top groups run (the prefix of those records is computed once, never trained on)."""
    from jftzoo.train.trainer import predict_proba, prefix_proba

    val, train, labels = records()
    score = list(val[:3]) + list(train[:2])
    store = PrefixStore()
    fitted = model()
    result = fit(fitted, list(train), labels, TrainConfig(mode="top-k", top_k=1, min_epochs=1, max_epochs=1,
                                                          batch_size=4, workers=0),
                 validation=list(val), prefix_store=store, score=score)
    assert result.prefix is not None and result.prefix.size("score") == len(score)
    cached = prefix_proba(fitted, result.prefix, "score", 2)
    np.testing.assert_allclose(cached, predict_proba(fitted, score, 2), rtol=0, atol=1e-5)
    n = len(train) + len(val)  # the scored records are all among them: nothing computed twice
    assert dict(store.encoded) == {"minilm": n, "efficientnet_lite0": n}
