"""Posts without text or without an image are data: read, counted, trained on, benchmarked, predicted."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_fusion_training import HEADS, make_model, subset

from jftzoo.cli import cli
from jftzoo.datasets import load_dataset
from jftzoo.datasets.records import Record
from jftzoo.features import FeatureStore
from jftzoo.train.prefix import PrefixInputs, PrefixStore
from jftzoo.train.trainer import FrozenInputs, TrainConfig, fit, predict_proba

NO_TEXT = {"neg-0", "pos-1", "neu-2"}
NO_IMAGE = {"neg-1", "pos-2", "neu-0"}


def write_csv(tmp_path, extra: list[dict] | None = None) -> str:
    """A CSV of the demo subset where some posts have an empty text cell and some an empty image cell."""
    records, _ = subset()
    root = tmp_path / "memes"
    (root / "img").mkdir(parents=True)
    rows = []
    counters: dict[str, int] = {}
    for r in records:
        n = counters.setdefault(r.label, 0)
        counters[r.label] += 1
        rid = f"{r.label[:3]}-{n}"
        (root / "img" / r.image.name).write_bytes(r.image.read_bytes())
        rows.append({"id": rid, "text": "" if rid in NO_TEXT else r.text,
                     "image": "" if rid in NO_IMAGE else f"img/{r.image.name}", "label": r.label})
    rows += extra or []
    with open(root / "memes.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "image", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return f"csv:{root / 'memes.csv'}"


def test_missing_text_and_image_are_kept_and_counted(tmp_path) -> None:
    data = write_csv(tmp_path)
    ds = load_dataset(data)
    assert len(ds) == 18 and ds.missing_counts() == {"text": 3, "image": 3}
    by_id = ds.by_id()
    assert all(not by_id[i].has_text and by_id[i].item("text") is None for i in NO_TEXT)
    assert all(by_id[i].image is None and by_id[i].item("vision") is None for i in NO_IMAGE)
    res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--folds", "2"])
    assert res.exit_code == 0, res.output
    assert "missing text: 3, missing image: 3" in res.output
    res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--folds", "2", "--json"])
    assert json.loads(res.output)["missing"] == {"text": 3, "image": 3}


def test_on_missing_skip_lists_them_and_error_stops(tmp_path) -> None:
    data = write_csv(tmp_path)
    ds = load_dataset(data, on_missing="skip")
    assert len(ds) == 12 and {p.record_id for p in ds.skipped} == NO_TEXT | NO_IMAGE
    assert all("--on-missing skip" in p.reason for p in ds.skipped)
    res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--folds", "2", "--on-missing", "error"])
    assert res.exit_code == 1 and "pos-1" in res.output and "--on-missing keep" in res.output
    res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--on-missing", "skp"])
    assert res.exit_code == 2


def test_a_post_with_neither_is_a_bad_record_and_a_broken_image_still_is(tmp_path) -> None:
    data = write_csv(tmp_path, [{"id": "empty", "text": " ", "image": "", "label": "positive"},
                                {"id": "gone", "text": "hello", "image": "img/nope.png", "label": "positive"}])
    res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--folds", "2"])
    assert res.exit_code == 1 and "nothing to classify" in res.output and "image file is missing" in res.output
    ds = load_dataset(data, on_bad="skip")
    assert {p.record_id for p in ds.skipped} == {"empty", "gone"} and len(ds) == 18


def test_a_misnamed_column_is_a_usage_error_not_posts_without_text(tmp_path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "m.csv").write_text("id,tweet,image,label\n1,hi,,positive\n")
    res = CliRunner().invoke(cli, ["data", "check", "--data", f"csv:{root / 'm.csv'}"])
    assert res.exit_code == 2 and "'text'" in res.output and "tweet" in res.output


def _records_with_gaps() -> tuple[list[Record], tuple[str, ...]]:
    records, labels = subset()
    out = []
    for i, r in enumerate(records):
        out.append(replace(r, text="") if i % 3 == 0 else replace(r, image=None) if i % 3 == 1 else r)
    return out, labels


@pytest.mark.parametrize("head", HEADS)
def test_every_head_reads_the_learned_missing_embedding(head: str) -> None:
    """Absent rows are filled from the head's own parameters, whatever the encoder output held there."""
    model = make_model(head)
    model.eval()
    records, _ = _records_with_gaps()
    store = FeatureStore()
    inputs = FrozenInputs(model, records, store)
    text, image = inputs.batch(list(range(len(records))), torch.device("cpu"))
    for out, name in ((text, "text"), (image, "vision")):
        if out is not None:
            assert out.present is not None and not out.present.all()
            assert store.encoded[getattr(model, name).name] == int(out.present.sum())  # absent: never encoded
    absent = torch.zeros(len(records), dtype=torch.bool)
    for out in (text, image):
        if out is not None:
            absent |= ~out.present
    with torch.no_grad():
        before = model.head(text, image)
        # whatever the encoder rows of absent posts hold, the head never reads them
        garbage = [o if o is None else replace(o, pooled=o.pooled + 5 * (~o.present)[:, None].float(),
                                                tokens=o.tokens + 5 * (~o.present)[:, None, None].float())
                   for o in (text, image)]
        assert torch.allclose(model.head(*garbage), before, atol=1e-5)
        # it reads its own "missing" parameters there, and only there
        for p in (p for n, p in model.head.named_parameters() if n.startswith("missing_")):
            p.add_(torch.randn_like(p))
        after = model.head(text, image)
    assert torch.allclose(before[~absent], after[~absent], atol=1e-5)  # complete posts: untouched
    assert not torch.allclose(before[absent], after[absent], atol=1e-4)  # absent rows: the learned embedding


@pytest.mark.parametrize("mode", ["frozen", "top-k", "joint"])
def test_training_and_prediction_with_gaps_in_every_mode(mode: str) -> None:
    records, labels = _records_with_gaps()
    model = make_model("xattn" if mode == "top-k" else "concat")
    fit(model, records[::2], labels, TrainConfig(mode=mode, min_epochs=1, max_epochs=2, batch_size=4, workers=0,
                                                 lr_head=1e-2), validation=records[1::2])
    for modality in ("text", "vision"):  # trained by the posts that lack them (xattn reads the token one)
        learned = [p for n, p in model.head.named_parameters() if n.startswith(f"missing_{modality}")]
        assert learned and any(p.abs().sum() > 0 for p in learned)
    probs = predict_proba(model, records, 4)
    assert probs.shape == (18, 3) and np.isfinite(probs).all()
    # the same post with and without its image: a different prediction
    complete = [r for r in subset()[0]][2]
    both = predict_proba(model, [complete], 1)[0]
    text_only = predict_proba(model, [replace(complete, image=None)], 1)[0]
    assert not np.allclose(both, text_only, atol=1e-4)


def test_top_k_prefix_cache_skips_absent_items() -> None:
    records, _ = _records_with_gaps()
    model = make_model("concat")
    model.set_mode("top-k", 1)
    store = PrefixStore()
    prefix = PrefixInputs(model, {"train": records}, 1, 1, store)
    assert store.encoded["minilm"] == sum(r.has_text for r in records)
    assert store.encoded["efficientnet_lite0"] == sum(r.has_image for r in records)
    text, vision = prefix.batch("train", [0, 1, 2], torch.device("cpu"))
    assert text["present"].tolist() == [False, True, True] and vision["present"].tolist() == [True, False, True]
    assert model.forward_prefix(text, vision, 1, 1).shape == (3, 3)


def test_train_bench_predict_explain_a_csv_with_gaps(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = write_csv(tmp_path)
    out = tmp_path / "model"
    res = CliRunner().invoke(cli, ["train", "--fusion", "concat", "--data", data, "--split", "4:1:1", "--out",
                                   str(out), "--epochs", "2", "--min-epochs", "2", "--batch-size", "4",
                                   "--modality-dropout", "0.3", "--json"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["predict", str(out), "--data", data, "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == 18
    records, _ = subset()
    post = records[4]
    with_image = CliRunner().invoke(cli, ["predict", str(out), "--text", post.text, "--image", str(post.image),
                                          "--json"])
    text_only = CliRunner().invoke(cli, ["predict", str(out), "--text", post.text, "--json"])
    image_only = CliRunner().invoke(cli, ["predict", str(out), "--image", str(post.image), "--json"])
    assert with_image.exit_code == text_only.exit_code == image_only.exit_code == 0, text_only.output
    p_both, p_text, p_image = (json.loads(r.output)[0]["probs"] for r in (with_image, text_only, image_only))
    assert p_both != p_text and p_both != p_image
    assert CliRunner().invoke(cli, ["predict", str(out)]).exit_code == 2
    bench = tmp_path / "bench"
    res = CliRunner().invoke(cli, ["bench", "--data", data, "--fusion", "svm,concat", "--folds", "2", "--epochs", "1",
                                   "--out", str(bench)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (bench / "results.jsonl").read_text().splitlines()]
    assert {r["fusion"] for r in rows} >= {"svm", "concat", "text-only", "image-only", "majority"}
    assert all(r["n_records"] == 18 for r in rows)
    from jftzoo.explain import explain_dataset
    from jftzoo.train.classifier import FusionClassifier

    clf = FusionClassifier.load(out)
    ds = load_dataset(data)
    ex = explain_dataset(clf, ds.records, baseline="mean", reference=ds.records, resamples=0)
    by_id = {r.id: r for r in ex.records}
    assert all(by_id[i].shapley["text"] == 0.0 for i in NO_TEXT)  # a post without text: text contributed nothing
    assert all(by_id[i].shapley["image"] == 0.0 for i in NO_IMAGE)
    res = CliRunner().invoke(cli, ["explain", str(out), "--text", post.text, "--out", str(tmp_path / "ex"), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["shapley"]["image"] == 0.0 and payload["absent"] == ["image"]
    assert by_id[next(iter(NO_TEXT))].absent == ["text"]


def test_a_model_saved_before_missing_embeddings_still_loads(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    from jftzoo.train.classifier import FusionClassifier

    records, _ = subset()
    clf = FusionClassifier(fusion="concat", max_epochs=1, min_epochs=1, batch_size=8, workers=0)
    clf.fit(list(records))
    clf.save(tmp_path / "m")
    state = load_file(str(tmp_path / "m" / "model.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("head.missing_")},
              str(tmp_path / "m" / "model.safetensors"))
    loaded = FusionClassifier.load(tmp_path / "m")
    assert np.allclose(loaded.predict_proba(list(records)), clf.predict_proba(list(records)), atol=1e-5)
    save_file({k: v for k, v in state.items() if not k.startswith("head.classifier")},
              str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(Exception, match="does not fit"):
        FusionClassifier.load(tmp_path / "m")


def test_missing_embeddings_learn_only_from_absent_posts_or_modality_dropout() -> None:
    """Complete data without modality dropout trains exactly as before: nothing teaches the embeddings."""
    records, labels = subset()
    config = dict(mode="frozen", min_epochs=1, max_epochs=2, batch_size=4, workers=0, lr_head=1e-2)
    plain = make_model("concat")
    fit(plain, list(records[::2]), labels, TrainConfig(**config), validation=list(records[1::2]))
    params = {n: p for n, p in plain.head.named_parameters() if n.startswith("missing_")}
    assert params and all(not p.requires_grad and p.abs().sum() == 0 for p in params.values())
    dropped = make_model("concat")
    fit(dropped, list(records[::2]), labels, TrainConfig(**config, modality_dropout=0.5),
        validation=list(records[1::2]))
    assert all(p.abs().sum() > 0 for n, p in dropped.head.named_parameters() if n.startswith("missing_"))
    gaps, _ = _records_with_gaps()
    only_text_gaps = [r if r.has_text else replace(r, text="x") for r in gaps]  # images missing, texts all there
    one = make_model("concat")
    fit(one, only_text_gaps[::2], labels, TrainConfig(**config), validation=only_text_gaps[1::2])
    assert one.head.missing_vision.requires_grad and one.head.missing_vision.abs().sum() > 0
    assert not one.head.missing_text.requires_grad and one.head.missing_text.abs().sum() == 0
