"""The default `jftzoo bench` shows fine-tuning too: one top-k row (recipe `demo`) beside the frozen heads."""

from __future__ import annotations

import json

from click.testing import CliRunner

from jftzoo.bench.grid import BenchConfig, Cell, expand
from jftzoo.cli import cli


def test_extra_cells_join_the_grid_as_they_are() -> None:
    config = BenchConfig(fusion=["majority", "concat"], mode=["frozen"], extra_cells=[("concat", "top-k")])
    cells = expand(config)
    assert Cell("emoji-sentiment", "minilm", "efficientnet_lite0", "concat", "top-k") in cells
    assert not any(c.mode == "top-k" and c.fusion != "concat" for c in cells)  # its baselines: the frozen rows
    assert {c.fusion for c in cells if c.mode == "frozen"} >= {"majority", "text-only", "image-only", "concat"}


def test_default_bench_has_the_demo_top_k_row_and_explicit_choices_drop_it(tmp_path) -> None:
    out = tmp_path / "b"
    res = CliRunner().invoke(cli, ["bench", "--limit", "40", "--folds", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    top = [r for r in rows if r["mode"] == "top-k"]
    assert {r["fusion"] for r in top} == {"concat"} and len(top) == 2
    assert all(r["train_config"]["top_k"] == 1 and r["train_config"]["max_epochs"] == 2 for r in top)
    assert all(r["epochs_run"] == 2 for r in top)
    frozen = [r for r in rows if r["mode"] == "frozen" and r["fusion"] == "concat"]
    assert frozen and all(r["train_config"]["max_epochs"] == 10 for r in frozen)  # the demo recipe is top-k's only
    again = tmp_path / "c"
    res = CliRunner().invoke(cli, ["bench", "--limit", "40", "--folds", "2", "--fusion", "concat", "--out",
                                   str(again), "--json"])
    assert res.exit_code == 0, res.output
    assert {json.loads(line)["mode"] for line in (again / "results.jsonl").read_text().splitlines()} == {"frozen"}
