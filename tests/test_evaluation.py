"""Trustworthy figures: near-duplicate groups never cross a split, manifests with digests, summary
statistics with confidence intervals, paired comparisons, metric edge cases and validation-only selection."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jftzoo.cli import cli
from jftzoo.datasets import load_dataset, official_split, ratio_split, read_split, stratified_kfold, write_split
from jftzoo.datasets.groups import crossing_groups, duplicate_groups, groups_for, normalize_text
from jftzoo.errors import JftzooError
from jftzoo.train.metrics import SCORES


# -- near-duplicate groups -----------------------------------------------------------------------------------
def test_normalize_text_removes_urls_mentions_leading_rt_and_punctuation():
    same = ["RT @news: Great day at the beach!! http://t.co/abc", "great day at the beach", "@a @b  Great, day at "
            "the BEACH https://x.y/z", "rt great day... at the beach ", "Ｇｒｅａｔ day at the beach"]
    assert {normalize_text(t) for t in same} == {"great day at the beach"}
    assert normalize_text("a great day at the beach") != "great day at the beach"
    assert normalize_text("artful start") == "artful start"  # "rt" only as a leading word
    assert normalize_text("http://only.a/link @someone") == ""


def grouped_set(tmp_path: Path) -> str:
    """72 posts in 3 classes; 8 near-duplicate groups chained by text and by image bytes."""
    root = tmp_path / "set"
    (root / "img").mkdir(parents=True)
    rows = []
    colours = {}
    for i in range(72):
        label = ("pos", "neg", "neu")[i % 3]
        text = f"post number {i} about {label}"
        image = f"img/{i}.png"
        colours[image] = (i * 3 % 256, i * 7 % 256, i * 11 % 256)
        rows.append({"id": f"r{i:02d}", "text": text, "image": image, "label": label})
    for g in range(8):  # group g: r{g} <- same text -> r{g+20} <- same image -> r{g+40}, and r{g+60} retweets r{g}
        a, b, c, d = rows[g], rows[g + 20], rows[g + 40], rows[g + 60]
        b["text"] = "RT @someone: " + a["text"].upper() + " http://t.co/x"
        colours[c["image"]] = colours[b["image"]]
        d["text"] = a["text"] + "!!!"
    for image, colour in colours.items():
        Image.new("RGB", (8, 8), colour).save(root / image)
    (root / "posts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"jsonl:{root / 'posts.jsonl'}"


def test_duplicate_groups_are_connected_components_of_text_and_image_links(tmp_path: Path):
    ds = load_dataset(grouped_set(tmp_path))
    groups = duplicate_groups(ds.records)
    members = groups.members()
    assert len(members) == 8 and all(len(m) == 4 for m in members)
    assert ["r00", "r20", "r40", "r60"] in members  # r40 joins only through r20's image
    assert groups.text_links == 16 and groups.image_links == 8 and groups.n_groups == 72 - 8 * 3


def _assert_no_group_crosses(parts: dict[str, list[str]], groups) -> None:
    assert crossing_groups(groups, parts) == []
    every = [i for ids in parts.values() for i in ids]
    assert len(every) == len(set(every)) == len(groups.ids)


@pytest.mark.parametrize("seed", range(5))
def test_near_duplicates_never_cross_folds_ratio_splits_or_seeds(tmp_path: Path, seed: int):
    ds = load_dataset(grouped_set(tmp_path))
    groups = groups_for(ds, "near-duplicates")
    kfold = stratified_kfold(ds, 4, seed, groups)
    ratio = ratio_split(ds, "8:1:1", seed, groups)
    _assert_no_group_crosses(kfold.parts, groups)
    _assert_no_group_crosses(ratio.parts, groups)
    assert kfold.groups == ratio.groups == "near-duplicates" and kfold.params["n_groups"] == 48
    # the literature's random split does let them cross on this data: the test above has something to catch
    random = [crossing_groups(groups, ratio_split(ds, "8:1:1", s).parts) for s in range(5)]
    assert any(random) and ratio_split(ds, "8:1:1", seed).groups == "none"


def test_group_aware_ratio_split_keeps_proportions_and_classes():
    ds = load_dataset("emoji-sentiment")
    split = ratio_split(ds, "8:1:1", 0, groups_for(ds, "near-duplicates"))
    sizes = {k: len(v) for k, v in split.parts.items()}
    assert abs(sizes["test"] - len(ds) / 10) <= 3 and abs(sizes["val"] - len(ds) / 10) <= 3
    labels = {r.id: r.label for r in ds.records}
    assert {labels[i] for i in split.parts["test"]} == set(ds.labels)


def test_official_splits_are_kept_and_crossing_groups_named(tmp_path: Path):
    ds = load_dataset(grouped_set(tmp_path))
    ds.splits = {"train": [r.id for r in ds.records if r.id < "r30"], "test": [r.id for r in ds.records
                                                                              if r.id >= "r30"]}
    with pytest.warns(UserWarning, match=r"8 near-duplicate group\(s\) cross the official splits.*r00, r20, r40"):
        split = official_split(ds, duplicate_groups(ds.records))
    assert split.parts == ds.splits and split.params["crossing_groups"] == 8 and split.groups == "official"


def test_manifest_digest_roundtrip_and_tampering_detected(tmp_path: Path):
    ds = load_dataset(grouped_set(tmp_path))
    split = ratio_split(ds, "8:1:1", 0, groups_for(ds, "near-duplicates"))
    digest = write_split(split, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["digest"] == digest == split.digest()
    assert read_split(tmp_path / "m.json", ds).digest() == digest
    content = json.loads((tmp_path / "m.json").read_text())
    content["parts"]["test"].append(content["parts"]["train"].pop())  # move a record from train to test
    (tmp_path / "m.json").write_text(json.dumps(content))
    with pytest.raises(JftzooError, match="edited after it was written"):
        read_split(tmp_path / "m.json", ds)


def test_data_check_reports_groups_and_writes_a_grouped_split(tmp_path: Path):
    data = grouped_set(tmp_path)
    res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--folds", "3", "--write-split",
                                   str(tmp_path / "s.json"), "--split", "8:1:1", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["duplicates"]["groups"] == 8 and report["duplicates"]["records_in_groups"] == 32
    assert report["duplicates"]["largest"][0] == ["r00", "r20", "r40", "r60"]
    assert report["split_groups"] == "near-duplicates" and report["split_digest"] == read_split(tmp_path / "s.json",
                                                                                                 ).digest()
    res = CliRunner().invoke(cli, ["data", "check", "--data", data, "--folds", "3", "--write-split",
                                   str(tmp_path / "n.json"), "--split", "8:1:1", "--groups", "none"])
    assert res.exit_code == 0 and "groups none" in res.output
    assert read_split(tmp_path / "n.json").groups == "none"  # the manifest says grouping was off
    assert "near-duplicate groups: 8 holding 32 records" in res.output


# -- statistics ------------------------------------------------------------------------------------------------
def test_summary_statistics_are_sample_sd_and_a_t_interval():
    from jftzoo.bench.stats import summarize_values

    s = summarize_values([0.7, 0.8, 0.9, None, float("nan")])
    assert s.n == 3 and s.nan == 2 and s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.1)
    half = 4.302652729749464 * 0.1 / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert s.ci95 == pytest.approx((0.8 - half, 0.8 + half))
    one = summarize_values([0.5])
    assert (one.mean, one.std, one.ci95) == (0.5, None, None)


def test_a_metrics_interval_stays_within_the_values_it_can_take():
    """Two splits of macro-F1 (0.44, 0.63): the t-interval's ends, -0.68 and 1.74, are clipped to 0 and 1."""
    from jftzoo.bench.report import summarize
    from jftzoo.bench.stats import summarize_values

    wide = summarize_values([0.44, 0.63])
    assert wide.ci95[0] < 0 and wide.ci95[1] > 1  # unbounded: a figure no F1 can have
    assert summarize_values([0.44, 0.63], bounds=(0.0, 1.0)).ci95 == (0.0, 1.0)
    assert summarize_values([0.6, 0.62, 0.64], bounds=(0.0, 1.0)).ci95 == summarize_values([0.6, 0.62, 0.64]).ci95
    recs = [{"config_hash": "c", "dataset": "d", "text": "t", "vision": "v", "fusion": "concat", "mode": "frozen",
             "seed": s, "fold": "test", "split": {"kind": "ratio", "ratio": "8:1:1", "groups": "none"},
             "metrics": {"auc": 0.8, "accuracy": 0.7, "f1_weighted": 0.7, "f1_macro": f1},
             "val_metrics": {"auc": 0.8, "accuracy": 0.99 - s * 0.3, "f1_weighted": 0.7, "f1_macro": f1}}
            for s, f1 in enumerate((0.44, 0.63))]
    (row,) = summarize(recs)
    assert row["f1_macro_ci95"] == [0.0, 1.0] and row["val_accuracy_ci95"][1] == 1.0


def test_evaluate_auc_matches_hand_computed_values_and_names_edge_cases():
    from jftzoo.train.metrics import evaluate

    labels = ["neg", "pos"]
    # positives score 0.9, 0.4; negatives 0.6, 0.1: 3 of 4 (pos, neg) pairs ordered right -> AUC 0.75
    probs = np.array([[0.1, 0.9], [0.6, 0.4], [0.4, 0.6], [0.9, 0.1]])
    m = evaluate([1, 1, 0, 0], probs, labels)
    assert m["auc"] == 0.75 and m["accuracy"] == 0.5 and "one-vs-rest" in m["auc_type"] and m["notes"] == []
    assert evaluate([1, 1, 0, 0], probs[:, ::-1].copy(), labels)["auc"] == 0.25
    one = evaluate([1, 1], probs[:2], labels)
    assert math.isnan(one["auc"]) and "one class" in one["notes"][0]
    three = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1]])
    partial = evaluate([0, 0, 1, 1], three, ["a", "b", "c"])
    assert "lacks class(es) c" in partial["notes"][0]
    # over the two present classes, renormalised: class b scores 0.6, 0.33 (a) and 0.89, 0.44 (b): 3 of 4 pairs
    assert partial["auc"] == pytest.approx(0.75)


def test_fast_metrics_for_resampling_equal_evaluate():
    from jftzoo.bench.compare import metric_value
    from jftzoo.train.metrics import evaluate

    rng = np.random.default_rng(0)
    for n_classes, present in ((2, [0, 1]), (3, [0, 1, 2]), (3, [0, 2])):
        y = rng.choice(present, 50)
        probs = rng.dirichlet(np.ones(n_classes), 50)
        probs[:5] = probs[5:10]  # ties
        reference = evaluate(y, probs, [str(i) for i in range(n_classes)])
        for metric in SCORES:
            assert metric_value(metric, y, probs, n_classes) == pytest.approx(reference[metric], abs=1e-12), metric


def test_every_scalar_figure_evaluate_returns_is_offered_by_every_metric_option_and_summary():
    """One list (metrics.SCORES) names the figures: a figure evaluate gains, or one dropped from the list, fails
    here rather than going missing from a summary, a comparison or a selection."""
    from jftzoo.bench.report import summarize
    from jftzoo.train.metrics import evaluate
    from jftzoo.train.presets import MONITORS

    figures = evaluate([0, 1, 1], np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), ["a", "b"])
    assert {k for k, v in figures.items() if isinstance(v, float)} == set(SCORES)
    assert ("loss", *SCORES) == MONITORS
    runner = CliRunner()
    for command in (["results", "compare", "--help"], ["tune", "--help"]):
        help_text = runner.invoke(cli, command, terminal_width=200).output
        assert all(m in help_text for m in SCORES), command
    record = {"dataset": "d", "text": "t", "vision": "v", "fusion": "concat", "mode": "frozen", "weights": "pretrained",
              "config_hash": "h", "seed": 0, "metrics": figures, "val_metrics": figures, "status": "ok"}
    row = summarize([record])[0]
    assert all(f"{m}_mean" in row and f"val_{m}_mean" in row for m in SCORES)


def test_nan_folds_are_counted_in_the_summary_not_hidden():
    from jftzoo import __version__
    from jftzoo.bench.report import summarize, to_markdown

    def record(fold: str, auc: float) -> dict:
        m = {"auc": auc, "accuracy": 0.5, "f1_macro": 0.4, "f1_weighted": 0.45}
        return {"dataset": "d", "text": "t", "vision": "v", "fusion": "concat", "mode": "frozen", "weights":
                "pretrained", "seed": 0, "fold": fold, "wall_s": 1.0, "config_hash": "abc", "jftzoo_version":
                __version__, "metrics": m, "val_metrics": m}

    rows = summarize([record("fold0", 0.6), record("fold1", float("nan")), record("fold2", 0.8)])
    assert rows[0]["nan_folds"] == 1 and rows[0]["auc_mean"] == pytest.approx(0.7) and rows[0]["n_splits"] == 3
    assert "| 3, 1 NaN AUC |" in to_markdown(rows)


def test_best_is_picked_on_validation_and_outdated_rows_are_marked():
    from jftzoo import __version__
    from jftzoo.bench.report import best_in_columns, summarize, to_markdown

    def record(fusion: str, test: float, val: float, version: str = __version__) -> dict:
        return {"dataset": "d", "text": "t", "vision": "v", "fusion": fusion, "mode": "frozen", "weights":
                "pretrained", "seed": 0, "fold": "test", "wall_s": 1.0, "config_hash": fusion + version,
                "jftzoo_version": version,
                "metrics": {"auc": test, "accuracy": test, "f1_macro": test, "f1_weighted": test},
                "val_metrics": {"auc": val, "accuracy": val, "f1_macro": val, "f1_weighted": val}}

    rows = summarize([record("concat", 0.90, 0.60), record("gated", 0.70, 0.80), record("late", 0.99, 0.99, "0.1.0")])
    best = best_in_columns(rows)
    assert rows[best["accuracy"]]["fusion"] == "gated"  # best validation, although concat's test figure is higher
    md = to_markdown(rows)
    assert "| gated | frozen | gated0.2 | 1 | **0.700**" in md and "| concat | frozen | concat0. | 1 | 0.900 |" in md
    assert "late (jftzoo 0.1.0)" in md and rows[-1]["outdated"]  # older version: marked, listed last, never best


def test_a_rows_cost_is_given_per_device_when_its_seeds_ran_on_a_cpu_and_a_gpu():
    from jftzoo import __version__
    from jftzoo.bench.report import summarize, to_markdown

    def record(seed: int, wall: float, device: str = "cpu") -> dict:
        m = {"auc": 0.7, "accuracy": 0.7, "f1_macro": 0.6, "f1_weighted": 0.65}
        machine = "x86_64, 16 torch threads, NVIDIA H100 80GB HBM3" if device == "cuda" else "x86_64, 2 torch threads"
        return {"dataset": "d", "text": "t", "vision": "v", "fusion": "concat", "mode": "joint", "weights":
                "pretrained", "seed": seed, "fold": "test", "wall_s": wall, "config_hash": "abc", "device": device,
                "machine": machine, "jftzoo_version": __version__, "metrics": m, "val_metrics": m}

    (row,) = summarize([record(0, 3000.0), record(1, 3600.0), record(2, 120.0, "cuda"), record(3, 60.0, "cuda")])
    assert row["wall_s_by_device"] == {"CPU": 6600.0, "H100": 180.0} and row["wall_s"] == 6780.0
    assert "| 1.8 h CPU + 3.0 min H100 |" in to_markdown([row])  # never one sum of CPU hours and GPU minutes
    (cpu,) = summarize([record(0, 3000.0), record(1, 3600.0)])
    assert "| 1.8 h |" in to_markdown([cpu])


# -- paired comparison -----------------------------------------------------------------------------------------
def _store(tmp_path: Path, rows: dict[str, list[tuple[str, str, list[float]]]]) -> Path:
    """A results store with predictions: config -> [(split digest, fold, P(correct class) per record)]."""
    from jftzoo import __version__
    from jftzoo.bench.predictions import Predictions, write_predictions
    from jftzoo.bench.store import ResultStore

    store = ResultStore(tmp_path / "store").open()
    for fusion, splits in rows.items():
        for digest, fold, p_true in splits:
            true = [i % 2 for i in range(len(p_true))]
            probs = np.array([[1 - p, p] if t == 1 else [p, 1 - p] for p, t in zip(p_true, true, strict=True)])
            key = f"{fusion}-{digest}-{fold}"
            meta = write_predictions(store.dir, key, Predictions(["neg", "pos"], [f"id{i}" for i in
                                                                              range(len(true))], true, probs))
            acc = float(np.mean(np.array(p_true) > 0.5))
            store.append({"key": key, "config_hash": fusion, "jftzoo_version": __version__, "dataset": "d",
                          "text": "t", "vision": "v", "fusion": fusion, "mode": "frozen", "weights": "pretrained",
                          "seed": 0, "fold": fold, "split": {"digest": digest, "groups": "near-duplicates"},
                          "predictions": meta, "metrics": {"auc": 0.5, "accuracy": acc, "f1_macro": acc,
                                                           "f1_weighted": acc}})
    return store.dir


def test_compare_a_row_with_itself_gives_diff_0_and_p_value_1(tmp_path: Path):
    rng = np.random.default_rng(1)
    folder = _store(tmp_path, {"concat": [("s1", "fold0", list(rng.random(40))), ("s1", "fold1",
                                                                                  list(rng.random(40)))]})
    res = CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--a", "fusion=concat", "--b",
                                   "fusion=concat", "--json", "--resamples", "200"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["diff"] == 0 and out["p_value"] == 1 and out["ci95"] == [0, 0] and out["n_pairs"] == 80


def test_compare_finds_a_real_difference_and_refuses_different_splits(tmp_path: Path):
    rng = np.random.default_rng(2)
    good = [list(0.5 + 0.45 * rng.random(60)) for _ in range(2)]  # always right
    coin = [list(rng.random(60)) for _ in range(2)]  # right half the time
    folder = _store(tmp_path, {"good": [("s1", "fold0", good[0]), ("s1", "fold1", good[1])],
                               "coin": [("s1", "fold0", coin[0]), ("s1", "fold1", coin[1])],
                               "other": [("s2", "fold0", coin[0]), ("s2", "fold1", coin[1])]})
    res = CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--a", "fusion=good", "--b",
                                   "fusion=coin", "--json", "--resamples", "300"])
    out = json.loads(res.stdout)
    expected = 1 - np.mean([np.mean(np.array(c) > 0.5) for c in coin])
    assert out["diff"] == pytest.approx(expected) and out["ci95"][0] > 0.3 and out["p_value"] < 0.01
    refused = CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--a", "fusion=good", "--b",
                                       "fusion=other"])
    assert refused.exit_code == 1 and "not run on the same splits" in refused.output and "--shared-splits" in \
        refused.output
    nothing = CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--a", "fusion=good", "--b",
                                       "fusion=other", "--shared-splits"])
    assert nothing.exit_code == 1 and "share no split" in nothing.output
    unknown = CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--a", "fusion=gooood",
                                       "--b", "fusion=coin"])
    assert unknown.exit_code == 2 and "did you mean 'good'" in unknown.output and "Rows:" not in unknown.output
    none = CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--a", "fusion=good,mode=joint",
                                    "--b", "fusion=coin"])  # no close value: the rows show what there is
    assert none.exit_code == 2 and "mode is one of frozen" in none.output and "Rows:" in none.output


def test_compare_selects_rows_by_a_training_field_of_their_stored_configuration(tmp_path: Path):
    """`average_top=3` / `average_top=1` pick two configurations of one head apart without their hashes; a
    configuration that predates a field holds its default; numbers match as numbers."""
    from jftzoo.bench.store import ResultStore

    rng = np.random.default_rng(3)
    folder = _store(tmp_path, {"soup": [("s1", "fold0", list(rng.random(40)))],
                               "plain": [("s1", "fold0", list(rng.random(40)))]})
    store = ResultStore(folder)
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    for r in lines:
        r["fusion"] = "concat"
        r["train_config"] = {"average_top": 3, "lr_encoder": 3e-05} if r["config_hash"] == "soup" else {}
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert len(store.records()) == 2

    def compare(a: str, b: str) -> Any:
        return CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--a", a, "--b", b,
                                        "--json", "--resamples", "200"])

    res = compare("fusion=concat,average_top=3", "fusion=concat,average_top=1")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["a"]["config_hash"] == "soup" and out["b"]["config_hash"] == "plain"
    res = compare("lr_encoder=3e-5", "average_top=1.0")
    assert res.exit_code == 0 and json.loads(res.stdout)["a"]["config_hash"] == "soup", res.output
    per_run = compare("fusion=concat,seed=0", "fusion=concat")  # no configuration holds its seed
    assert per_run.exit_code == 2 and "no field 'seed'" in per_run.output
    typo = compare("fusion=concat,averge_top=3", "fusion=concat")
    assert typo.exit_code == 2 and "did you mean 'average_top'" in typo.output.lower()
    both = compare("fusion=concat", "average_top=3")
    assert both.exit_code == 2 and "matches 2 rows" in both.output


def test_compare_on_the_validation_part_pairs_validation_records_not_test_ones(tmp_path: Path):
    """`--part val` is how two configurations are chosen between: it must read validation, never test."""
    from jftzoo import __version__
    from jftzoo.bench.predictions import Predictions, write_predictions
    from jftzoo.bench.store import ResultStore

    def preds(right: list[bool]) -> Predictions:
        true = [i % 2 for i in range(len(right))]
        probs = np.array([[0.1, 0.9] if (t == 1) == r else [0.9, 0.1] for t, r in zip(true, right, strict=True)])
        return Predictions(["neg", "pos"], [f"id{i}" for i in range(len(true))], true, probs)

    store = ResultStore(tmp_path / "store").open()
    # "val_wins" is right on every validation record and half the test ones; "test_wins" the other way round
    for fusion, val_right, test_right in (("val_wins", [True] * 30, [i % 2 == 0 for i in range(50)]),
                                          ("test_wins", [i % 3 == 0 for i in range(30)], [True] * 50)):
        for fold in ("fold0", "fold1"):
            key = f"{fusion}-{fold}"
            meta = write_predictions(store.dir, key, preds(test_right), preds(val_right))
            store.append({"key": key, "config_hash": fusion, "jftzoo_version": __version__, "dataset": "d",
                          "text": "t", "vision": "v", "fusion": fusion, "mode": "frozen", "weights": "pretrained",
                          "seed": 0, "fold": fold, "split": {"digest": "s1", "groups": "none"}, "predictions": meta,
                          "metrics": {"auc": 0.5, "accuracy": 0.5, "f1_macro": 0.5, "f1_weighted": 0.5}})
    base = ["results", "compare", "--results", str(store.dir), "--a", "fusion=val_wins", "--b", "fusion=test_wins",
            "--resamples", "200"]
    val = json.loads(CliRunner().invoke(cli, [*base, "--part", "val", "--json"]).stdout)
    assert val["part"] == "val" and val["n_pairs"] == 60 and val["diff"] == pytest.approx(1 - 10 / 30)
    assert val["ci95"][0] > 0.4
    test = json.loads(CliRunner().invoke(cli, [*base, "--json"]).stdout)
    assert test["part"] == "test" and test["n_pairs"] == 100 and test["diff"] == pytest.approx(-0.5)
    text = CliRunner().invoke(cli, [*base, "--part", "val"])
    assert text.exit_code == 0 and "60 paired validation records over 2 split(s)" in " ".join(text.stdout.split())
    bad = CliRunner().invoke(cli, [*base, "--part", "train"])
    assert bad.exit_code == 2


def test_predictions_command_prints_one_object_per_record(tmp_path: Path):
    folder = _store(tmp_path, {"concat": [("s1", "fold0", [0.9, 0.2, 0.7]), ("s1", "fold1", [0.6, 0.6, 0.1])]})
    res = CliRunner().invoke(cli, ["results", "predictions", "--results", str(folder), "--json"])
    assert res.exit_code == 0, res.output
    objects = json.loads(res.stdout)
    assert [o["fold"] for o in objects] == ["fold0", "fold1"]
    first = objects[0]
    assert {"key", "dataset", "seed", "fold", "labels", "ids", "true", "probs", "accuracy"} <= set(first)
    assert first["labels"] == ["neg", "pos"] and first["true"] == ["neg", "pos", "neg"]
    recomputed = np.mean([first["labels"][int(np.argmax(p))] == t for p, t in zip(first["probs"], first["true"],
                                                                                  strict=True)])
    assert recomputed == pytest.approx(first["accuracy"]) == pytest.approx(2 / 3)
    lines = CliRunner().invoke(cli, ["results", "predictions", "--results", str(folder)]).stdout.splitlines()
    assert [json.loads(line)["key"] for line in lines] == [o["key"] for o in objects]
    victim = next((folder / "predictions").glob("*.npz"))
    victim.write_bytes(victim.read_bytes()[:-3] + b"xyz")
    damaged = CliRunner().invoke(cli, ["results", "predictions", "--results", str(folder)])
    assert damaged.exit_code == 1 and "does not match the digest" in damaged.output


def test_each_split_protocol_is_its_own_table_and_picks_its_own_best():
    """Validation parts of random and group-aware splits differ: "best on validation" never compares them."""
    from jftzoo.bench.report import table_parts, to_markdown

    def row(split, fusion, val):
        return {"dataset": "d", "split": split, "fusion": fusion, "mode": "frozen", "text": "minilm", "vision": "vit",
                "weights": "pretrained", "config_hash": f"{fusion}{split[-4:]}", "n_splits": 2, "wall_s": 1.0,
                "status": "ok", **{f"{p}{m}_mean": v for p, v in (("", 0.5), ("val_", val))
                                   for m in ("accuracy", "f1_macro", "f1_weighted", "auc")}}

    rows = [row("8:1:1, groups none", "concat", 0.9), row("8:1:1, groups none", "late", 0.8),
            row("8:1:1, groups near-duplicates", "concat", 0.6), row("8:1:1, groups near-duplicates", "late", 0.7)]
    assert [(t, [r["fusion"] for r in p]) for t, p in table_parts(rows)] == [
        ("d · 8:1:1, groups none", ["concat", "late"]), ("d · 8:1:1, groups near-duplicates", ["concat", "late"])]
    md = to_markdown(rows)
    assert "### d · 8:1:1, groups none" in md and "### d · 8:1:1, groups near-duplicates" in md
    bold_rows = [line.split(" | ")[2] for line in md.splitlines() if line.startswith("| ") and "**" in line]
    assert bold_rows == ["concat", "late"]  # the best of each protocol, not late nowhere and concat twice


def test_compare_on_shared_splits_pairs_a_partial_row_on_the_splits_it_has(tmp_path: Path):
    """A row still running (1 of 2 splits) against a finished one: refused by default; with --shared-splits
    paired on the one split both have, the other counted as left out."""
    rng = np.random.default_rng(3)
    good = [list(0.5 + 0.45 * rng.random(50)) for _ in range(2)]
    coin = [list(rng.random(50)) for _ in range(2)]
    folder = _store(tmp_path, {"good": [("s1", "fold0", good[0])],
                               "coin": [("s1", "fold0", coin[0]), ("s1", "fold1", coin[1])]})
    args = ["results", "compare", "--results", str(folder), "--a", "fusion=good", "--b", "fusion=coin"]
    assert CliRunner().invoke(cli, args).exit_code == 1
    res = CliRunner().invoke(cli, [*args, "--shared-splits", "--json", "--resamples", "200"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_pairs"] == 50 and out["n_splits"] == 1 and out["left_out_splits"] == {"a": 0, "b": 1}
    assert out["diff"] == pytest.approx(1 - np.mean(np.array(coin[0]) > 0.5))
    text = CliRunner().invoke(cli, [*args, "--shared-splits", "--resamples", "200"])
    assert "50 paired test records over 1 split(s)" in text.output and "1 of B" in text.output
