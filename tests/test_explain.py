"""jftzoo explain: modality Shapley values and shares, ablation, integrated gradients, cards, CLI, bench column."""

from __future__ import annotations

import functools
import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import jftzoo
from jftzoo.cli import cli
from jftzoo.datasets import load_dataset
from jftzoo.datasets.records import Record
from jftzoo.explain import explain_dataset, explain_record
from jftzoo.explain.shapley import COALITIONS, pooled_share, record_shares, shapley
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head
from jftzoo.train.model import FusionModel
from jftzoo.train.trainer import TrainConfig, fit

LABELS = ["negative", "positive"]


def test_shapley_efficiency_is_exact() -> None:
    rng = np.random.default_rng(0)
    values = {c: rng.random(50) for c in COALITIONS}
    phi = shapley(values)
    np.testing.assert_allclose(phi.text + phi.image, values["both"] - values["none"], rtol=0, atol=1e-12)
    # the symmetric formula: a modality that changes nothing gets exactly 0
    flat = shapley({"none": np.zeros(3), "text": np.ones(3), "image": np.zeros(3), "both": np.ones(3)})
    np.testing.assert_array_equal(flat.image, 0) and np.testing.assert_array_equal(flat.text, 1)


def test_shares_sum_to_one_and_pool_as_a_ratio_of_sums() -> None:
    phi = shapley({"none": np.zeros(3), "text": np.array([0.3, 0.0, 0.0]), "image": np.array([0.1, 0.0, -0.2]),
                   "both": np.array([0.4, 0.0, -0.2])})
    shares = record_shares(phi)
    np.testing.assert_allclose(shares, [0.75, 0.5, 0.0])  # 0.5 where neither modality moved anything
    assert pooled_share(phi) == pytest.approx(0.3 / (0.3 + 0.1 + 0.2))


def _noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def _colour(label: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.array([200, 30, 30] if label else [30, 30, 200])
    return Image.fromarray(np.clip(base + rng.integers(-20, 20, (64, 64, 3)), 0, 255).astype(np.uint8))


POSITIVE = ["I love this, wonderful day", "what a great happy moment", "so glad and grateful", "best day ever, amazing"]
NEGATIVE = ["I hate this, awful day", "what a terrible sad moment", "so angry and upset", "worst day ever, horrible"]
FILLER = ["a photo", "the picture", "an image taken today", "this one", "look at it", "posted"]


def _dataset(carrier: str, n: int = 48) -> list[Record]:
    records = []
    for i in range(n):
        y = i % 2
        if carrier == "text":
            text, image = (POSITIVE if y else NEGATIVE)[i // 2 % 4], _noise(i)
        else:
            text, image = FILLER[i // 2 % 6], _colour(y, i)  # the same filler for both labels
        records.append(Record(str(i), text, image, LABELS[y]))
    return records


@functools.cache
def _trained(carrier: str) -> tuple[FusionModel, tuple[Record, ...]]:
    torch.manual_seed(0)
    text, vision = jftzoo.get_encoder("minilm"), jftzoo.get_encoder("efficientnet_lite0")
    cfg = HeadConfig(n_classes=2, text_dim=text.embed_dim, vision_dim=vision.embed_dim, d=32, hidden=32, dropout=0.0)
    model = FusionModel(text, vision, build_head("concat", cfg))
    records = _dataset(carrier)
    fit(model, records[:36], LABELS, TrainConfig(mode="frozen", max_epochs=30, min_epochs=30, batch_size=12,
                                                  lr_head=3e-3), validation=records[36:42])
    return model, tuple(records[36:])


@pytest.mark.parametrize(("carrier", "share_key"), [("text", "text"), ("image", "image")])
def test_the_modality_that_carries_the_label_gets_the_share(carrier: str, share_key: str) -> None:
    model, test = _trained(carrier)
    result = explain_dataset(model, list(test), labels=LABELS, resamples=100)
    assert result.ablation["both"]["accuracy"]["value"] == 1.0  # the constructed task is learnt
    assert result.modality_shares[share_key] >= 0.9, result.modality_shares
    assert result.modality_shares["text"] + result.modality_shares["image"] == pytest.approx(1.0)
    # the ablation agrees: the carrying modality alone keeps the accuracy
    alone = "text only" if carrier == "text" else "image only"
    assert result.ablation[alone]["accuracy"]["value"] == 1.0
    lo, hi = result.ablation["both"]["f1_macro"]["ci"]
    assert lo <= result.ablation["both"]["f1_macro"]["value"] <= hi
    # per record, efficiency holds against the coalition probabilities of the predicted class
    for rx in result.records:
        p_both, p_none = rx.coalitions["both"][rx.label], rx.coalitions["none"][rx.label]
        assert rx.shapley["text"] + rx.shapley["image"] == pytest.approx(p_both - p_none, abs=1e-6)
        assert rx.shapley_loss is not None


def test_the_mean_baseline_needs_and_uses_reference_records() -> None:
    model, test = _trained("text")
    result = explain_dataset(model, list(test), labels=LABELS, baseline="mean", resamples=10)
    assert result.baseline == "mean" and result.modality_shares["text"] >= 0.9
    with pytest.raises(jftzoo.UsageError, match="Did you mean 'mean'"):
        explain_dataset(model, list(test), labels=LABELS, baseline="meen")


@functools.cache
def _random_pair() -> FusionModel:
    torch.manual_seed(1)
    text = jftzoo.get_encoder("minilm", pretrained=False)
    vision = jftzoo.get_encoder("efficientnet_lite0", pretrained=False)
    cfg = HeadConfig(n_classes=3, text_dim=text.embed_dim, vision_dim=vision.embed_dim,
                     text_token_dim=text.token_dim, vision_token_dim=vision.token_dim, d=32, hidden=32, dropout=0.0)
    return FusionModel(text, vision, build_head("gated", cfg)).eval()


def test_integrated_gradients_are_complete_on_a_random_pair(tmp_path) -> None:
    model = _random_pair()
    record = Record("r1", "the weather is lovely today", _colour(1, 3), "?")
    rx = explain_record(model, record=record, labels=["a", "b", "c"], n_steps=64)
    assert [w for w, _ in rx.words] == ["the", "weather", "is", "lovely", "today"]
    for modality in ("text", "image"):
        c = rx.completeness[modality]
        # the stated tolerance (docs/explain.md): 5 % of the logit change, plus 1e-3 for changes near 0
        assert abs(c["error"]) <= 0.05 * abs(c["logit_difference"]) + 1e-3, (modality, c)
    assert sum(a for _, a in rx.words) == pytest.approx(rx.completeness["text"]["attribution_sum"], rel=1e-5)
    assert np.asarray(rx.regions).shape == (7, 7)  # EfficientNet-Lite0's 7x7 positions at 224 px
    assert rx.modality_weights is not None and sum(rx.modality_weights.values()) == pytest.approx(1.0)


def test_heads_report_modality_weights_that_sum_to_one() -> None:
    text, vision = jftzoo.EncoderOutput, None  # noqa: F841 (names for readability)
    torch.manual_seed(0)
    from jftzoo.encoders.base import EncoderOutput

    cfg = HeadConfig(n_classes=3, text_dim=8, vision_dim=6, text_token_dim=8, vision_token_dim=6, d=16, hidden=16)
    t = EncoderOutput(torch.randn(4, 8), torch.randn(4, 5, 8), torch.tensor([[1, 1, 1, 0, 0]] * 4).bool())
    v = EncoderOutput(torch.randn(4, 6), torch.randn(4, 9, 6), torch.ones(4, 9, dtype=torch.bool))
    for name in ("gated", "attention", "xattn"):
        head = build_head(name, cfg).eval()
        w = head.modality_weights(t, v)
        assert w.shape == (4, 2) and torch.allclose(w.sum(-1), torch.ones(4), atol=1e-5), name
    gated = build_head("gated", cfg).eval()
    gated(t, v)
    assert torch.allclose(gated.modality_weights(t, v), gated.last_weights)
    assert build_head("concat", cfg).modality_weights(t, v) is None


def test_cards_keep_the_aspect_ratio_and_differ_between_records(tmp_path) -> None:
    from jftzoo.explain.card import card_figure, draw_card

    model = _random_pair()
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 300, 3), dtype=np.uint8))
    rx = explain_record(model, record=Record("wide", "a very wide picture", wide, "?"), labels=["a", "b", "c"],
                        n_steps=8)
    fig = card_figure(rx, wide, model.vision)
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_window_extent()
    assert box.width / box.height == pytest.approx(3.0, rel=0.03)
    other = explain_record(model, record=Record("tall", "another post", _colour(0, 9), "?"), labels=["a", "b", "c"],
                           n_steps=8)
    a, b = draw_card(rx, wide, model.vision, tmp_path), draw_card(other, _colour(0, 9), model.vision, tmp_path)
    assert a.name == "wide.png" and b.name == "tall.png"
    assert a.read_bytes() != b.read_bytes()
    assert Image.open(io.BytesIO(a.read_bytes())).size == (1320, 660)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from jftzoo.datasets.splits import ratio_split, write_split
    from jftzoo.train.classifier import FusionClassifier

    ds = load_dataset("emoji-sentiment")
    split = ratio_split(ds, "8:1:1", 0)
    by_id = ds.by_id()
    train = [by_id[i] for i in split.parts["train"]][:40]
    clf = FusionClassifier(fusion="gated", mode="frozen", head={"d": 16, "hidden": 16}, min_epochs=1, max_epochs=1,
                           batch_size=16)
    clf.fit(ds.subset(train))
    out = tmp_path_factory.mktemp("model") / "m"
    clf.save(out, extra={"data": "emoji-sentiment"})
    write_split(split, out / "split.json")
    return out


def test_explain_cli_on_a_dataset(model_dir, tmp_path) -> None:
    out = tmp_path / "ex"
    result = CliRunner().invoke(cli, ["explain", str(model_dir), "--limit", "10", "--cards", "1", "--steps", "4",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {"modality_shares", "per_class", "ablation", "modality_weights"} <= set(payload)
    assert payload["n"] == 10 and "test part" in payload["data"]
    assert payload["baseline"] == "mean"  # auto: a frozen model, with its split's training part as reference
    assert payload["modality_shares"]["text"] + payload["modality_shares"]["image"] == pytest.approx(1.0)
    assert set(payload["ablation"]) == {"both", "text only", "image only"}
    assert len(payload["cards"]) == 1 and (out / "shares.png").is_file()
    saved = json.loads((out / "explanation.json").read_text())
    assert len(saved["records"]) == 10
    bad = CliRunner().invoke(cli, ["explain", str(model_dir), "--ids", "nope", "--limit", "3", "--out", str(out)])
    assert bad.exit_code == 2 and "not among the explained records" in bad.output


def test_explain_cli_on_one_post(model_dir, tmp_path) -> None:
    image = tmp_path / "post.png"
    _colour(1, 0).save(image)
    result = CliRunner().invoke(cli, ["explain", str(model_dir), "--text", "sunny and happy", "--image", str(image),
                                      "--steps", "4", "--out", str(tmp_path / "ex"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {"label", "probs", "shapley", "modality_shares", "words", "card"} <= set(payload)
    assert [w for w, _ in payload["words"]] == ["sunny", "and", "happy"]
    assert payload["modality_shares"]["image"] == pytest.approx(1 - payload["modality_shares"]["text"])
    assert Image.open(payload["card"]).size == (1320, 660)
    half = CliRunner().invoke(cli, ["explain", str(model_dir), "--text", "only text", "--steps", "4", "--out",
                                    str(tmp_path / "half"), "--json"])
    assert half.exit_code == 0, half.output  # a post without an image: its image contributed nothing
    assert json.loads(half.output)["shapley"]["image"] == 0.0


def test_bench_explain_adds_the_text_share_column(tmp_path) -> None:
    out = tmp_path / "bench"
    result = CliRunner().invoke(cli, ["bench", "--fusion", "concat", "--split", "8:1:1", "--limit", "40",
                                      "--epochs", "1", "--explain", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    explained = {r["fusion"]: r["explain"]["text_share"] for r in records if "explain" in r}
    assert set(explained) == {"concat", "text-only", "image-only"}
    assert explained["text-only"] == 1.0 and explained["image-only"] == 0.0
    assert "| text share |" in (out / "summary.md").read_text()
