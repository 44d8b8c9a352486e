"""A stored configuration names its recipe (`best`, `automm`, ...), so one head under two recipes reads apart
by name in tables, charts and ensemble members, and by hash only where a name is not enough."""

from __future__ import annotations

import subprocess
import sys

from jftzoo import __version__
from jftzoo.bench.plot import panel_grid
from jftzoo.bench.report import config_label, distinct_labels, summarize, to_csv
from jftzoo.train.config import ADDED_LATER, NO_OPTION, TrainConfig, as_option, config_identity, field_defaults
from jftzoo.train.presets import RECIPES, has_recipe, options_on_top, recipe_label, recipe_of


def _stored(recipe: str, **over: object) -> dict[str, object]:
    """The train config a bench record stores for `recipe` (fields at their default left out, as
    config_identity does), with `over` on top."""
    return config_identity(TrainConfig(**{**RECIPES[recipe], **over}))


def _record(recipe: str | None, mode: str = "joint", fusion: str = "concat", config: str = "h", **over: object
            ) -> dict[str, object]:
    train = _stored(recipe, **over) if recipe else config_identity(TrainConfig(mode=mode, **over))
    return {"key": f"{config}-0", "config_hash": config, "dataset": "d", "text": "minilm", "vision": "vit",
            "fusion": fusion, "mode": mode, "weights": "pretrained", "seed": 0, "fold": "test",
            "train_config": train, "split": {"groups": "none"}, "jftzoo_version": __version__,
            "metrics": {"accuracy": 0.7, "f1_macro": 0.6, "f1_weighted": 0.7, "auc": 0.8}}


def test_every_recipe_is_recognised_from_what_its_records_store():
    for name, recipe in RECIPES.items():
        assert recipe_of(_record(name, mode=recipe["mode"])) == name


def test_a_field_set_away_from_the_recipe_or_a_frozen_record_or_an_ensemble_names_no_recipe():
    assert recipe_of(_record("best", lr_encoder=1e-5)) is None  # a field the recipe sets, set otherwise
    assert recipe_of(_record(None)) is None  # the defaults: no recipe
    assert recipe_of({**_record("best"), "mode": "frozen"}) is None
    assert recipe_of({**_record("best"), "members": ["a", "b"]}) is None
    # a record that lacks a field had it at TrainConfig's default (config_identity leaves ADDED_LATER ones out)
    assert "label_smoothing" not in _stored("automm") and ADDED_LATER["label_smoothing"] == 0.0
    assert has_recipe({"label_smoothing": 0.0}, {"label_smoothing": 0.0}) and not has_recipe({}, {"lr_head": 5.0})


def test_where_several_recipes_match_the_one_setting_most_fields_names_the_record(monkeypatch):
    import jftzoo.train.presets as presets

    rec = _record("fast", mode="top-k")
    monkeypatch.setitem(presets.RECIPES, "fast-lr", {"mode": "top-k", "lr_encoder": 1e-4})  # a part of `fast`
    monkeypatch.setitem(presets.RECIPES, "joint-lr", {"mode": "joint", "lr_encoder": 1e-4})  # another mode
    assert has_recipe(rec["train_config"], RECIPES["fast-lr"]) and recipe_of(rec) == "fast"
    assert recipe_of({**rec, "train_config": {**rec["train_config"], "top_k": 3}}) == "fast-lr"


def test_labels_are_told_apart_by_recipe_then_by_hash():
    labels = distinct_labels({"aaaaaaaa11": ("joint concat", "best", None),
                              "bbbbbbbb22": ("joint concat", "automm", None),
                              "cccccccc33": ("joint text-only", "best", None)})
    assert labels == {"aaaaaaaa11": "joint concat (best)", "bbbbbbbb22": "joint concat (automm)",
                      "cccccccc33": "joint text-only"}  # alone under its label: no tag at all
    same = distinct_labels({"aaaaaaaa11": ("joint concat", "best", None), "bbbbbbbb22": ("joint concat", "best", None),
                            "cccccccc33": ("joint concat", None, None)})
    assert same == {"aaaaaaaa11": "joint concat (best) [aaaaaaaa]", "bbbbbbbb22": "joint concat (best) [bbbbbbbb]",
                    "cccccccc33": "joint concat"}


def test_configurations_no_recipe_tells_apart_read_apart_by_the_fields_they_differ_in():
    plain, averaged = _stored("best", mode="frozen"), _stored("best", mode="frozen", average_top=3)
    assert "average_top" not in plain  # at its default: absent from the stored config, read as 1
    labels = distinct_labels({"aaaaaaaa11": ("frozen concat", None, plain),
                              "bbbbbbbb22": ("frozen concat", None, averaged)})
    assert labels == {"aaaaaaaa11": "frozen concat (average_top=1)", "bbbbbbbb22": "frozen concat (average_top=3)"}
    # more than two fields apart: the hash (a long list reads worse); a config unknown: the hash too
    far = _stored("automm", mode="frozen")
    assert distinct_labels({"aaaaaaaa11": ("frozen concat", None, plain), "cccccccc33": ("frozen concat", None, far)}
                           ) == {"aaaaaaaa11": "frozen concat [aaaaaaaa]", "cccccccc33": "frozen concat [cccccccc]"}
    assert distinct_labels({"aaaaaaaa11": ("frozen concat", None, plain), "dddddddd44": ("frozen concat", None, None)}
                           )["aaaaaaaa11"] == "frozen concat [aaaaaaaa]"


def test_summary_rows_table_csv_and_chart_name_the_recipe():
    rows = summarize([_record("best", config="1234567890ab"), _record("automm", config="abcdef123456"),
                      _record(None, mode="frozen", config="fedcba987654")])
    by_hash = {r["config_hash"]: r for r in rows}
    assert by_hash["1234567890ab"]["recipe"] == "best" and by_hash["fedcba987654"]["recipe"] is None
    assert config_label(by_hash["1234567890ab"]) == "12345678 (best)" and config_label(by_hash["fedcba987654"]) \
        == "fedcba98"
    header, *lines = to_csv(rows).splitlines()
    assert "config_hash,recipe," in header and any(",abcdef123456,automm," in line for line in lines)
    rows = [{**r, "split": "8:1:1", "auc_mean": 0.8} for r in rows]
    _, heads, _ = panel_grid(rows, "d", "8:1:1", "joint")
    assert heads == ["concat (best)", "concat (automm)"]
    frozen = summarize([_record(None, mode="frozen", config="aaaaaaaa1111"),
                        _record(None, mode="frozen", config="bbbbbbbb2222", average_top=3)])
    _, heads, _ = panel_grid([{**r, "split": "8:1:1", "auc_mean": 0.8} for r in frozen], "d", "8:1:1", "frozen")
    assert heads == ["concat (average_top=1)", "concat (average_top=3)"]


def test_an_option_on_top_of_a_recipe_names_its_row_apart_in_tables_csv_charts_and_ensembles():
    from jftzoo.bench.ensemble_select import _labels

    plain, soup = _record("automm", config="aaaaaaaa1111"), _record("automm", config="bbbbbbbb2222", average_top=3)
    assert (options_on_top(plain), recipe_label(plain)) == ("", "automm")
    assert (options_on_top(soup), recipe_label(soup)) == ("--average-top 3", "automm --average-top 3")
    assert recipe_label(_record(None, mode="frozen")) is None
    rows = {r["config_hash"]: r for r in summarize([plain, soup])}
    assert rows["bbbbbbbb2222"]["recipe"] == "automm" and rows["bbbbbbbb2222"]["recipe_options"] == "--average-top 3"
    assert rows["aaaaaaaa1111"]["recipe_options"] is None
    assert config_label(rows["aaaaaaaa1111"]) == "aaaaaaaa (automm)"
    assert config_label(rows["bbbbbbbb2222"]) == "bbbbbbbb (automm --average-top 3)"
    header, *lines = to_csv(list(rows.values())).splitlines()
    assert "recipe,recipe_options," in header and any(",automm,--average-top 3," in line for line in lines)
    _, heads, _ = panel_grid([{**r, "split": "8:1:1", "auc_mean": 0.8} for r in rows.values()], "d", "8:1:1", "joint")
    assert sorted(heads) == ["concat (automm --average-top 3)", "concat (automm)"]
    assert _labels({"aaaaaaaa1111": {0: plain}, "bbbbbbbb2222": {0: soup}}) == {
        "aaaaaaaa1111": "joint concat (automm)", "bbbbbbbb2222": "joint concat (automm --average-top 3)"}


def test_a_datasets_own_default_is_no_option_on_top_and_leaving_it_off_is_one():
    tweet = {**_record("fast", mode="top-k", text_normalizer="tweet"), "dataset": "mvsa-single:x"}
    raw = {**_record("fast", mode="top-k"), "dataset": "mvsa-single:x"}  # stores no normaliser: raw tweets
    assert "text_normalizer" not in raw["train_config"]
    assert options_on_top(tweet) == "" and options_on_top(raw) == "--text-normalizer none"
    assert options_on_top({**raw, "text": None, "fusion": "image-only"}) == ""  # reads no text: no text default
    # a dataset kind not installed here (its plugin gone) has no defaults of its own, and is no error
    assert options_on_top({**tweet, "dataset": "no-such-kind:x"}) == "--text-normalizer tweet"
    assert options_on_top({**raw, "dataset": "no-such-kind:x"}) == ""


def test_a_field_reads_as_the_option_that_sets_it_and_train_takes_every_such_option():
    from jftzoo.cli.train import train_cmd

    assert as_option("average_top", 3) == "--average-top 3" and as_option("max_epochs", 8) == "--epochs 8"
    assert as_option("lr_encoder", 3e-5) == "--lr-encoder 3e-05" and as_option("augment", True) == "--augment"
    assert as_option("prefix_cache", False) == "--no-prefix-cache" and as_option("prefix_cache", True) == ""
    assert as_option("augment", False) == "" and as_option("weight_decay", 1e-3) == "weight_decay=0.001"
    options = {o for p in train_cmd.params for o in (*p.opts, *p.secondary_opts)}
    for name, default in field_defaults().items():
        if name not in NO_OPTION:  # a boolean spelled at the value that is not its default
            flag = as_option(name, not default if isinstance(default, bool) else default).split(" ")[0]
            assert flag in options, (name, flag)


def test_the_configuration_and_recipe_names_import_without_torch():
    code = ("import sys; import jftzoo.train.config, jftzoo.train.presets, jftzoo.bench.report; "
            "heavy = [m for m in ('torch', 'transformers', 'timm') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
