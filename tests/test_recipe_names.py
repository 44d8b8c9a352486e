"""A stored configuration names its recipe (`best`, `automm`, ...), so one head under two recipes reads apart
by name in tables, charts and ensemble members, and by hash only where a name is not enough."""

from __future__ import annotations

import subprocess
import sys

from jftzoo import __version__
from jftzoo.bench.plot import panel_grid
from jftzoo.bench.report import config_label, distinct_labels, summarize, to_csv
from jftzoo.train.config import ADDED_LATER, TrainConfig, config_identity
from jftzoo.train.presets import RECIPES, has_recipe, recipe_of


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


def test_the_configuration_and_recipe_names_import_without_torch():
    code = ("import sys; import jftzoo.train.config, jftzoo.train.presets, jftzoo.bench.report; "
            "heavy = [m for m in ('torch', 'transformers', 'timm') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
