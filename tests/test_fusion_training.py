"""Fusion heads and the joint trainer on a small real subset (the demo set, packaged pre-trained encoders)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jftzoo
from jftzoo.datasets import load_dataset
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head, fusion_specs, get_fusion_spec
from jftzoo.train.metrics import evaluate
from jftzoo.train.model import FusionModel
from jftzoo.train.trainer import TrainConfig, TrainingDivergedError, carve_validation, fit, predict_proba

HEADS = ["attention", "attention-paper", "xattn", "concat", "gated", "late", "text-only", "image-only"]


@functools.cache
def subset() -> tuple:
    ds = load_dataset("emoji-sentiment")
    by_label = {label: [r for r in ds.records if r.label == label][:6] for label in ds.labels}
    return tuple(r for rs in by_label.values() for r in rs), ds.labels


def make_model(head_name: str, seed: int = 0) -> FusionModel:
    torch.manual_seed(seed)
    text, vision = jftzoo.get_encoder("minilm"), jftzoo.get_encoder("efficientnet_lite0")
    cfg = HeadConfig(n_classes=3, text_dim=text.embed_dim, vision_dim=vision.embed_dim,
                     text_token_dim=text.token_dim, vision_token_dim=vision.token_dim, d=64, hidden=64, dropout=0.0)
    return FusionModel(text, vision, build_head(head_name, cfg))


def test_every_builtin_head_is_registered():
    assert set(HEADS) <= set(fusion_specs())
    assert get_fusion_spec("xattn").uses_tokens and get_fusion_spec("text-only").modalities == ("text",)
    with pytest.raises(jftzoo.UsageError, match="Did you mean 'concat'"):
        get_fusion_spec("concta")


@pytest.mark.parametrize("head", HEADS)
def test_head_trains_and_the_loss_falls(head: str):
    records, labels = subset()
    records = records[::2]  # 9 records, 3 per class: a few joint steps stay quick on 2 CPU cores
    model = make_model(head)
    model.set_mode("joint")
    batch = model.preprocess([r.text for r in records], [r.image for r in records])
    y = torch.tensor([labels.index(r.label) for r in records])
    opt = torch.optim.AdamW([{"params": model.head.parameters(), "lr": 1e-2},
                             {"params": model.encoder_parameters(), "lr": 1e-5}])
    model.train()
    losses = []
    for _ in range(6):
        loss = F.cross_entropy(model(batch), y)
        opt.zero_grad()
        loss.backward()
        if len(losses) == 0:  # one loss reaches exactly the encoders the head uses
            grads = {m: any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
                     for m, enc in (("text", model.text), ("vision", model.vision))}
            assert grads == {m: m in get_fusion_spec(head).modalities for m in ("text", "vision")}
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.05, losses


def test_gated_head_reports_modality_weights():
    records, _ = subset()
    model = make_model("gated").eval()
    with torch.no_grad():
        model(model.preprocess([r.text for r in records[:4]], [r.image for r in records[:4]]))
    w = model.head.last_weights
    assert w.shape == (4, 2) and torch.allclose(w.sum(1), torch.ones(4))


def test_paper_attention_over_one_token_is_a_projection():
    """With a length-1 sequence, attention weights are 1: permuting the batch changes nothing else."""
    head = build_head("attention-paper", HeadConfig(3, 8, 8, d=8, n_heads=2, dropout=0.0)).eval()
    x = torch.randn(5, 1, 16)
    attn = head.encoder.self_attn
    _, weights = attn(x, x, x, need_weights=True)
    assert torch.allclose(weights, torch.ones_like(weights))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_frozen_mode_leaves_encoders_bit_identical_and_joint_changes_both():
    records, labels = subset()
    cfg = TrainConfig(mode="frozen", min_epochs=1, max_epochs=1, batch_size=8, val_fraction=0.25)
    model = make_model("concat")
    before_t, before_v = snapshot(model.text), snapshot(model.vision)
    fit(model, records, labels, cfg)
    assert all(torch.equal(before_t[k], v) for k, v in model.text.state_dict().items())
    assert all(torch.equal(before_v[k], v) for k, v in model.vision.state_dict().items())

    model = make_model("concat")
    before_t, before_v = snapshot(model.text), snapshot(model.vision)
    cfg.mode, cfg.lr_encoder = "joint", 1e-4
    fit(model, records, labels, cfg)
    assert any(not torch.equal(before_t[k], v) for k, v in model.text.state_dict().items())
    assert any(not torch.equal(before_v[k], v) for k, v in model.vision.state_dict().items())


def test_top_k_trains_only_the_top_groups():
    model = make_model("concat")
    model.set_mode("top-k", top_k=(1, 2))
    for enc, k in ((model.text, 1), (model.vision, 2)):
        groups = enc.layer_groups()
        flags = [any(p.requires_grad for m in g for p in m.parameters()) for g in groups]
        assert flags == [False] * (len(groups) - k) + [True] * k


@pytest.mark.parametrize("mode", ["frozen", "joint"])  # frozen reads cached features; joint re-encodes
def test_early_stopping_never_sees_the_test_records(mode: str):
    records, labels = subset()
    test_ids = {r.id for r in records[::4]}
    train = [r for r in records if r.id not in test_ids]
    by_text = {r.text: r.id for r in records}
    seen: set[str] = set()
    model = make_model("concat")
    text_preprocess, vision_preprocess = model.text.preprocess, model.vision.preprocess

    def spy_text(texts):
        seen.update(by_text[t] for t in texts)
        return text_preprocess(texts)

    def spy_vision(images):
        seen.update(str(i).rsplit("/", 1)[-1].removesuffix(".png") for i in images)
        return vision_preprocess(images)

    model.text.preprocess, model.vision.preprocess = spy_text, spy_vision  # type: ignore[method-assign]
    cfg = TrainConfig(mode=mode, min_epochs=3, max_epochs=3, batch_size=8, val_fraction=0.25, lr_encoder=1e-5)
    result = fit(model, train, labels, cfg)
    assert seen and not (seen & test_ids)
    assert set(result.val_ids) <= {r.id for r in train} and len(result.history) == 3
    assert carve_validation(train, 0.25, 0)[1] == carve_validation(train, 0.25, 0)[1]  # seeded


def test_nan_loss_stops_with_a_clear_error():
    records, labels = subset()
    model = make_model("concat")
    with pytest.raises(TrainingDivergedError, match=r"became nan at epoch 1, step 1"):
        fit(model, records, labels, TrainConfig(batch_size=8), loss_hook=lambda loss: loss * float("nan"))


def test_training_is_deterministic_and_metrics_come_from_sklearn():
    records, labels = subset()
    cfg = TrainConfig(mode="frozen", min_epochs=1, max_epochs=1, batch_size=8, val_fraction=0.25)
    probs = []
    for _ in range(2):
        model = make_model("concat")
        fit(model, records, labels, cfg)
        probs.append(predict_proba(model, records))
    np.testing.assert_array_equal(probs[0], probs[1])
    y = [labels.index(r.label) for r in records]
    m = evaluate(y, probs[0], labels)
    assert 0.0 <= m["auc"] <= 1.0 and m["n"] == len(records) and len(m["confusion_matrix"]) == 3


def test_fusion_classifier_fit_predict_save_load_roundtrip(tmp_path):
    from jftzoo.train.classifier import FusionClassifier

    records, labels = subset()
    clf = FusionClassifier(text="minilm", vision="efficientnet_lite0", fusion="gated", mode="frozen",
                           head={"d": 32, "hidden": 32}, min_epochs=1, max_epochs=1, batch_size=8, val_fraction=0.25)
    X = [(r.text, r.image) for r in records]
    y = [r.label for r in records]
    clf.fit(X, y)
    assert list(clf.classes_) == sorted(labels)
    probs = clf.predict_proba(X)
    assert probs.shape == (len(X), 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert set(clf.predict(X)) <= set(labels)
    clf.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["text"]["source"] == "sentence-transformers/all-MiniLM-L6-v2" and config["fusion"] == "gated"
    assert {"jftzoo", "torch", "transformers", "timm"} <= set(config["versions"])
    loaded = FusionClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X), probs)
    assert list(loaded.classes_) == list(clf.classes_)
    with pytest.raises(jftzoo.JftzooError, match="not a jftzoo model folder"):
        FusionClassifier.load(tmp_path)


def test_train_and_predict_cli(tmp_path):
    from click.testing import CliRunner

    from jftzoo.cli import cli

    records, _ = subset()
    root = tmp_path / "posts"
    (root / "img").mkdir(parents=True)
    lines = []
    for r in records:
        (root / "img" / r.image.name).write_bytes(r.image.read_bytes())
        lines.append(json.dumps({"id": r.id, "text": r.text, "image": f"img/{r.image.name}", "label": r.label}))
    (root / "posts.jsonl").write_text("\n".join(lines) + "\n")
    data = f"jsonl:{root / 'posts.jsonl'}"
    out = tmp_path / "model"
    res = CliRunner().invoke(cli, ["train", "--fusion", "concat", "--data", data, "--split", "4:1:1", "--out", str(out),
                                   "--epochs", "1", "--min-epochs", "1", "--batch-size", "8", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["weights"] == "pretrained" and summary["test_records"] == 3 and 0 <= summary["accuracy"] <= 1
    assert (out / "model.safetensors").is_file() and (out / "split.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["metrics"]["test"]["n"] == 3 and config["labels"] == ["negative", "neutral", "positive"]
    res = CliRunner().invoke(cli, ["predict", str(out), "--data", data, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["id"] for r in rows] == [r.id for r in records]
    assert all(set(r["probs"]) == {"negative", "neutral", "positive"} for r in rows)
    assert CliRunner().invoke(cli, ["predict", str(out), "--text", "hi"]).exit_code == 2
    res = CliRunner().invoke(cli, ["predict", str(out), "--text", "hi", "--image", str(tmp_path / "nope.png")])
    assert res.exit_code == 1 and "nope.png" in res.output
    res = CliRunner().invoke(cli, ["train", "--fusion", "text-only", "--data", data, "--folds", "2", "--out",
                                   str(tmp_path / "cv"), "--epochs", "1", "--min-epochs", "1", "--json"])
    assert res.exit_code == 0, res.output
    cv = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert len(cv["folds"]) == 2 and "auc_std" in json.loads(res.output)
    res = CliRunner().invoke(cli, ["train", "--fusion", "concta", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "Did you mean 'concat'" in res.output


def test_a_plugin_can_register_a_fusion_head(register_plugin):
    from jftzoo import hookimpl
    from jftzoo.fusion.heads import ConcatHead
    from jftzoo.fusion.registry import FusionSpec

    class MyHead(ConcatHead):
        pass

    class Plugin:
        @hookimpl
        def register_fusions(self, register):
            register(FusionSpec("my-head", MyHead, "a third-party head"))
            register("not a spec")

    register_plugin(Plugin(), "heads-plugin")
    with pytest.warns(UserWarning, match="takes a FusionSpec"):
        spec = get_fusion_spec("my-head")
    assert spec.provider == "heads-plugin"
    assert isinstance(build_head("my-head", HeadConfig(2, 4, 4, d=8, n_heads=2)), MyHead)


def test_cross_validation_keeps_every_fold_and_reports_mean_and_std():
    from dataclasses import replace

    from jftzoo.train.classifier import FusionClassifier
    from jftzoo.train.cv import cross_validate

    records, _ = subset()
    ds = replace(load_dataset("emoji-sentiment"), records=list(records))

    def make() -> FusionClassifier:
        return FusionClassifier(fusion="concat", mode="frozen", head={"d": 16, "hidden": 16}, min_epochs=1,
                                max_epochs=1, batch_size=8, val_fraction=0.25)

    out = cross_validate(make, ds, folds=2, seed=0)
    assert [f["fold"] for f in out["folds"]] == ["fold0", "fold1"]
    assert sum(f["n"] for f in out["folds"]) == len(records)
    accs = [f["accuracy"] for f in out["folds"]]
    assert out["accuracy_mean"] == pytest.approx(np.mean(accs)) and out["accuracy_std"] == pytest.approx(np.std(accs))
    assert {"auc_mean", "auc_std", "f1_macro_mean", "f1_weighted_std"} <= set(out)


def test_no_bf16_autocast_on_cpu():
    import contextlib

    from jftzoo.train.trainer import autocast_for

    assert isinstance(autocast_for(torch.device("cpu")), contextlib.nullcontext)
