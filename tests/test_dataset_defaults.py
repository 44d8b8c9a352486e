"""A dataset kind's own training defaults (MVSA: the tweet normaliser): used where neither the user nor the
head's recipe sets the field, never by a model that reads no text, and visible in every record and saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jftzoo.bench.cells import train_config
from jftzoo.bench.grid import BenchConfig, cell_for
from jftzoo.cli import cli
from jftzoo.datasets.registry import train_defaults
from jftzoo.train.trainer import config_identity
from tests.test_datasets import mvsa_tree

MVSA = "mvsa-single:/data/mvsa_single"


@pytest.mark.parametrize("kind", ["mvsa-single", "mvsa-multiple"])
def test_the_mvsa_kinds_default_to_the_tweet_normaliser_and_others_do_not(kind: str):
    assert train_defaults(f"{kind}:/x") == {"text_normalizer": "tweet"}
    assert train_defaults(f"{kind}:/x", reads_text=False) == {}
    assert train_defaults("emoji-sentiment") == {} and train_defaults("csv:/x.csv") == {}


@pytest.mark.parametrize(("data", "fusion", "mode", "train", "expected"), [
    (MVSA, "concat", "frozen", {}, "tweet"),  # the dataset's default
    (MVSA, "text-only", "joint", {}, "tweet"),
    (MVSA, "concat", "top-k", {"text_normalizer": "none"}, "none"),  # the user's option wins
    (MVSA, "attention-paper", "joint", {}, "none"),  # the head's released recipe wins: raw tweets
    (MVSA, "attention-paper", "joint", {"text_normalizer": "tweet"}, "tweet"),  # and the user over it
    (MVSA, "image-only", "frozen", {}, "none"),  # reads no text: keeps its configuration's name
    ("emoji-sentiment", "concat", "frozen", {}, "none"),
])
def test_bench_cells_take_the_dataset_default_below_the_head_recipe_and_the_user(data, fusion, mode, train, expected):
    cell = cell_for(data, "minilm", "efficientnet_lite0", fusion, mode)
    tc = train_config(cell, BenchConfig(data=(data,), train=train, split="8:1:1", folds=None), seed=0)
    assert tc.text_normalizer == expected
    assert (config_identity(tc).get("text_normalizer") == "tweet") == (expected == "tweet")  # in the row's name


def test_train_on_mvsa_saves_the_normaliser_it_trained_with(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    labels = ["positive", "negative", "neutral"] * 6
    root = mvsa_tree(tmp_path / "mvsa", {str(i): f"{lab},{lab}" for i, lab in enumerate(labels, 1)},
                     {str(i): f"so #HappyDay @friend {i} &amp; http://t.co/x".encode() for i in range(1, 19)})
    base = ["train", "--fusion", "concat", "--data", f"mvsa-single:{root}", "--split", "1:1:1", "--groups", "none",
            "--epochs", "1", "--min-epochs", "1", "--json"]
    for extra, expected in (([], "tweet"), (["--text-normalizer", "none"], "none")):
        out = tmp_path / f"model-{expected}"
        res = CliRunner().invoke(cli, [*base, "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        assert json.loads((out / "config.json").read_text())["train"]["text_normalizer"] == expected


def test_datasets_lists_each_kinds_training_defaults():
    listed = {d["name"]: d for d in json.loads(CliRunner().invoke(cli, ["datasets", "--json"]).stdout)}
    assert listed["mvsa-single"]["train_defaults"] == {"text_normalizer": "tweet"}
    assert listed["csv"]["train_defaults"] == {}
    table = CliRunner().invoke(cli, ["datasets"], terminal_width=200)
    assert table.exit_code == 0 and "trains with --text-normalizer tweet" in table.stdout
