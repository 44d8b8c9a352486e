"""Recipe levers (jftzoo.train.recipe): each changes training in its documented way, and only then."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_fusion_training import make_model, subset

from jftzoo.encoders.base import EncoderOutput
from jftzoo.train.recipe import (
    CheckpointSoup,
    WeightAverage,
    class_weights,
    drop_modalities,
    encoder_param_groups,
    monitor_value,
)
from jftzoo.train.trainer import TrainConfig, config_identity, fit, make_scheduler, predict_proba


def _steps(cfg: TrainConfig, records=None, labels=None) -> list[float]:
    recs, labs = subset()
    records = records if records is not None else list(recs)
    losses: list[float] = []
    fit(make_model("concat"), records[::2], labels or labs, cfg, validation=records[1::2],
        progress=lambda e: losses.append(e["loss"]) if e["event"] == "step" else None)
    return losses


def test_balanced_class_weights_follow_sklearn_and_weigh_the_loss(monkeypatch):
    w = class_weights([0, 0, 0, 1], 3, "balanced")
    np.testing.assert_allclose(w.numpy(), [4 / (2 * 3), 4 / (2 * 1), 1.0])  # absent class 2: weight 1
    assert class_weights([0, 1], 2, "none") is None
    from jftzoo.train import trainer

    recs, labels = subset()
    imbalanced = [r for r in recs if r.label == labels[0]] + [r for r in recs if r.label != labels[0]][:4]
    seen: list = []
    real = trainer.F.cross_entropy

    def spy(logits, y, **kwargs):
        seen.append(kwargs.get("weight"))
        return real(logits, y, **kwargs)

    monkeypatch.setattr(trainer.F, "cross_entropy", spy)
    base = {"mode": "frozen", "min_epochs": 1, "max_epochs": 1, "batch_size": 32}
    _steps(TrainConfig(**base), imbalanced)
    assert seen and all(x is None for x in seen)
    seen.clear()
    losses = _steps(TrainConfig(**base, class_weight="balanced"), imbalanced)
    train = imbalanced[::2]
    index = {c: i for i, c in enumerate(labels)}
    expected = class_weights([index[r.label] for r in train], len(labels), "balanced")
    assert len(seen) == len(losses) and all(torch.equal(x, expected) for x in seen)
    assert expected.max() > expected.min()  # the toy set is imbalanced: the weights differ


def test_label_smoothing_changes_the_loss():
    base = {"mode": "frozen", "min_epochs": 3, "max_epochs": 3, "batch_size": 32, "lr_head": 1e-2}
    plain = _steps(TrainConfig(**base))
    smooth = _steps(TrainConfig(**base, label_smoothing=0.2))
    assert smooth[-1] > plain[-1] + 1e-3  # a smoothed target cannot be fitted as closely


def test_modality_dropout_marks_one_modality_absent_for_the_expected_share():
    n = 20000
    text = EncoderOutput(torch.ones(n, 4), torch.ones(n, 3, 4), torch.ones(n, 3, dtype=torch.bool))
    image = EncoderOutput(torch.ones(n, 5), torch.ones(n, 2, 5), torch.ones(n, 2, dtype=torch.bool))
    t, i = drop_modalities(text, image, 0.3, torch.Generator().manual_seed(0))
    no_text, no_image = ~t.present, ~i.present
    assert not (no_text & no_image).any()  # never both
    assert (no_text | no_image).float().mean().item() == pytest.approx(0.3, abs=0.015)
    assert no_text.float().mean().item() == pytest.approx(0.15, abs=0.01)
    same = drop_modalities(text, image, 0.0, torch.Generator())
    assert same[0] is text and same[1] is image
    # the head reads its learned "missing" embedding in the dropped rows, the encoder output elsewhere
    from jftzoo.fusion.heads import ConcatHead, HeadConfig

    head = ConcatHead(HeadConfig(n_classes=2, text_dim=4, vision_dim=5))
    with torch.no_grad():
        head.missing_text.fill_(7.0)
    filled, _ = head.fill_missing(t, i)
    assert torch.equal(filled.pooled[no_text], torch.full((int(no_text.sum()), 4), 7.0))
    assert torch.equal(filled.pooled[~no_text], torch.ones(int((~no_text).sum()), 4))
    # already-absent rows stay absent
    text.present = torch.arange(n) % 2 == 0
    t2, _ = drop_modalities(text, image, 0.3, torch.Generator().manual_seed(0))
    assert not t2.present[1::2].any()


def test_modality_dropout_runs_in_training_forwards_only():
    recs, labels = subset()
    model = make_model("concat")
    seen: list[tuple[bool, bool]] = []
    real = model.head.forward

    def spy(text, image):
        seen.append((text.present is not None and not bool(text.present.all()),
                     image.present is not None and not bool(image.present.all())))
        return real(text, image)

    model.head.forward = spy
    fit(model, list(recs[::2]), labels, TrainConfig(mode="joint", min_epochs=1, max_epochs=1, batch_size=6,
                                                     modality_dropout=1.0, workers=0), validation=list(recs[1::2]))
    training = seen[: len(recs[::2]) // 6]
    assert all(a or b for a, b in training)  # p=1: every training record lost one modality
    seen.clear()
    predict_proba(model, list(recs), 8)
    assert not any(a or b for a, b in seen)  # prediction never drops


def test_layer_decay_gives_each_group_its_learning_rate():
    model = make_model("concat")
    model.set_mode("joint")
    groups = encoder_param_groups(model, 1e-4, 0.5)
    for encoder in (model.text, model.vision):
        n = len(encoder.layer_groups())
        mine = {g["name"]: g["lr"] for g in groups if g["name"].startswith(encoder.name + "/")}
        assert mine[f"{encoder.name}/group{n - 1}"] == pytest.approx(1e-4)  # the top group at lr_encoder
        for i in range(n):
            if f"{encoder.name}/group{i}" in mine:
                assert mine[f"{encoder.name}/group{i}"] == pytest.approx(1e-4 * 0.5 ** (n - 1 - i))
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.encoder_parameters()}
    model.set_mode("top-k", 1)
    top_only = encoder_param_groups(model, 1e-4, 0.5)
    assert {g["lr"] for g in top_only} == {1e-4}  # only the top groups train, each at the full rate
    assert encoder_param_groups(model, 1e-4, None)[0]["lr"] == 1e-4


def test_cosine_schedule_decays_to_zero_along_a_half_cosine():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched, per_epoch = make_scheduler(opt, TrainConfig(scheduler="cosine", warmup_ratio=0.0, max_epochs=1), 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert not per_epoch and lrs[0] == pytest.approx(1.0) and lrs[50] == pytest.approx(0.5, abs=1e-6)
    assert lrs[25] == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.25)), abs=1e-6)


def test_weight_average_swaps_in_and_out():
    m = torch.nn.Linear(2, 1)
    avg = WeightAverage(m, 0.5)
    start = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(2.0)
    avg.update()  # first update copies; then EMA with decay 0.5
    with torch.no_grad():
        m.weight.add_(2.0)
    avg.update()
    live = m.weight.detach().clone()
    avg.swap()
    np.testing.assert_allclose(m.weight.detach(), start + 3.0)  # 0.5 * (start + 2) + 0.5 * (start + 4)
    avg.swap()
    assert torch.equal(m.weight.detach(), live)


def _spy_validation(monkeypatch) -> list[tuple[dict, float]]:
    """(head weights, accuracy) at each validation pass, computed here from the probabilities themselves."""
    from jftzoo.train import trainer

    seen: list[tuple[dict, float]] = []
    real = trainer._validate

    def spy(model, *args, **kwargs):
        loss, probs, y = real(model, *args, **kwargs)
        weights = {k: v.detach().clone() for k, v in model.head.state_dict().items()}
        seen.append((weights, float((probs.argmax(1) == np.asarray(y)).mean())))
        return loss, probs, y

    monkeypatch.setattr(trainer, "_validate", spy)
    return seen


def test_ema_validates_and_keeps_the_averaged_weights(monkeypatch):
    recs, labels = subset()
    seen = _spy_validation(monkeypatch)
    live: list[dict] = []
    model = make_model("concat")
    cfg = TrainConfig(mode="frozen", min_epochs=1, max_epochs=1, batch_size=4, lr_head=1e-2, ema=0.5)
    fit(model, list(recs[::2]), labels, cfg, validation=list(recs[1::2]),
        progress=lambda e: live.append({k: v.detach().clone() for k, v in model.head.state_dict().items()})
        if e["event"] == "step" else None)  # after each optimizer step: the live weights
    (validated, _), = seen
    differs = [k for k in validated if validated[k].is_floating_point() and not torch.equal(validated[k], live[-1][k])]
    assert differs  # validation saw the average, not the live weights
    final = model.head.state_dict()
    assert all(torch.equal(final[k], validated[k]) for k in final)  # and the average is what is kept


def test_a_soup_of_one_checkpoint_keeps_the_validated_weights(monkeypatch):
    """One epoch under --average-top: its one checkpoint (here the EMA weights validation saw, not the live
    ones) is what is kept."""
    recs, labels = subset()
    seen = _spy_validation(monkeypatch)
    model = make_model("concat")
    cfg = TrainConfig(mode="frozen", min_epochs=1, max_epochs=1, batch_size=4, lr_head=1e-2, ema=0.5, average_top=3)
    result = fit(model, list(recs[::2]), labels, cfg, validation=list(recs[1::2]))
    (validated, _), = seen
    final = model.head.state_dict()
    assert result.averaged_epochs == [] and all(torch.equal(final[k], validated[k]) for k in final)


def test_monitor_picks_the_best_epoch_by_the_chosen_metric(monkeypatch):
    recs, labels = subset()
    seen = _spy_validation(monkeypatch)
    cfg = TrainConfig(mode="frozen", min_epochs=4, max_epochs=4, batch_size=4, lr_head=5e-3, monitor="accuracy")
    result = fit(make_model("concat"), list(recs[::2]), labels, cfg, validation=list(recs[1::2]))
    accs = [acc for _, acc in seen]
    assert [h["val_accuracy"] for h in result.history] == pytest.approx(accs)
    assert result.best_epoch == int(np.argmax(accs)) + 1 and result.best_score == pytest.approx(-max(accs))
    assert monitor_value("loss", 0.7, np.zeros((0, 3)), [], labels) == 0.7
    with pytest.raises(Exception, match="accuracy"):
        monitor_value("acuracy", 0.7, np.zeros((0, 3)), [], labels)


def test_checkpoint_soup_keeps_the_best_n_and_averages_only_what_validation_accepts():
    m = torch.nn.Linear(1, 1, bias=False)
    soup = CheckpointSoup(3)

    def score() -> tuple[float, float]:  # validation prefers a weight of 2
        w = float(m.weight.detach())
        return abs(w - 2.0), w

    for epoch, w in enumerate((1.0, 3.0, 10.0, 5.0), start=1):
        with torch.no_grad():
            m.weight.fill_(w)
        soup.offer(*score(), epoch, m)
    assert [e for _, _, e, _ in soup.kept] == [1, 2, 4]  # epoch 3 (score 8) is not among the best 3
    epochs, best, loss = soup.cook(m, score)
    # from epoch 1: epoch 2 joins (mean 2.0, score 0), epoch 4 would raise it to 3.0 (score 1), so it stays out
    assert epochs == [1, 2] and best == 0.0 and loss == pytest.approx(2.0)
    assert float(m.weight.detach()) == pytest.approx(2.0)


def test_average_top_keeps_the_greedy_soup_of_the_best_epochs(monkeypatch):
    recs, labels = subset()
    seen = _spy_validation(monkeypatch)
    model = make_model("concat")
    cfg = TrainConfig(mode="frozen", min_epochs=4, max_epochs=4, batch_size=4, lr_head=5e-3, average_top=3)
    result = fit(model, list(recs[::2]), labels, cfg, validation=list(recs[1::2]))
    losses = [h["val_loss"] for h in result.history]
    assert result.averaged_epochs[0] == result.best_epoch == int(np.argmin(losses)) + 1
    assert len(seen) == 4 + 2  # each epoch, then each of the two next-best checkpoints tried in the soup
    assert set(result.averaged_epochs) <= set(np.argsort(losses)[:3] + 1)
    final = model.head.state_dict()
    for k, v in final.items():  # the uniform average of the validated weights of the epochs kept
        if v.is_floating_point():
            mean = torch.stack([seen[e - 1][0][k] for e in result.averaged_epochs]).mean(0)
            torch.testing.assert_close(v, mean)
    assert result.best_val_loss <= min(losses) and result.best_score == result.best_val_loss
    from jftzoo.train.trainer import _validate

    index = {label: i for i, label in enumerate(labels)}
    assert _validate(model, list(recs[1::2]), index, 4, None)[0] == pytest.approx(result.best_val_loss)


def test_recipe_fields_at_their_defaults_leave_identities_unchanged():
    ident = config_identity(TrainConfig(mode="joint"))
    assert "label_smoothing" not in ident and "ema" not in ident and "average_top" not in ident
    assert config_identity(TrainConfig(mode="joint", average_top=3))["average_top"] == 3
    with pytest.raises(Exception, match="average_top must be at least 1"):
        TrainConfig(average_top=0)
    assert config_identity(TrainConfig(mode="joint", label_smoothing=0.1))["label_smoothing"] == 0.1


def test_augmentation_is_random_on_training_batches_only():
    import jftzoo

    recs, labels = subset()
    enc = jftzoo.get_encoder("efficientnet_lite0")
    images = [r.image for r in recs[:2]]
    assert torch.equal(enc.preprocess(images)["pixel_values"], enc.preprocess(images)["pixel_values"])
    enc.augment = True
    assert not torch.equal(enc.preprocess(images)["pixel_values"], enc.preprocess(images)["pixel_values"])
    enc.augment = False

    model = make_model("concat")
    calls: list[tuple[set, bool]] = []
    real = model.vision.preprocess

    def spy(items):
        calls.append(({str(x) for x in items}, model.vision.augment))
        return real(items)

    model.vision.preprocess = spy
    notes: list[str] = []
    train, val = list(recs[::2]), list(recs[1::2])
    fit(model, train, labels, TrainConfig(mode="top-k", top_k=1, min_epochs=1, max_epochs=1, batch_size=6,
                                          augment=True, workers=0), validation=val,
        progress=lambda e: notes.append(e["message"]) if e["event"] == "note" else None)
    val_items = {str(r.image) for r in val}
    assert calls and all(aug == (not items <= val_items) for items, aug in calls)  # train: random; val: never
    assert any("augmentation" in n for n in notes)  # the prefix cache gave way, and said so
    assert model.vision.augment is False


def test_tweet_normaliser_reaches_training_and_prediction():
    from jftzoo.datasets.tweets import normalize_tweet

    assert normalize_tweet("RT @bob: fun &amp; games 😂 #SoHappy http://t.co/x") == \
        "RT @user: fun & games face with tears of joy So Happy http"
    assert normalize_tweet("") == ""
    from dataclasses import replace

    recs, labels = subset()
    recs = [replace(r, text=r.text + " &amp; #SoHappy") for r in recs]  # something for the normaliser to do
    model = make_model("concat")
    texts: list[str] = []
    real = model.text.preprocess

    def spy(items):
        texts.extend(items)
        return real(items)

    model.text.preprocess = spy
    cfg = TrainConfig(mode="joint", min_epochs=1, max_epochs=1, batch_size=6, workers=0, text_normalizer="tweet")
    fit(model, list(recs[::2]), labels, cfg, validation=list(recs[1::2]))
    assert texts and set(texts) == {normalize_tweet(r.text) for r in recs}
    texts.clear()
    predict_proba(model, list(recs[:3]), 8, text_normalizer="tweet")
    assert texts == [normalize_tweet(r.text) for r in recs[:3]]


def test_recipe_options_reach_the_records_of_bench_and_the_model_of_train(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from jftzoo.cli import cli
    from jftzoo.train.presets import RECIPES

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    res = CliRunner().invoke(cli, ["bench", "--fusion", "concat", "--limit", "36", "--folds", "2", "--epochs", "1",
                                   "--recipe", "fast", "--mode", "frozen", "--label-smoothing", "0.05",
                                   "--average-top", "2",
                                   "--out", str(tmp_path / "b"), "--json"])
    assert res.exit_code == 0, res.output
    records = [json.loads(x) for x in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
    concat = [r for r in records if r["fusion"] == "concat"]
    assert concat and all(r["mode"] == "frozen" for r in concat)  # --mode beats the recipe's top-k
    tc = concat[0]["train_config"]
    assert tc["label_smoothing"] == 0.05  # the option beats the recipe's 0.1
    assert tc["monitor"] == RECIPES["fast"]["monitor"] and tc["scheduler"] == "cosine"  # the rest of the recipe
    assert tc["max_epochs"] == 1  # --epochs beats the recipe's 8
    assert tc["average_top"] == 2 and "averaged_epochs" not in concat[0]  # one epoch: nothing to average

    out = tmp_path / "m"
    res = CliRunner().invoke(cli, ["train", "--fusion", "concat", "--mode", "frozen", "--recipe", "best",
                                   "--epochs", "1", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "config.json").read_text())["train"]
    assert saved["layer_decay"] == RECIPES["best"]["layer_decay"] and saved["text_normalizer"] == "tweet"
    bad = CliRunner().invoke(cli, ["train", "--recipe", "bset", "--out", str(out)])
    assert bad.exit_code == 2 and "best" in bad.output
    bad = CliRunner().invoke(cli, ["train", "--average-top", "0", "--out", str(out)])
    assert bad.exit_code == 2 and "--average-top" in bad.output


def test_every_monitor_reads_a_metric_that_evaluate_reports():
    from jftzoo.train.metrics import evaluate
    from jftzoo.train.presets import MONITORS

    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    for name in MONITORS:
        value = monitor_value(name, 0.5, probs, [0, 1, 2], ["a", "b", "c"])
        assert np.isfinite(value), name  # a misspelt metric would never "improve"
    assert set(MONITORS) - {"loss"} <= set(evaluate([0, 1, 2], probs, ["a", "b", "c"]))
