"""`jftzoo results merge`: records made elsewhere join a store whole, checked, never twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jftzoo import __version__
from jftzoo.bench.predictions import Predictions, read_predictions, write_predictions
from jftzoo.bench.store import ResultStore, write_manifest
from jftzoo.cli import cli
from jftzoo.datasets.splits import Split


def _split(seed: int) -> Split:
    ids = [f"id{i}" for i in range(10)]
    order = ids[seed:] + ids[:seed]
    return Split("ratio", seed, "d", "c0", {"train": order[:8], "val": order[8:9], "test": order[9:]},
                 {"ratio": "8:1:1"})


def _store(folder: Path, entries: list[tuple[str, int, str]]) -> Path:
    """A store with one record per (fusion, seed, device), each with predictions and its split manifest."""
    store = ResultStore(folder).open()
    for fusion, seed, device in entries:
        manifest, digest = write_manifest(folder, _split(seed))
        key = f"{fusion}-{seed}-{device}"
        probs = np.array([[0.2 + 0.01 * seed, 0.8 - 0.01 * seed]])
        meta = write_predictions(folder, key, Predictions(["neg", "pos"], [_split(seed).parts["test"][0]], [1], probs))
        store.append({"key": key, "config_hash": f"{fusion}-{device}", "jftzoo_version": __version__, "dataset": "d",
                      "text": "t", "vision": "v", "fusion": fusion, "mode": "joint", "weights": "pretrained",
                      "device": device, "seed": seed, "fold": "test", "predictions": meta,
                      "split": {"digest": digest, "manifest": manifest, "groups": "none"},
                      "metrics": {"accuracy": 1.0, "auc": 0.5, "f1_macro": 1.0, "f1_weighted": 1.0}})
    return folder


def _err(result) -> str:
    return " ".join(result.stderr.split())  # rich wraps long lines


def _keys(folder: Path) -> list[str]:
    return [r["key"] for r in ResultStore(folder).records()]


def test_merge_adds_the_missing_records_with_their_files_and_nothing_twice(tmp_path: Path):
    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    src = _store(tmp_path / "gpu", [("concat", 0, "cpu"), ("concat", 1, "cuda"), ("concat", 2, "cuda")])
    res = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert res.exit_code == 0, res.output
    assert "merged 2 record(s)" in _err(res) and "1 already there" in _err(res)
    assert "2 prediction file(s), 2 split manifest(s) copied" in _err(res)
    assert _keys(dest) == ["concat-0-cpu", "concat-1-cuda", "concat-2-cuda"]
    records = ResultStore(dest).records()
    assert records[1] == ResultStore(src).records()[1]  # unchanged: device, key, config hash travel as made
    assert read_predictions(dest, records[2]).probs.tolist() == read_predictions(src, records[2]).probs.tolist()
    assert (dest / records[2]["split"]["manifest"]).read_bytes() == (src / records[2]["split"]["manifest"]).read_bytes()
    again = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert again.exit_code == 0 and "merged 0 record(s)" in _err(again) and "3 already there" in _err(again)
    assert len(_keys(dest)) == 3
    shown = CliRunner().invoke(cli, ["results", "show", "--results", str(dest), "--json"])
    assert {r["config_hash"]: r["n_splits"] for r in json.loads(shown.stdout)} == {"concat-cpu": 1, "concat-cuda": 2}


def test_a_damaged_source_changes_nothing_and_says_which_file(tmp_path: Path):
    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    src = _store(tmp_path / "gpu", [("late", 1, "cuda"), ("late", 2, "cuda")])
    before = (dest / "results.jsonl").read_bytes()
    damaged = src / ResultStore(src).records()[1]["predictions"]["file"]
    damaged.write_bytes(damaged.read_bytes()[:-3])  # a transfer cut short, on the second record
    res = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "line 2" in _err(res) and damaged.name in _err(res) and "does not match the digest" in _err(res)
    assert (dest / "results.jsonl").read_bytes() == before  # the first, sound record was not merged either
    assert not list((dest / "predictions").glob("late-*"))


def test_a_manifest_holding_another_split_is_refused(tmp_path: Path):
    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    src = _store(tmp_path / "gpu", [("late", 1, "cuda")])
    record = ResultStore(src).records()[0]
    # the destination has a different split under the same manifest name (a hand-made store)
    from jftzoo.datasets.splits import write_split

    write_split(_split(3), dest / record["split"]["manifest"])
    res = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert res.exit_code == 1 and "holds another split" in _err(res)
    assert _keys(dest) == ["concat-0-cpu"]


def test_merge_waits_for_a_bench_writing_the_destination_or_says_who(tmp_path: Path):
    from jftzoo.bench.lock import results_lock

    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    src = _store(tmp_path / "gpu", [("late", 1, "cuda")])
    with results_lock(dest):
        res = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert res.exit_code == 1 and "in use by another jftzoo bench" in _err(res)
    assert _keys(dest) == ["concat-0-cpu"]


def test_merge_usage_errors(tmp_path: Path):
    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    missing = CliRunner().invoke(cli, ["results", "merge", str(tmp_path / "nope"), "--into", str(dest)])
    assert missing.exit_code == 1 and "no results store at" in _err(missing)
    itself = CliRunner().invoke(cli, ["results", "merge", str(dest), "--into", str(dest)])
    assert itself.exit_code == 1 and "is the destination itself" in _err(itself)
    assert CliRunner().invoke(cli, ["results", "merge", str(dest)]).exit_code == 2  # --into is required


@pytest.mark.parametrize("field", ["file", "manifest"])
def test_missing_files_are_named(tmp_path: Path, field: str):
    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    src = _store(tmp_path / "gpu", [("late", 1, "cuda")])
    record = ResultStore(src).records()[0]
    path = record["predictions"]["file"] if field == "file" else record["split"]["manifest"]
    (src / path).unlink()
    res = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert res.exit_code == 1 and Path(path).name in _err(res) and _keys(dest) == ["concat-0-cpu"]


def test_merge_names_records_of_an_earlier_key_scheme_and_the_command_that_re_keys_them(tmp_path: Path):
    from jftzoo.bench.grid import KEY_SCHEME

    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    src = _store(tmp_path / "old", [("concat", 1, "cuda"), ("concat", 2, "cuda")])
    res = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert res.exit_code == 0 and "2 of them were stored under an earlier key scheme" in _err(res)
    assert f"jftzoo results migrate --results {dest}" in _err(res)
    new = _store(tmp_path / "new", [("concat", 3, "cuda")])
    (new / "results.jsonl").write_text(json.dumps({**ResultStore(new).records()[0], "key_scheme": KEY_SCHEME}) + "\n")
    res = CliRunner().invoke(cli, ["results", "merge", str(new), "--into", str(dest)])
    assert res.exit_code == 0 and "merged 1 record(s)" in _err(res) and "earlier key scheme" not in _err(res)


def test_merge_re_makes_the_destination_summary_and_figure_from_all_its_records(tmp_path: Path):
    from jftzoo.bench.report import summarize, to_markdown

    dest = _store(tmp_path / "main", [("concat", 0, "cpu")])
    (dest / "summary.md").write_text("the table of the bench that made seed 0 only\n", encoding="utf-8")
    src = _store(tmp_path / "gpu", [("concat", 1, "cpu"), ("late", 1, "cpu")])
    res = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert res.exit_code == 0, res.output
    assert "re-made" in _err(res)
    summary = (dest / "summary.md").read_text(encoding="utf-8")
    assert summary == to_markdown(summarize(ResultStore(dest).records()))
    assert "late" in summary and "seed 0 only" not in summary
    assert (dest / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stamp = (dest / "summary.md").stat().st_mtime_ns
    again = CliRunner().invoke(cli, ["results", "merge", str(src), "--into", str(dest)])
    assert again.exit_code == 0 and "re-made" not in _err(again)  # nothing merged: nothing re-drawn
    assert (dest / "summary.md").stat().st_mtime_ns == stamp
