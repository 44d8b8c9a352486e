"""The MVSA answer table's choices (benchmarks/mvsa_single.py): what validation picks, and where a row ran."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mvsa_single.py"
spec = importlib.util.spec_from_file_location("mvsa_single_table", SCRIPT)
table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table)


def _records(config: str, vals: dict[int, float], tests: dict[int, float], device: str = "cpu") -> list[dict]:
    machine = "x86_64, 16 torch threads, NVIDIA H100 80GB HBM3" if device == "cuda" else "x86_64, 1 torch threads"
    return [{"config_hash": config, "seed": s, "val_metrics": {"accuracy": v}, "metrics": {"accuracy": tests[s]},
             "device": device, "machine": machine} for s, v in vals.items()]


def _row(config: str, mode: str, fusion: str) -> dict:
    return {"config_hash": config, "mode": mode, "fusion": fusion}


def test_validation_picks_comparing_rows_on_the_seeds_they_share_never_on_test():
    by_hash = {
        # frozen: 5 seeds; best on seeds 2-4, which the joint row lacks; worse than joint on seeds 0-1, better on test
        "f": _records("f", {0: 0.70, 1: 0.70, 2: 0.90, 3: 0.90, 4: 0.90}, {0: 0.80, 1: 0.80, 2: 0.8, 3: 0.8, 4: 0.8}),
        "j": _records("j", {0: 0.75, 1: 0.75}, {0: 0.70, 1: 0.70}, device="cuda"),
        # seeds 2-3: shares 2 seeds with frozen (which it beats there), none with joint
        "k": _records("k", {2: 0.95, 3: 0.95}, {2: 0.60, 3: 0.60}),
        "t": _records("t", {0: 0.99}, {0: 0.99}),  # one seed: compared with nothing
        "m": _records("m", {0: 0.99, 1: 0.99}, {0: 0.5, 1: 0.5}),  # the majority baseline: never a candidate
    }
    part = [_row("f", "frozen", "concat"), _row("j", "joint", "concat"), _row("k", "top-k", "concat"),
            _row("t", "top-k", "late"), _row("m", "frozen", "majority")]
    line = table.chosen_on_validation(part, by_hash)
    # joint beats frozen on seeds 0-1 (+1 of 1); top-k beats frozen on seeds 2-3 (+1 of 1); frozen loses both (-2)
    assert line.startswith("Chosen on validation") and "frozen concat (-2)" in line
    assert "joint concat (+1 of 1 pairs)" in line or "top-k concat (+1 of 1 pairs)" in line
    assert "Not ranked yet (fewer than 2 seeds shared with any row): top-k late." in line and "majority" not in line


def test_the_leader_is_shown_against_the_runner_up_on_their_shared_seeds():
    by_hash = {"f": _records("f", {0: 0.70, 1: 0.72, 2: 0.9}, {0: 0.80, 1: 0.80, 2: 0.1}),
               "j": _records("j", {0: 0.75, 1: 0.75}, {0: 0.70, 1: 0.72})}
    line = table.chosen_on_validation([_row("f", "frozen", "concat"), _row("j", "joint", "concat")], by_hash)
    assert "joint concat (+1 of 1 pairs), then frozen concat (-1)." in line
    assert ("joint concat against frozen concat on seeds 0, 1: validation 0.750 vs 0.710 "
            "(their test 0.710 vs 0.800)") in line


def test_ran_on_names_the_gpu_model_or_cpu():
    assert table.ran_on(_records("j", {0: 0.7}, {0: 0.7}, device="cuda")) == "H100"
    assert table.ran_on(_records("f", {0: 0.7}, {0: 0.7})) == "CPU"
    both = _records("j", {0: 0.7}, {0: 0.7}, device="cuda") + _records("f", {1: 0.7}, {1: 0.7})
    assert table.ran_on(both) == "CPU+H100"


def test_train_minutes_are_split_by_device_when_a_rows_seeds_ran_on_several():
    gpu = [{**r, "train_s": 120.0} for r in _records("j", {0: 0.7, 1: 0.7}, {0: 0.7, 1: 0.7}, device="cuda")]
    cpu = [{**r, "train_s": 1800.0} for r in _records("j", {2: 0.7}, {2: 0.7})]
    assert table.train_minutes(gpu) == "4.0"
    assert table.train_minutes(gpu + cpu) == "30.0 CPU + 4.0 H100"
    gpu = [{**r, "key": f"g{i}"} for i, r in enumerate(gpu)]
    cpu = [{**r, "key": f"c{i}"} for i, r in enumerate(cpu)]
    mix = {"device": "cpu+cuda", "members": ["g0", "c0"], "train_s": 1920.0}  # an ensemble: its members trained
    made = table.trained([mix], {r["key"]: r for r in gpu + cpu})
    assert table.train_minutes(made) == "30.0 CPU + 2.0 H100" and table.ran_on(made) == "CPU+H100"


def test_validations_ensemble_pick_competes_but_an_unselected_ensemble_does_not():
    by_hash = {"f": _records("f", {0: 0.70, 1: 0.72}, {0: 0.80, 1: 0.80}),
               "s": _records("s", {0: 0.80, 1: 0.80}, {0: 0.75, 1: 0.75}),
               "e": _records("e", {0: 0.90, 1: 0.90}, {0: 0.75, 1: 0.75})}
    for record in by_hash["s"]:
        record["selection"] = {"on": "validation", "metric": "accuracy", "subsets": 7, "max_members": 3,
                               "candidates": 3}
    part = [_row("f", "frozen", "concat"), _row("s", "frozen+top-k", "ensemble(frozen svm+top-k concat)"),
            _row("e", "frozen", "ensemble(concat+late)")]
    line = table.chosen_on_validation(part, by_hash)
    assert "frozen+top-k ensemble(frozen svm+top-k concat) (+1 of 1 pairs), then frozen concat (-1)." in line
    assert "ensemble(concat+late)" not in line  # every head averaged: not a choice anyone made on validation
    assert table.setting(by_hash["s"][0]) == ("picked on validation: best mean val accuracy of 7 subsets of up to 3 "
                                               "of 3 rows")


def _four_row_store(folder: Path) -> None:
    """A results store of 4 rows (frozen concat and SVM, top-k concat and text-only) on 2 splits of 6 records."""
    import numpy as np

    from jftzoo import __version__
    from jftzoo.bench.predictions import Predictions, write_predictions
    from jftzoo.bench.store import ResultStore
    from jftzoo.train.metrics import evaluate

    labels, true = ["negative", "neutral", "positive"], [0, 0, 1, 1, 2, 2]
    rng = np.random.default_rng(0)
    store = ResultStore(folder).open()
    for name, mode, fusion in (("b", "frozen", "concat"), ("s", "frozen", "svm"), ("k", "top-k", "concat"),
                               ("t", "top-k", "text-only")):
        for seed in range(2):
            val, test = rng.dirichlet(np.ones(3), 6), rng.dirichlet(np.ones(3), 6)
            meta = write_predictions(folder, f"{name}{seed}", Predictions(labels, [f"t{i}" for i in range(6)], true,
                                                                        test),
                                     Predictions(labels, [f"v{i}" for i in range(6)], true, val))
            store.append({"key": f"{name}{seed}", "config_hash": f"hash-{name}", "dataset": "mvsa", "fusion": fusion,
                          "text": "minilm", "vision": "-" if fusion == "text-only" else "efficientnet_lite0",
                          "mode": mode, "weights": "pretrained", "seed": seed, "fold": "test",
                          "jftzoo_version": __version__, "protocol": {"groups": "none", "split": "8:1:1"},
                          "split": {"digest": f"split-{seed}", "groups": "none"}, "predictions": meta,
                          "metrics": evaluate(true, test, labels), "val_metrics": evaluate(true, val, labels),
                          "wall_s": 1.0, "train_s": 1.0})


def test_the_table_shows_validations_ensemble_pick_and_what_each_size_cap_would_pick(tmp_path, monkeypatch):
    import json
    import sys

    folder = tmp_path / "mvsa"
    _four_row_store(folder)
    monkeypatch.setattr(sys, "argv", ["mvsa_single.py", "--results", str(folder), "--resamples", "99"])
    table.main()
    text = (tmp_path / "mvsa.md").read_text()
    assert "Ensemble search over all rows (every subset of up to 3 of the 4 rows on all 2 splits" in text
    assert "Ensemble search over frozen rows only (every subset of up to 3 of the 2 rows" in text
    cap_line = next(line for line in text.splitlines() if line.startswith("The size cap of the ensemble search"))
    assert all(f"up to {n}:" in cap_line for n in (2, 3, 4))  # 4 candidates: a cap of 5 picks as 4 does
    exported = json.loads((tmp_path / "mvsa.json").read_text())
    assert all(not r["fusion"].startswith("ensemble(frozen ") or r["mode"] != "frozen" for r in exported)


def test_a_cap_beside_the_picks_with_too_many_subsets_is_said_not_searched_and_the_picks_own_cap_fails(
        tmp_path, monkeypatch):
    import sys

    import pytest

    import jftzoo.bench.ensemble_select as ensemble_select
    from jftzoo.errors import UsageError

    folder = tmp_path / "mvsa"
    _four_row_store(folder)
    monkeypatch.setattr(sys, "argv", ["mvsa_single.py", "--results", str(folder), "--resamples", "99"])
    monkeypatch.setattr(ensemble_select, "MAX_SUBSETS", 14)  # 4 rows: up to 3 is 14 subsets, up to 4 is 15
    table.main()
    cap_line = next(line for line in (tmp_path / "mvsa.md").read_text().splitlines()
                    if line.startswith("The size cap of the ensemble search"))
    assert "up to 3: " in cap_line and "up to 3: not searched" not in cap_line
    assert "up to 4: not searched (15 subsets of 4 rows, above the 14 the library scores)" in cap_line
    monkeypatch.setattr(ensemble_select, "MAX_SUBSETS", 13)  # the pick's own cap (3) cannot be skipped
    with pytest.raises(UsageError, match="select-ensemble 3 over 4 rows"):
        table.main()


def _fine_tuned(seed: int, groups: str, mode: str, fusion: str, recipe: dict) -> dict:
    tc = {"seed": seed, "mode": mode, "weight_decay": 0.01, **recipe}
    return {"seed": seed, "mode": mode, "fusion": fusion, "protocol": {"groups": groups}, "train_config": tc,
            "config_hash": f"{groups}-{mode}-{fusion}-{sorted(recipe.items())}"}


def test_a_fine_tuned_row_the_issue_asks_for_makes_the_table_partial_until_it_has_5_seeds():
    expected = {(mode, fusion, name): recipe for mode, fusion, name, recipe in table.expected_rows()}
    best, automm = expected[("joint", "concat", "`--recipe best`")], expected[("joint", "concat", "`--recipe automm`")]
    paper = expected[("joint", "attention-paper", "the paper's recipe")]
    assert paper["scheduler"] == "exponential" and automm["weight_decay"] == 1e-3 and best["layer_decay"] == 0.8
    records = []
    for groups in ("none", "near-duplicates"):  # every expected row complete on both protocols
        for mode, fusion, _, recipe in table.expected_rows():
            records += [_fine_tuned(s, groups, mode, fusion, recipe) for s in range(5)]
    assert table.missing_rows(records) == ([], set())
    for r in records:  # records keep a field at its default out of their config (the paper's raw tweets: "none")
        if r["train_config"].get("text_normalizer") == "none":
            del r["train_config"]["text_normalizer"]
    assert table.missing_rows(records) == ([], set())
    # group-aware attention-paper has 2 seeds; literature automm none, though a concat row of another recipe
    # (lr 2e-5) has 5 seeds: it is not the automm row
    kept = [r for r in records if not (r["protocol"]["groups"] == "near-duplicates"
                                       and r["fusion"] == "attention-paper" and r["seed"] > 1)
            and not (r["protocol"]["groups"] == "none" and r["train_config"].get("weight_decay") == 1e-3)]
    kept += [_fine_tuned(s, "none", "joint", "concat", {**automm, "lr_encoder": 2e-5}) for s in range(5)]
    missing, counted = table.missing_rows(kept)
    assert missing == ["none joint concat (`--recipe automm`) (0/5)",
                       "near-duplicates joint attention-paper (the paper's recipe) (2/5)"]
    # five seeds of a checkpoint soup of `best` are not the `best` row's seeds
    soups = [r for r in kept if not (r["protocol"]["groups"] == "none" and r["fusion"] == "concat"
                                     and r["train_config"].get("layer_decay") == 0.8)]
    soups += [_fine_tuned(s, "none", "joint", "concat", {**best, "average_top": 3}) for s in range(5)]
    assert table.missing_rows(soups)[0][0] == "none joint concat (`--recipe best`) (0/5)"
    assert counted == {f"near-duplicates-joint-attention-paper-{sorted(paper.items())}"}


def test_two_rows_of_one_mode_and_head_read_apart_by_their_named_recipe():
    expected = {(mode, fusion, name): recipe for mode, fusion, name, recipe in table.expected_rows()}
    best, automm = expected[("joint", "concat", "`--recipe best`")], expected[("joint", "concat", "`--recipe automm`")]
    by_hash = {"b": [{**r, "mode": "joint", "fusion": "concat", "train_config": {"mode": "joint", **best}}
                     for r in _records("b", {0: 0.75, 1: 0.75}, {0: 0.7, 1: 0.7})],
               "a": [{**r, "mode": "joint", "fusion": "concat", "train_config": {"mode": "joint", **automm}}
                     for r in _records("a", {0: 0.70, 1: 0.70}, {0: 0.7, 1: 0.7})]}
    line = table.chosen_on_validation([_row("b", "joint", "concat"), _row("a", "joint", "concat")], by_hash)
    assert "joint concat (`--recipe best`) (+1 of 1 pairs), then joint concat (`--recipe automm`) (-1)." in line
    assert table.setting(by_hash["a"][0]).startswith("`--recipe automm`: epochs<=10, layer_decay=0.9")
    # a setting that is no named recipe (here lr 2e-5), and frozen rows, keep their plain names
    other = {**by_hash["a"][0], "train_config": {"mode": "joint", **automm, "lr_encoder": 2e-5}}
    assert table.row_name(other) == "joint concat" and not table.setting(other).startswith("`")
    assert table.recipe_name({**by_hash["b"][0], "mode": "frozen"}) is None
    # an option on top of a recipe (the checkpoint soup) is its own row and reads apart from the recipe's
    soup = {**by_hash["b"][0], "train_config": {"mode": "joint", **best, "average_top": 3, "absent_as": "x"}}
    assert table.row_name(soup) == "joint concat (`--recipe best --average-top 3`)"
    assert table.setting(soup).startswith("`--recipe best --average-top 3`: epochs<=8, average_top=3")
    paper = {**expected[("joint", "attention-paper", "the paper's recipe")], "average_top": 3}
    assert table.recipe_name({"mode": "joint", "train_config": paper}) == "the paper's recipe + `--average-top 3`"
    # MVSA's own default (the tweet normaliser) is no option on top; elsewhere it is
    mvsa = {"mode": "joint", "text": "minilm", "train_config": {**automm, "text_normalizer": "tweet"}}
    assert table.recipe_name({**mvsa, "dataset": "mvsa-single:x"}) == "`--recipe automm`"
    assert table.recipe_name({**mvsa, "dataset": "emoji-sentiment"}) == "`--recipe automm --text-normalizer tweet`"


def test_an_ensemble_members_hash_tag_reads_as_its_recipe_in_the_tables_prose():
    expected = {(mode, fusion, name): recipe for mode, fusion, name, recipe in table.expected_rows()}
    automm = expected[("joint", "concat", "`--recipe automm`")]
    by_hash = {"db84fa151968736e": [{"mode": "joint", "fusion": "concat", "train_config": {"mode": "joint", **automm}}],
               "0123456789abcdef": [{"mode": "joint", "fusion": "concat",
                                     "train_config": {"lr_encoder": 1e-5, "max_epochs": 10}}]}
    line = "picks joint concat [db84fa15] + joint concat [01234567] + top-k concat"
    # a named recipe by its name; a setting no recipe names by what differs from the defaults
    assert table.readable(line, by_hash) == ("picks joint concat (`--recipe automm`) + joint concat (epochs<=10, "
                                             "lr_encoder=1e-05) + top-k concat")
    # the library's own recipe tag reads as the table's rows do; the paper's head keeps its name
    assert table.readable("joint text-only (best) + top-k concat (fast) + joint attention-paper", {}) == \
        "joint text-only (`--recipe best`) + top-k concat (`--recipe fast`) + joint attention-paper"
    # the library's recipe with options on top of it (jftzoo.train.presets.recipe_label) reads as the rows do
    assert table.readable("joint concat (best) + joint concat (best --average-top 3) + top-k concat (fast "
                          "--text-normalizer none --lr-head 0.001)", {}) == \
        ("joint concat (`--recipe best`) + joint concat (`--recipe best --average-top 3`) + top-k concat (`--recipe "
         "fast --text-normalizer none --lr-head 0.001`)")


def test_a_seed_ensemble_reads_as_an_ensemble_in_the_tables_prose():
    plain = {"mode": "frozen", "fusion": "concat", "train_config": {"mode": "frozen"}}
    ensemble = {**plain, "train_config": {"mode": "frozen", "seed_ensemble": 5}}
    assert table.row_name(plain) == "frozen concat"
    assert table.row_name(ensemble) == "frozen concat (ensemble of 5 seeds)"
    by_hash = {"f": [{**r, **plain} for r in _records("f", {0: 0.70, 1: 0.70}, {0: 0.7, 1: 0.7})],
               "e": [{**r, **ensemble} for r in _records("e", {0: 0.75, 1: 0.75}, {0: 0.7, 1: 0.7})]}
    line = table.chosen_on_validation([_row("f", "frozen", "concat"), _row("e", "frozen", "concat")], by_hash)
    assert "frozen concat (ensemble of 5 seeds) (+1 of 1 pairs), then frozen concat (-1)." in line
