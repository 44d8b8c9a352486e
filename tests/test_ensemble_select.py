"""`--select-ensemble N`: the mix of rows validation picks, across modes; test is only reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jftzoo import __version__
from jftzoo.bench.ensemble_select import select_ensembles
from jftzoo.bench.predictions import Predictions, read_predictions, write_predictions
from jftzoo.bench.store import ResultStore
from jftzoo.cli import cli
from jftzoo.errors import JftzooError, UsageError
from jftzoo.train.metrics import evaluate

LABELS = ["negative", "neutral", "positive"]
TRUE = [0, 0, 1, 1, 2, 2]


def _probs(preds: list[int], sure: list[bool]) -> np.ndarray:
    """One row per record: 0.9 on the predicted class when sure, else 0.4 (the other two 0.3 each)."""
    out = np.full((len(preds), 3), 0.05)
    for i, (p, s) in enumerate(zip(preds, sure, strict=True)):
        out[i] = 0.3 if not s else 0.05
        out[i, p] = 0.4 if not s else 0.9
    return out


# Validation: A and B are each right on 4 of 6 records, wrong ones unsure, so A+B is right on all 6;
# C is right on 5 alone. Test: the reverse (C perfect, A and B unsure and wrong together).
VAL = {"A": _probs([0, 0, 1, 1, 0, 0], [True] * 4 + [False] * 2),
       "B": _probs([1, 1, 1, 1, 2, 2], [False] * 2 + [True] * 4),
       "C": _probs([0, 0, 1, 1, 2, 0], [True] * 6)}
TEST = {"A": _probs([1, 1, 1, 1, 0, 0], [True] * 6),
        "B": _probs([1, 1, 1, 1, 0, 0], [False] * 6),
        "C": _probs([0, 0, 1, 1, 2, 2], [True] * 6)}
ROWS = {"A": ("top-k", "concat"), "B": ("frozen", "svm"), "C": ("frozen", "late")}


def _store(folder: Path, rows: dict[str, tuple[str, str]], seeds: dict[str, list[int]] | None = None,
           val: dict[str, np.ndarray] = VAL, test: dict[str, np.ndarray] = TEST,
           ids: dict[str, list[str]] | None = None, versions: dict[str, str] | None = None,
           configs: dict[str, dict[str, object]] | None = None) -> Path:
    store = ResultStore(folder).open()
    for name, (mode, fusion) in rows.items():
        for seed in (seeds or {}).get(name, [0, 1]):
            key = f"{name}-{seed}"
            test_ids = (ids or {}).get(name, [f"t{i}" for i in range(6)])
            meta = write_predictions(folder, key, Predictions(LABELS, test_ids, TRUE, test[name]),
                                     Predictions(LABELS, [f"v{i}" for i in range(6)], TRUE, val[name]))
            store.append({"key": key, "config_hash": f"hash-{name}", "dataset": "toy", "text": "minilm",
                          "vision": "-" if fusion == "text-only" else "efficientnet_lite0", "fusion": fusion,
                          "mode": mode, "weights": "pretrained", "seed": seed, "fold": "test",
                          "jftzoo_version": (versions or {}).get(name, __version__),
                          "protocol": {"groups": "none", "split": "8:1:1"},
                          "split": {"digest": f"split-{seed}", "groups": "none"}, "predictions": meta,
                          "metrics": evaluate(TRUE, test[name], LABELS),
                          "val_metrics": evaluate(TRUE, val[name], LABELS), "wall_s": 10.0, "train_s": 9.0,
                          **({"train_config": configs[name]} if name in (configs or {}) else {})})
    return folder


def test_the_pick_is_the_best_mix_on_validation_and_test_is_only_reported(tmp_path: Path):
    folder = _store(tmp_path, ROWS)
    [choice] = select_ensembles(ResultStore(folder).records(), folder, max_members=3)
    assert choice.members == ["frozen svm", "top-k concat"]  # A+B: 6/6 on validation, against C's 5/6
    assert choice.val_score == 1.0 and choice.candidates == 3 and choice.subsets == 3 + 3 + 1
    assert len(choice.records) == 2 and {r["seed"] for r in choice.records} == {0, 1}
    record = choice.records[0]
    assert record["mode"] == "frozen+top-k" and record["fusion"] == "ensemble(frozen svm+top-k concat)"
    assert record["ensemble"] is True and record["selection"]["on"] == "validation"
    expected = evaluate(TRUE, (TEST["A"] + TEST["B"]) / 2, LABELS)
    assert record["metrics"]["accuracy"] == pytest.approx(expected["accuracy"]) == pytest.approx(2 / 6)
    assert record["val_metrics"]["accuracy"] == 1.0
    # Its probabilities are its members', averaged, so paired comparisons and exports can read it.
    assert read_predictions(folder, record).probs == pytest.approx((TEST["B"] + TEST["A"]) / 2)


def test_the_picks_cost_is_its_members_per_device(tmp_path: Path):
    folder = _store(tmp_path, ROWS)
    lines = (folder / "results.jsonl").read_text().splitlines()
    gpu = {"device": "cuda", "machine": "x86_64, 16 torch threads, NVIDIA H100 80GB HBM3"}
    (folder / "results.jsonl").write_text("".join(  # the top-k row (A) ran on a GPU
        json.dumps({**r, **(gpu if r["key"].startswith("A-") else {})}) + "\n" for r in map(json.loads, lines)))
    [choice] = select_ensembles(ResultStore(folder).records(), folder, max_members=3)
    record = choice.records[0]  # frozen svm (CPU, 10 s) + top-k concat (H100, 10 s)
    assert record["wall_s_by_device"] == {"CPU": 10.0, "H100": 10.0} and record["wall_s"] == 20.0


def test_a_single_row_can_win_and_then_no_ensemble_row_is_added(tmp_path: Path):
    val = dict(VAL, C=_probs([0, 0, 1, 1, 2, 2], [True] * 6))  # C alone is perfect: nothing beats it, ties go small
    folder = _store(tmp_path, ROWS, val=val)
    [choice] = select_ensembles(ResultStore(folder).records(), folder, max_members=3)
    assert choice.members == ["frozen late"] and choice.records == []
    [one] = select_ensembles(ResultStore(_store(tmp_path / "b", ROWS)).records(), tmp_path / "b", max_members=1)
    assert one.members == ["frozen late"] and one.subsets == 3  # singles only: C's 5/6


def test_rows_not_on_every_split_are_left_out_and_listed(tmp_path: Path):
    rows = dict(ROWS, D=("joint", "concat"))
    val = dict(VAL, D=_probs([0, 0, 1, 1, 2, 2], [True] * 6))  # perfect, but on seed 0 only
    folder = _store(tmp_path, rows, seeds={"D": [0]}, val=val, test=dict(TEST, D=TEST["C"]))
    [choice] = select_ensembles(ResultStore(folder).records(), folder)
    assert choice.left_out == ["joint concat"] and "joint concat" not in choice.members
    assert [u[2] for u in choice.units] == [0, 1]


def test_rows_of_an_older_jftzoo_are_not_candidates_and_are_listed(tmp_path: Path):
    folder = _store(tmp_path, ROWS, versions={"B": "0.1.0"})
    [choice] = select_ensembles(ResultStore(folder).records(), folder)
    assert choice.candidates == 2 and "frozen svm" not in choice.members
    assert choice.left_out == ["frozen svm (jftzoo 0.1.0)"]


def test_two_configurations_of_one_head_are_told_apart_by_their_hash(tmp_path: Path):
    folder = _store(tmp_path, dict(ROWS, C=("top-k", "concat")))  # A and C: both top-k concat, other recipes
    [choice] = select_ensembles(ResultStore(folder).records(), folder)
    assert choice.members == ["frozen svm", "top-k concat [hash-A]"]
    # each of the two gets its hash, also the one left out (C on seed 0 only), so neither reads as the other
    folder = _store(tmp_path / "c", dict(ROWS, C=("top-k", "concat")), seeds={"C": [0]})
    [choice] = select_ensembles(ResultStore(folder).records(), folder)
    assert choice.left_out == ["top-k concat [hash-C]"] and "top-k concat [hash-A]" in choice.members


def test_two_configurations_of_one_head_under_named_recipes_are_told_apart_by_the_recipe(tmp_path: Path):
    from jftzoo.train.presets import RECIPES

    fast, demo = ({k: v for k, v in RECIPES[n].items() if k != "mode"} for n in ("fast", "demo"))
    folder = _store(tmp_path, dict(ROWS, C=("top-k", "concat")), seeds={"C": [0]}, configs={"A": fast, "C": demo})
    [choice] = select_ensembles(ResultStore(folder).records(), folder)
    assert choice.members == ["frozen svm", "top-k concat (fast)"] and choice.left_out == ["top-k concat (demo)"]
    # no recipe names them: the field they differ in does
    folder = _store(tmp_path / "b", dict(ROWS, C=("top-k", "concat")), seeds={"C": [0]},
                    configs={"A": {"lr_encoder": 1e-4}, "C": {"lr_encoder": 3e-4}})
    [choice] = select_ensembles(ResultStore(folder).records(), folder)
    assert "top-k concat (lr_encoder=0.0001)" in choice.members
    assert choice.left_out == ["top-k concat (lr_encoder=0.0003)"]


def test_a_store_without_shared_splits_says_there_is_nothing_to_pick(tmp_path: Path):
    folder = _store(tmp_path, ROWS, seeds={"A": [0], "B": [1], "C": [2]})
    assert select_ensembles(ResultStore(folder).records(), folder) == []
    shown = CliRunner().invoke(cli, ["results", "show", "--results", str(folder), "--select-ensemble", "3"])
    assert shown.exit_code == 0 and "nothing to pick from" in " ".join(shown.stderr.split())


def test_a_search_too_large_to_score_is_refused_with_the_largest_n_that_fits(tmp_path: Path, monkeypatch):
    import jftzoo.bench.ensemble_select as es

    monkeypatch.setattr(es, "MAX_SUBSETS", 6)  # 3 rows: N=1 is 3 subsets, N=2 is 6, N=3 is 7
    folder = _store(tmp_path, ROWS)
    with pytest.raises(UsageError, match=r"--select-ensemble 3 over 3 rows is 7 subsets .* --select-ensemble 2 or"
                       ) as refused:
        select_ensembles(ResultStore(folder).records(), folder, max_members=3)
    assert isinstance(refused.value, es.TooManySubsets)  # its counts as fields, for callers showing several caps
    assert (refused.value.rows, refused.value.subsets, refused.value.limit, refused.value.fits) == (3, 7, 6, 2)
    res = CliRunner().invoke(cli, ["results", "show", "--results", str(folder), "--select-ensemble", "3"])
    assert res.exit_code == 2 and "take --select-ensemble 2 or fewer" in " ".join(res.stderr.split())


def test_modes_limit_the_candidates(tmp_path: Path):
    folder = _store(tmp_path, ROWS)
    [choice] = select_ensembles(ResultStore(folder).records(), folder, modes=("frozen",))
    assert choice.members == ["frozen late"] and choice.candidates == 2


def test_rows_on_the_same_split_but_other_records_are_refused(tmp_path: Path):
    folder = _store(tmp_path, ROWS, ids={"C": [f"other{i}" for i in range(6)]})
    with pytest.raises(JftzooError, match=r"share split .* but not their test records"):
        select_ensembles(ResultStore(folder).records(), folder)


def test_results_show_and_compare_take_the_pick(tmp_path: Path):
    folder = _store(tmp_path, ROWS)
    shown = CliRunner().invoke(cli, ["results", "show", "--results", str(folder), "--json", "--select-ensemble", "2"])
    assert shown.exit_code == 0, shown.output
    rows = {r["fusion"]: r for r in json.loads(shown.stdout)}
    picked = rows["ensemble(frozen svm+top-k concat)"]
    assert picked["n_seeds"] == 2 and picked["val_accuracy_mean"] == 1.0
    assert "validation picks frozen svm + top-k concat" in " ".join(shown.stderr.split())
    plain = CliRunner().invoke(cli, ["results", "show", "--results", str(folder), "--json"])
    assert not any(f.startswith("ensemble") for f in (r["fusion"] for r in json.loads(plain.stdout)))
    cmp = CliRunner().invoke(cli, ["results", "compare", "--results", str(folder), "--select-ensemble", "2",
                                   "--a", "mode=frozen+top-k", "--b", "fusion=late", "--json"])
    assert cmp.exit_code == 0, cmp.output
    result = json.loads(cmp.stdout)
    assert result["a_mean"] == pytest.approx(2 / 6) and result["b_mean"] == 1.0 and result["n_pairs"] == 12
