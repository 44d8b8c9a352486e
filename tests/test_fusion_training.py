"""Fusion heads and the joint trainer on a small real subset (the demo set, packaged pre-trained encoders)."""

from __future__ import annotations

import functools
import json
from dataclasses import replace

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


def write_posts(tmp_path, records, extra_lines: tuple[str, ...] = ()) -> str:
    """A jsonl manifest of `records` (images copied beside it) plus `extra_lines`; the --data argument."""
    root = tmp_path / "posts"
    (root / "img").mkdir(parents=True)
    lines = []
    for r in records:
        (root / "img" / r.image.name).write_bytes(r.image.read_bytes())
        lines.append(json.dumps({"id": r.id, "text": r.text, "image": f"img/{r.image.name}", "label": r.label}))
    (root / "posts.jsonl").write_text("\n".join([*lines, *extra_lines]) + "\n")
    return f"jsonl:{root / 'posts.jsonl'}"


def make_model(head_name: str, seed: int = 0) -> FusionModel:
    torch.manual_seed(seed)
    text, vision = jftzoo.get_encoder("minilm"), jftzoo.get_encoder("efficientnet_lite0")
    cfg = HeadConfig(n_classes=3, text_dim=text.embed_dim, vision_dim=vision.embed_dim,
                     text_token_dim=text.token_dim, vision_token_dim=vision.token_dim, d=64, hidden=64, dropout=0.0)
    head = build_head(head_name, cfg)
    if head_name == "attention-paper":  # it keeps the released dropout (0.4, 0.5) whatever cfg says: zero it here
        for m in head.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        head.encoder.self_attn.dropout = 0.0
    return FusionModel(text, vision, head)


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


@pytest.mark.parametrize("n_classes", [2, 3])
def test_paper_attention_has_the_released_architecture(n_classes: int):
    """DistilBERT (768) + ResNet-50 (2048) inputs: the released code's parameter count, whatever HeadConfig says."""
    c = n_classes
    proj = (768 * 32 + 32) + (2048 * 32 + 32)
    layer = (3 * 64 * 64 + 3 * 64) + (64 * 64 + 64) + (64 * 2048 + 2048) + (2048 * 64 + 64) + 2 * (64 + 64)
    classifier = (64 * 128 + 128) + (128 * c + c)
    head = build_head("attention-paper", HeadConfig(c, 768, 2048, d=256, hidden=256, n_heads=4, dropout=0.1))
    released = [p for n, p in head.named_parameters() if not n.startswith("missing_")]
    assert sum(p.numel() for p in released) == proj + layer + classifier
    assert (head.missing_text.numel(), head.missing_vision.numel()) == (768, 2048)  # jftzoo's: posts without one
    assert head.encoder.self_attn.num_heads == 8 and head.encoder.dropout.p == 0.4
    assert [m.p for m in head.classifier if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]


def test_paper_attention_is_one_token_through_the_layer():
    """Eval mode: attention over the single 64-d token is out_proj(v_proj(x)); the rest is written out by hand."""
    from jftzoo.encoders.base import EncoderOutput

    torch.manual_seed(0)
    head = build_head("attention-paper", HeadConfig(3, 12, 20)).eval()
    t, v = torch.randn(5, 12), torch.randn(5, 20)
    none = torch.zeros(5, 0, 0)
    mask = torch.zeros(5, 0, dtype=torch.bool)
    with torch.no_grad():
        got = head(EncoderOutput(t, none, mask), EncoderOutput(v, none, mask))  # (5, 3)
        lin = torch.nn.functional.linear
        x = torch.cat([torch.relu(head.text_proj[0](t)), torch.relu(head.image_proj[0](v))], dim=-1)  # (5, 64)
        assert x.shape == (5, 64)
        attn = head.encoder.self_attn
        w_v, b_v = attn.in_proj_weight[128:], attn.in_proj_bias[128:]  # q, k, v stacked: v is the last 64 rows
        h = head.encoder.norm1(x + attn.out_proj(lin(x, w_v, b_v)))
        h = head.encoder.norm2(h + head.encoder.linear2(torch.relu(head.encoder.linear1(h))))
        want = head.classifier[4](torch.relu(head.classifier[1](h)))  # dropout is the identity in eval mode
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_the_paper_recipe_is_the_default_for_attention_paper_only():
    from jftzoo.fusion.registry import apply_train_preset
    from jftzoo.train.classifier import FusionClassifier

    paper = FusionClassifier(fusion="attention-paper").train_config
    assert paper.lr_encoder == paper.lr_head == 3e-5
    assert (paper.scheduler, paper.lr_gamma, paper.warmup_ratio, paper.min_epochs) == ("exponential", 0.9, 0.0, 3)
    mine = FusionClassifier(fusion="attention-paper", lr_head=1e-3, scheduler="linear").train_config
    assert (mine.lr_head, mine.lr_encoder, mine.scheduler) == (1e-3, 3e-5, "linear")  # explicit options win
    other = FusionClassifier(fusion="attention").train_config
    assert (other.lr_encoder, other.lr_head, other.scheduler) == (2e-5, 1e-3, "linear")
    assert apply_train_preset("concat", {"lr_head": 0.5}) == {"lr_head": 0.5}
    assert apply_train_preset("attention-paper", {"min_epochs": 5})["min_epochs"] == 5
    json.dumps(get_fusion_spec("attention-paper").train_preset)  # JSON-able


def test_exponential_schedule_steps_once_per_epoch():
    records, labels = subset()
    lrs: list[tuple[float, float]] = []

    def progress(event: dict) -> None:
        if event["event"] == "epoch":
            lrs.append((event["epoch"], event["lr_head"]))

    cfg = TrainConfig(mode="frozen", min_epochs=3, max_epochs=3, patience=10, batch_size=4, val_fraction=0.25,
                      lr_head=1e-3, scheduler="exponential", lr_gamma=0.9)
    model = make_model("attention-paper")
    fit(model, records, labels, cfg, progress=progress)  # several optimizer steps per epoch
    assert [e for e, _ in lrs] == [1, 2, 3]
    for e, lr in lrs:
        assert lr == pytest.approx(1e-3 * 0.9**e, rel=1e-9)
    with pytest.raises(jftzoo.UsageError, match="scheduler must be one of linear, cosine, exponential, got 'cosin'"):
        TrainConfig(scheduler="cosin")
    cfg.scheduler = "cosin"  # set after construction: fit refuses it before training
    with pytest.raises(jftzoo.UsageError, match="linear, cosine, exponential"):
        fit(model, records, labels, cfg)


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
def test_early_stopping_reads_exactly_the_validation_records(mode: str, monkeypatch):
    """The bench-level guarantee (validation and test never mix) is tests/test_bench.py::
    test_validation_and_test_records_never_mix; here: fit() stops on what it is given, nothing else."""
    from jftzoo.train import trainer

    records, labels = subset()
    train, val = list(records[::2]), list(records[1::2])
    losses_on: list[set[str]] = []
    real = trainer._validate

    def spy(model, recs, *args, **kwargs):
        losses_on.append({r.id for r in recs})
        return real(model, recs, *args, **kwargs)

    monkeypatch.setattr(trainer, "_validate", spy)
    cfg = TrainConfig(mode=mode, min_epochs=2, max_epochs=2, batch_size=8, lr_encoder=1e-5)
    result = fit(make_model("concat"), train, labels, cfg, validation=val)
    assert losses_on == [{r.id for r in val}] * 2 and result.val_ids == [r.id for r in val]
    losses_on.clear()
    carved = fit(make_model("concat"), train, labels, replace(cfg, val_fraction=0.25))  # no validation given
    assert set(carved.val_ids) < {r.id for r in train} and losses_on == [set(carved.val_ids)] * 2
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
    from sklearn.metrics import roc_auc_score

    y = [labels.index(r.label) for r in records]
    m = evaluate(y, probs[0], labels)
    assert m["auc"] == roc_auc_score(y, probs[0], multi_class="ovr", average="macro")
    assert m["accuracy"] == np.mean(probs[0].argmax(1) == np.array(y)) and m["n"] == len(records)
    assert np.array(m["confusion_matrix"]).sum() == len(records) and np.trace(m["confusion_matrix"]) == round(
        m["accuracy"] * len(records))


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
    with pytest.raises(jftzoo.JftzooError, match=r"not a jftzoo model folder .*jftzoo train --out DIR"):
        FusionClassifier.load(tmp_path)


def test_a_preset_head_saves_and_loads_its_effective_training_config(tmp_path):
    from dataclasses import asdict

    from jftzoo.train.classifier import FusionClassifier

    records, _ = subset()
    clf = FusionClassifier(fusion="attention-paper", mode="frozen", min_epochs=1, max_epochs=1, batch_size=8,
                           val_fraction=0.25)
    clf.fit(records[::2])
    clf.save(tmp_path / "model")
    train = json.loads((tmp_path / "model" / "config.json").read_text())["train"]
    assert (train["lr_head"], train["scheduler"], train["min_epochs"]) == (3e-5, "exponential", 1)  # preset + mine
    loaded = FusionClassifier.load(tmp_path / "model")
    assert asdict(loaded.train_config) == asdict(clf.train_config)  # the caller's min_epochs=1 beats the preset's 3
    np.testing.assert_array_equal(loaded.predict_proba(records[:4]), clf.predict_proba(records[:4]))


def test_train_and_predict_cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from jftzoo.cli import cli

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))  # frozen train fills the disk cache

    records, _ = subset()
    data = write_posts(tmp_path, records)
    out = tmp_path / "model"
    res = CliRunner().invoke(cli, ["train", "--fusion", "concat", "--data", data, "--split", "4:1:1", "--out", str(out),
                                   "--epochs", "1", "--min-epochs", "1", "--batch-size", "8", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["weights"] == "pretrained" and summary["test_records"] == 3 and 0 <= summary["accuracy"] <= 1
    assert (out / "model.safetensors").is_file() and (out / "split.json").is_file()
    cached = {p.relative_to(tmp_path / "cache").parts[1] for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert {"minilm", "efficientnet_lite0"} <= cached, cached  # the bench's embedding cache, shared
    config = json.loads((out / "config.json").read_text())
    assert config["metrics"]["test"]["n"] == 3 and config["labels"] == ["negative", "neutral", "positive"]
    res = CliRunner().invoke(cli, ["predict", str(out), "--data", data, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["id"] for r in rows] == [r.id for r in records]
    assert all(set(r["probs"]) == {"negative", "neutral", "positive"} for r in rows)
    assert CliRunner().invoke(cli, ["predict", str(out), "--text", "hi"]).exit_code == 0  # a post without image
    assert CliRunner().invoke(cli, ["predict", str(out)]).exit_code == 2
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
    assert out["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert out["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))  # sample sd
    assert out["weights"] == {"text": "pretrained", "vision": "pretrained"} and out["groups"] == "near-duplicates"
    assert out["auc_nan_folds"] == 0 and len(out["split_digest"]) == 64
    assert {"auc_mean", "auc_std", "f1_macro_mean", "f1_weighted_std"} <= set(out)


def test_no_bf16_autocast_on_cpu():
    import contextlib

    from jftzoo.train.trainer import autocast_for

    assert isinstance(autocast_for(torch.device("cpu")), contextlib.nullcontext)
