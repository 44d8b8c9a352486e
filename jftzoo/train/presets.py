"""Named training recipes (`--recipe`) and the names the recipe options accept; torch-free, so the
CLI can list them without importing the trainer.

A recipe is a set of `TrainConfig` fields (and the mode it is meant for); options the user passes
override its fields. The values and what each costs are measured in docs/recipes.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jftzoo.train.metrics import SCORES

MONITORS = ("loss", *SCORES)  # what early stopping and "best epoch" read

RECIPES: dict[str, dict[str, Any]] = {
    # top-k through the prefix cache: the cheap fine-tuning (docs/speed.md), several epochs affordable
    "fast": {"mode": "top-k", "top_k": 2, "lr_encoder": 1e-4, "scheduler": "cosine", "max_epochs": 8,
             "min_epochs": 2, "patience": 3, "monitor": "accuracy", "label_smoothing": 0.1},
    # the default bench's top-k row (on the demo data, under 2 minutes with the frozen heads): the top layer
    # group of each encoder through the prefix cache, 2 epochs, the better one by validation accuracy
    "demo": {"mode": "top-k", "top_k": 1, "lr_encoder": 1e-4, "scheduler": "cosine", "max_epochs": 2,
             "min_epochs": 2, "patience": 1, "monitor": "accuracy", "label_smoothing": 0.1},
    # joint fine-tuning with the levers that regularise it
    "best": {"mode": "joint", "lr_encoder": 3e-5, "scheduler": "cosine", "layer_decay": 0.8, "max_epochs": 8,
             "min_epochs": 2, "patience": 3, "monitor": "accuracy", "label_smoothing": 0.1,
             "modality_dropout": 0.1, "text_normalizer": "tweet"},
    # AutoGluon MultiModal's default optimisation (its `optim` config, v1.x) in jftzoo's levers: AdamW at
    # lr 1e-4 for encoders and head, cosine decay after 10 % warm-up, layer-wise decay 0.9, weight decay
    # 1e-3, 10 epochs, validation accuracy picks the checkpoint. Its greedy soup of the top 3 checkpoints is
    # `--average-top 3` on top (left out of the recipe, whose stored rows were made without it)
    "automm": {"mode": "joint", "lr_encoder": 1e-4, "lr_head": 1e-4, "scheduler": "cosine", "warmup_ratio": 0.1,
               "layer_decay": 0.9, "weight_decay": 1e-3, "max_epochs": 10, "patience": 10, "monitor": "accuracy"},
}


def recipe_preset(name: str | None) -> dict[str, Any]:
    """A copy of the named recipe's fields ({} for None)."""
    if name is None:
        return {}
    if name not in RECIPES:
        from jftzoo.errors import UsageError, suggest

        hint = suggest(name, list(RECIPES))
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"unknown recipe {name!r}.{did} Known: {', '.join(RECIPES)}.")
    return dict(RECIPES[name])


def has_recipe(train_config: Mapping[str, Any] | None, recipe: Mapping[str, Any]) -> bool:
    """Whether a stored training configuration (a record's `train_config`, where an absent field was at
    TrainConfig's default) holds every field of `recipe` other than its mode."""
    from jftzoo.train.config import stored_field

    return all(stored_field(train_config, k) == v for k, v in recipe.items() if k != "mode")


def recipe_of(record: Mapping[str, Any]) -> str | None:
    """The named recipe a fine-tuned record was trained with, so that one head under two recipes reads apart
    by name rather than by hash: the recipe of the record's mode whose every field it holds (the one setting
    most fields where several do). None for frozen records, ensembles and settings no recipe names. Options
    given on top of it, on fields the recipe leaves alone, are options_on_top's."""
    if record.get("mode") in (None, "frozen") or record.get("members"):
        return None
    matches = [(len(recipe), name) for name, recipe in RECIPES.items()
               if recipe.get("mode") == record["mode"] and has_recipe(record.get("train_config"), recipe)]
    return max(matches)[1] if matches else None


# fields a record stores that no option on top of a recipe sets: the mode and head come with the cell, the seed
# with the split, absent_as with modality dropout (jftzoo.train.config.config_identity)
DERIVED = ("mode", "seed", "head", "absent_as")


def fields_beyond(record: Mapping[str, Any], recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The training fields a record was trained with on top of `recipe`: fields the recipe leaves alone that the
    record holds away from their default, where the default is TrainConfig's or, above it, the dataset kind's own
    (the MVSA readers' tweet normaliser is no option; `--text-normalizer none` there is one, also for a record
    made before that default, which stores no normaliser). A dataset kind not installed here has no defaults of
    its own."""
    from jftzoo.train.config import field_defaults, stored_field

    defaults = {**field_defaults(), **_dataset_defaults(record)}
    stored = {k: stored_field(record.get("train_config"), k) for k in sorted(defaults)}
    return {k: v for k, v in stored.items() if k not in DERIVED and k not in recipe and v != defaults[k]}


def _dataset_defaults(record: Mapping[str, Any]) -> dict[str, Any]:
    from jftzoo.datasets.registry import train_defaults
    from jftzoo.errors import UsageError

    if not record.get("dataset"):
        return {}
    try:  # a model without a text encoder never takes the text-side defaults (same training)
        return train_defaults(str(record["dataset"]), reads_text=bool(record.get("text")))
    except UsageError:  # an unknown kind (its plugin not installed here)
        return {}


def options_text(fields: Mapping[str, Any]) -> str:
    """Training fields as the options that set them, in one line (`--average-top 3 --text-normalizer none`)."""
    from jftzoo.train.config import as_option

    return " ".join(o for o in (as_option(k, v) for k, v in fields.items()) if o)


def options_on_top(record: Mapping[str, Any], name: str | None = None) -> str:
    """The options given on top of the record's named recipe (`name`, else recipe_of's), as the CLI spells them
    (`--average-top 3` on `--recipe automm`), so a recipe's checkpoint soup never reads as the recipe; "" for none
    or no recipe."""
    name = name or recipe_of(record)
    return options_text(fields_beyond(record, RECIPES[name])) if name else ""


def with_options(name: str | None, options: str | None) -> str | None:
    """A recipe's name and the options on top of it, as labels show them (`automm --average-top 3`)."""
    return f"{name} {options}" if name and options else name


def recipe_label(record: Mapping[str, Any]) -> str | None:
    """The recipe's name with the options on top of it (`automm --average-top 3`); None where no recipe names
    the record."""
    name = recipe_of(record)
    return with_options(name, options_on_top(record, name))
