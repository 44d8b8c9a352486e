"""`jftzoo tune`: an Optuna search on validation data that finishes, resumes, and whose printed bench
options reproduce the best trial's validation score."""

from __future__ import annotations

import json
import shlex

import optuna
import pytest
from click.testing import CliRunner

from jftzoo.bench.tune import Param, parse_param
from jftzoo.cli import cli
from jftzoo.errors import UsageError

BASE = ["tune", "--data", "emoji-sentiment", "--fusion", "concat", "--mode", "frozen", "--limit", "40",
        "--epochs", "2", "--param", "lr_head=1e-4:3e-3:log", "--param", "label_smoothing=0:0.2",
        "--param", "max_epochs=1:2", "--json"]


def test_tune_finishes_resumes_and_its_options_reproduce_the_best_validation_score(tmp_path, monkeypatch):
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "store"
    first = CliRunner().invoke(cli, [*BASE, "--trials", "2", "--out", str(out)])
    assert first.exit_code == 0, first.output
    got = json.loads(first.stdout)
    (db,) = (out / "tune").glob("*.db")
    again = CliRunner().invoke(cli, [*BASE, "--trials", "3", "--out", str(out)])  # resumes: one more trial
    assert again.exit_code == 0, again.output
    best = json.loads(again.stdout)
    assert best["study"] == got["study"] and best["trials"] == 3
    study = optuna.load_study(study_name=best["study"], storage=f"sqlite:///{db}")
    assert len(study.trials) == 3 and best["best_value"] == pytest.approx(study.best_value)

    command = shlex.split(best["bench_command"])
    assert command[:2] == ["jftzoo", "bench"] and "--monitor" in command
    rerun = CliRunner().invoke(cli, [*command[1:], "--out", str(tmp_path / "rerun"), "--json"])
    assert rerun.exit_code == 0, rerun.output
    rows = {r["fusion"]: r for r in json.loads(rerun.stdout)}
    assert rows["concat"]["val_accuracy_mean"] == pytest.approx(best["best_value"], abs=1e-9)


def test_tune_never_reads_test_records(tmp_path, monkeypatch):
    from jftzoo.bench import cells

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    seen: list[set[str]] = []
    real = cells.train_and_validate

    def spy(cell, config, encoders, features, labels, train, val, *args, **kwargs):
        seen.append({r.id for r in train} | {r.id for r in val})
        return real(cell, config, encoders, features, labels, train, val, *args, **kwargs)

    monkeypatch.setattr(cells, "train_and_validate", spy)
    res = CliRunner().invoke(cli, [*BASE, "--trials", "1", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    (manifest,) = (tmp_path / "s" / "splits").glob("*.json")
    test_ids = set(json.loads(manifest.read_text())["parts"]["test"])
    assert seen and test_ids and all(not (ids & test_ids) for ids in seen)


def test_param_parsing_names_what_is_wrong():
    assert parse_param("lr_head=1e-4:3e-3:log") == Param("lr_head", 1e-4, 3e-3, log=True)
    assert parse_param("fusion=concat,gated").choices == ("concat", "gated")
    assert parse_param("max_epochs=2:6").integer
    assert parse_param("average_top=1:3").integer and parse_param("average-top=1,3").choices == (1, 3)
    with pytest.raises(UsageError, match="lr_head"):
        parse_param("lr_haed=1:2")
    with pytest.raises(UsageError, match="LOW < HIGH"):
        parse_param("lr_head=3:1")


def test_a_dataset_default_names_a_new_study_and_the_option_that_undoes_it_the_old_one(monkeypatch):
    """MVSA's tweet normaliser default changes what trials train: its studies must not resume older ones, and
    `--text-normalizer none` (what those trained with) must find them again."""
    import jftzoo.datasets.registry as registry
    from jftzoo.bench.grid import BenchConfig
    from jftzoo.bench.tune import Tuning

    def name(train: dict, *params: str) -> str:
        config = BenchConfig(data=("mvsa-single:/x",), fusion=("concat",), train=train, split="8:1:1", folds=None)
        return Tuning(config, [parse_param(p) for p in ("lr_head=1e-4:3e-3:log", *params)]).study_name()

    default, raw, tweet = name({}), name({"text_normalizer": "none"}), name({"text_normalizer": "tweet"})
    assert default == tweet and default != raw
    searched = name({}, "text_normalizer=none,tweet")  # every trial sets it: the default changes nothing
    monkeypatch.setattr(registry, "train_defaults", lambda data, reads_text=True: {})  # as before the default
    assert name({}) == raw and name({}, "text_normalizer=none,tweet") == searched
