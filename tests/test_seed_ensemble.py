"""`--seed-ensemble N` (bench): N models from different seeds on each split, their probabilities averaged, the row
labelled as an ensemble; commands that keep or score one model refuse it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from jftzoo.cli.app import cli

BENCH = ["bench", "--fusion", "concat", "--text", "minilm", "--limit", "40", "--folds", "2", "--seeds", "3", "--json"]


@pytest.fixture()
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _concat(store: Path) -> list[dict[str, Any]]:
    from jftzoo.bench.store import ResultStore

    return sorted((r for r in ResultStore(store).records() if r["fusion"] == "concat"), key=lambda r: r["fold"])


def test_a_seed_ensemble_averages_its_members_and_its_first_member_is_the_single_model(
        offline_cache: Path, monkeypatch: pytest.MonkeyPatch):
    import jftzoo.bench.cells as cells
    import jftzoo.train.trainer as trainer
    from jftzoo.bench.predictions import read_parts

    members: list[dict[str, Any]] = []  # per member: its seed, validation and test probabilities
    real_fit, real_predict = cells.train_and_validate, trainer.predict_proba

    def fit_spy(cell, config, encoders, features, labels, train, val, seed, *args, **kwargs):
        model, result, val_probs = real_fit(cell, config, encoders, features, labels, train, val, seed, *args, **kwargs)
        if cell.fusion == "concat":
            members.append({"seed": seed, "val": np.asarray(val_probs), "test_records": kwargs["test"]})
        return model, result, val_probs

    def predict_spy(model, records, *args, **kwargs):
        probs = real_predict(model, records, *args, **kwargs)
        if members and records is members[-1]["test_records"]:
            members[-1]["test"] = np.asarray(probs)
        return probs

    monkeypatch.setattr(cells, "train_and_validate", fit_spy)
    monkeypatch.setattr(trainer, "predict_proba", predict_spy)
    res = CliRunner().invoke(cli, [*BENCH, "--seed-ensemble", "3", "--out", str(offline_cache / "ens")])
    assert res.exit_code == 0, res.output
    assert [m["seed"] for m in members] == [3, 1003, 2003] * 2  # 3 members on each of the 2 folds
    ensemble = _concat(offline_cache / "ens")
    for fold, record in enumerate(ensemble):
        mine = members[3 * fold: 3 * fold + 3]
        stored = read_parts(offline_cache / "ens", record, ("val", "test"))
        for part in ("val", "test"):
            assert np.allclose(stored[part].probs, np.mean([m[part] for m in mine], axis=0), atol=1e-6)
        assert not np.allclose(mine[0]["val"], mine[1]["val"])  # the members are different models
        assert record["seed_ensemble"]["seeds"] == [3, 1003, 2003]

    res = CliRunner().invoke(cli, [*BENCH, "--out", str(offline_cache / "one")])
    assert res.exit_code == 0, res.output
    single = _concat(offline_cache / "one")
    for fold, record in enumerate(single):  # the same split, one model: member 0 of the ensemble
        stored = read_parts(offline_cache / "one", record, ("val",))
        assert np.allclose(stored["val"].probs, members[3 * fold]["val"], atol=1e-6)
        assert "seed_ensemble" not in record
    assert single[0]["split"]["digest"] == ensemble[0]["split"]["digest"]
    assert single[0]["config_hash"] != ensemble[0]["config_hash"]


def test_the_ensemble_row_is_labelled_as_one_and_size_1_is_the_single_model(offline_cache: Path):
    out = str(offline_cache / "store")
    runner = CliRunner()
    one = runner.invoke(cli, [*BENCH, "--seed-ensemble", "1", "--out", out])
    again = runner.invoke(cli, [*BENCH, "--out", out])  # size 1 is no option: nothing new to run
    assert one.exit_code == 0 and again.exit_code == 0, one.output + again.output
    assert again.stderr.startswith("0 new record(s)")
    two = runner.invoke(cli, [*BENCH, "--seed-ensemble", "2", "--out", out])
    assert two.exit_code == 0, two.output
    rows = [r for r in json.loads(two.stdout) if r["fusion"] == "concat"]
    assert [r["seed_ensemble"] for r in rows] == [2]
    report = offline_cache / "report"
    shown = runner.invoke(cli, ["results", "export", "--results", out, "--format", "md", "--format", "csv",
                                "--out", str(report)])
    assert shown.exit_code == 0, shown.output
    lines = [line for line in (report / "results.md").read_text().splitlines() if "| concat" in line]
    assert len(lines) == 2 and sum("| concat (ensemble of 2 seeds) |" in line for line in lines) == 1
    header, *body = (report / "results.csv").read_text().splitlines()
    at = header.split(",").index("seed_ensemble")
    assert sorted(line.split(",")[at] for line in body if ",concat," in line) == ["1", "2"]


def test_labels_in_charts_and_ensemble_members_say_ensemble():
    from jftzoo.bench.report import distinct_labels

    labels = distinct_labels({"a" * 12: ("frozen concat", None, {"mode": "frozen"}),
                              "b" * 12: ("frozen concat", None, {"mode": "frozen", "seed_ensemble": 5}),
                              "c" * 12: ("frozen late", None, None)})
    assert labels == {"a" * 12: "frozen concat", "b" * 12: "frozen concat (ensemble of 5 seeds)",
                      "c" * 12: "frozen late"}


@pytest.mark.parametrize("args", [
    ["train", "--fusion", "concat", "--seed-ensemble", "3", "--out", "m"],
    ["tune", "--trials", "1", "--seed-ensemble", "3"],
    [*BENCH, "--seed-ensemble", "3", "--explain"],
])
def test_commands_that_keep_score_or_explain_one_model_refuse_an_ensemble(args: list[str], offline_cache: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(offline_cache)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert "--seed-ensemble" in " ".join(res.output.split())


def test_a_size_below_1_is_refused():
    from jftzoo.errors import UsageError
    from jftzoo.train.config import TrainConfig

    with pytest.raises(UsageError, match="seed_ensemble must be at least 1"):
        TrainConfig(seed_ensemble=0)


def test_the_estimator_refuses_an_ensemble_rather_than_train_one_model():
    from jftzoo.errors import UsageError
    from jftzoo.train.classifier import FusionClassifier

    with pytest.raises(UsageError, match=r"--seed-ensemble 3: jftzoo train \(FusionClassifier\) keeps one model"):
        FusionClassifier("minilm", "efficientnet_lite0", "concat", seed_ensemble=3)
    assert FusionClassifier("minilm", "efficientnet_lite0", "concat", seed_ensemble=1).train_config.seed_ensemble == 1
