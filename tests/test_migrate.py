"""Key scheme 2: a configuration is named without library versions (so seeds run on several machines resume and
share a row), and `jftzoo results migrate` re-keys scheme-1 records only after checking them."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_bench import CountingPlugin

from jftzoo.bench.grid import BenchConfig, Cell, config_hash, record_key
from jftzoo.bench.runner import run_bench
from jftzoo.bench.store import ResultStore
from jftzoo.cli import cli
from jftzoo.features import library_versions

OTHER = {"torch": "2.11.0", "transformers": "5.17.0", "timm": "1.0.29", "tokenizers": "0.23.2", "Pillow": "12.3.0"}
CONFIG = {"text": ["count-t1"], "vision": ["count-v1"], "fusion": ["concat"], "folds": 2, "epochs": 1, "limit": 20}


def _err(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


def _as_scheme_1(record: dict, libraries: dict) -> dict:
    """The record as scheme 1 wrote it on a machine with `libraries`: fingerprints (and so keys) named them."""
    from jftzoo.bench.cells import Encoders
    from jftzoo.features import describe_model, fingerprint_of

    encoders = Encoders(BenchConfig(random_init=True))
    prints = {n: fingerprint_of({**describe_model(encoders.get(n)), "libraries": libraries})
              for n in record["fingerprints"]}
    cell = Cell(**{f.name: record[f.name] for f in fields(Cell)})
    identity = {"jftzoo": record["jftzoo_version"], "encoders": prints, "train": record["train_config"]}
    old = {k: v for k, v in record.items() if k not in ("key_scheme", "libraries")}
    if libraries != library_versions():  # made there: its `versions` say torch.__version__ (local tag), timm, ...
        old["versions"] = {**old["versions"], "torch": libraries["torch"] + "+cu130",
                           "transformers": libraries["transformers"], "timm": libraries["timm"]}
    return {**old, "fingerprints": prints, "config_hash": config_hash(cell, record["protocol"], identity),
            "key": record_key(cell, record["protocol"], identity, record["split"]["digest"], record["fold"],
                              record["seed"])}


def _rewrite(store: Path, records: list[dict]) -> None:
    (store / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def test_other_library_versions_resume_the_same_configuration(register_plugin, tmp_path, monkeypatch):
    register_plugin(CountingPlugin(), "counting-encoders")
    first = run_bench(BenchConfig(**CONFIG), tmp_path / "r")
    assert first.new_records == 8 and all(r["libraries"] == library_versions() for r in first.records)
    monkeypatch.setattr("jftzoo.features.library_versions", lambda: dict(OTHER))  # "a GPU machine's torch"
    again = run_bench(BenchConfig(**CONFIG), tmp_path / "r")
    assert again.new_records == 0 and again.skipped_records == 8
    more = run_bench(BenchConfig(**{**CONFIG, "seeds": [0, 1]}), tmp_path / "r")  # seed 1 runs "there"
    assert more.new_records == 8 and {r["libraries"]["torch"] for r in more.records} == {library_versions()["torch"],
                                                                                          "2.11.0"}
    from jftzoo.bench.report import summarize

    rows = [r for r in summarize(more.records) if r["fusion"] == "concat"]
    assert len(rows) == 1 and rows[0]["n_splits"] == 4  # one row over both machines' records


def test_migrate_rekeys_checked_records_and_leaves_the_rest(register_plugin, tmp_path):
    register_plugin(CountingPlugin(), "counting-encoders")
    store = tmp_path / "r"
    current = run_bench(BenchConfig(**CONFIG), store).records
    here = [_as_scheme_1(r, library_versions()) for r in current[:4]]
    gpu = [_as_scheme_1(r, OTHER) for r in current[4:7]]
    edited = {**_as_scheme_1(current[7], OTHER), "seed": 5}  # its key no longer rebuilds from its fields
    _rewrite(store, here + gpu + [edited])
    notes: list[str] = []
    run_bench(BenchConfig(**CONFIG), tmp_path / "r",
              progress=lambda e: notes.append(e.get("message", "")) if e["event"] == "note" else None)
    assert any("stored under an earlier key scheme" in n and "jftzoo results migrate" in n for n in notes)
    _rewrite(store, here + gpu + [edited])  # without the records that bench just ran again

    res = CliRunner().invoke(cli, ["results", "migrate", "--results", str(store)])
    assert res.exit_code == 1 and "re-keyed 4 record(s)" in _err(res)  # this machine's; the GPU's unchecked
    assert _err(res).count("left as it was") == 4 and "its key does not rebuild from its fields" in _err(res)
    assert "fingerprint" in _err(res) and "--environment" in _err(res)
    env = "tokenizers=0.23.2,Pillow=12.3.0"  # the records' own versions name the rest (torch without its local tag)
    res = CliRunner().invoke(cli, ["results", "migrate", "--results", str(store), "--environment", env])
    assert res.exit_code == 1 and "re-keyed 3 record(s), 4 already current" in _err(res)
    assert "made under Pillow 12.3.0, timm 1.0.29, tokenizers 0.23.2, torch 2.11.0" in _err(res)
    records = ResultStore(store).records()
    assert [r["key"] for r in records[:7]] == [r["key"] for r in current[:7]]  # back to what scheme 2 computes
    assert [r["config_hash"] for r in records[:7]] == [r["config_hash"] for r in current[:7]]
    assert records[7] == edited  # left exactly as it was, not dropped
    assert [r["libraries"] for r in records[4:7]] == [OTHER] * 3
    assert records[4]["migrated_from"]["key"] == gpu[0]["key"]


def test_a_task_stored_twice_keeps_the_first_and_moves_the_other_aside(register_plugin, tmp_path):
    register_plugin(CountingPlugin(), "counting-encoders")
    store = tmp_path / "r"
    records = run_bench(BenchConfig(**{**CONFIG, "fusion": ["svm"], "limit": 60}), store).records
    record = next(r for r in records if r["fusion"] == "svm")
    twice = [_as_scheme_1(record, library_versions()), _as_scheme_1(record, OTHER)]  # same seed, two machines
    assert twice[0]["key"] != twice[1]["key"]
    _rewrite(store, twice)
    res = CliRunner().invoke(cli, ["results", "migrate", "--results", str(store), "--environment",
                                   ",".join(f"{k}={v}" for k, v in OTHER.items())])
    assert res.exit_code == 0 and "1 stored twice" in _err(res), res.output
    assert [r["key"] for r in ResultStore(store).records()] == [record["key"]]
    moved = [json.loads(line) for line in (store / "results.superseded.jsonl").read_text().splitlines()]
    assert moved == [twice[1]]


def test_dry_run_changes_nothing_and_bad_environments_are_usage_errors(register_plugin, tmp_path):
    register_plugin(CountingPlugin(), "counting-encoders")
    store = tmp_path / "r"
    records = run_bench(BenchConfig(**CONFIG), store).records
    _rewrite(store, [_as_scheme_1(r, library_versions()) for r in records])
    before = (store / "results.jsonl").read_bytes()
    res = CliRunner().invoke(cli, ["results", "migrate", "--results", str(store), "--dry-run"])
    assert res.exit_code == 0 and "would re-key 8 record(s)" in _err(res)
    assert (store / "results.jsonl").read_bytes() == before
    res = CliRunner().invoke(cli, ["results", "migrate", "--results", str(store), "--environment", "tokenizer=1"])
    assert res.exit_code == 2 and "did you mean tokenizers" in _err(res)
    res = CliRunner().invoke(cli, ["results", "migrate", "--results", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no results store" in _err(res)


@pytest.mark.parametrize("changed", ["weights", "preprocess"])
def test_a_different_model_is_never_re_keyed(register_plugin, tmp_path, changed):
    register_plugin(CountingPlugin(), "counting-encoders")
    store = tmp_path / "r"
    records = run_bench(BenchConfig(**{**CONFIG, "fusion": ["svm"], "limit": 60}), store).records
    record = next(r for r in records if r["fusion"] == "svm")
    old = _as_scheme_1(record, library_versions())
    from jftzoo.bench.cells import Encoders
    from jftzoo.features import describe_model, fingerprint_of

    model = describe_model(Encoders(BenchConfig(random_init=True)).get("count-t1"))
    model[changed] = "something else"
    prints = {**old["fingerprints"], "count-t1": fingerprint_of({**model, "libraries": library_versions()})}
    cell = Cell(**{f.name: old[f.name] for f in fields(Cell)})
    identity = {"jftzoo": old["jftzoo_version"], "encoders": prints, "train": old["train_config"]}
    old.update(fingerprints=prints, config_hash=config_hash(cell, old["protocol"], identity),
               key=record_key(cell, old["protocol"], identity, old["split"]["digest"], old["fold"], old["seed"]))
    _rewrite(store, [old])
    res = CliRunner().invoke(cli, ["results", "migrate", "--results", str(store)])
    assert res.exit_code == 1 and "encoder count-t1's fingerprint" in _err(res)
    assert ResultStore(store).records() == [old]
