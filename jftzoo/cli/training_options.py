"""The options of every command that trains (`train`, `bench`, `tune`): speed, recipe, seeds and lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from jftzoo.errors import UsageError


def split_commas(values: Sequence[str]) -> list[str]:
    """`--fusion concat,gated --fusion late` -> ['concat', 'gated', 'late']."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise UsageError(f"--seeds takes comma-separated integers such as 0,1,2, got {text!r}") from exc


def speed_options(command: Any) -> Any:
    """The speed options of every command that trains (docs/speed.md); `speed_fields` reads them."""
    for option in reversed((
        click.option("--workers", type=click.IntRange(min=0), help="Preprocessing worker processes for trained "
                     "encoders (0: in-process). [from the core count]"),
        click.option("--no-prefix-cache", is_flag=True,
                     help="top-k: run the frozen lower layers every step instead of once per record."),
        click.option("--prefix-dtype", type=click.Choice(["float32", "float16"]), default="float32",
                     show_default=True, help="Storage of the cached top-k prefix outputs."),
        click.option("--no-bucketing", is_flag=True, help="Random text batches instead of length-bucketed ones."),
        click.option("--frozen-backend", type=click.Choice(["pytorch", "openvino", "auto"]), default="pytorch",
                     show_default=True, help="Runtime of frozen vision passes: openvino is ~3x faster on a CPU "
                     "(pip install 'jftzoo[openvino]'); auto: openvino when installed."),
        click.option("--image-cache", is_flag=True, help="Keep decoded, resized images (uint8) in the cache folder so "
                     "each is decoded once, not every epoch (same pixels)."),
    )):
        command = option(command)
    return command


RECIPE_FIELDS = ("recipe", "scheduler", "warmup_ratio", "layer_decay", "label_smoothing", "class_weight",
                 "modality_dropout", "augment", "ema", "monitor", "patience", "text_normalizer", "average_top",
                 "seed_ensemble")


def recipe_options(command: Any) -> Any:
    """The recipe options of every command that trains (docs/recipes.md), gathered into one `recipe`
    argument: a dict of the TrainConfig fields the user set (a --recipe preset first, options over it)."""
    import functools

    from jftzoo.train.presets import MONITORS, RECIPES

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in RECIPE_FIELDS}
        from jftzoo.train.presets import recipe_preset

        recipe = recipe_preset(given.pop("recipe"))
        recipe.update({k: v for k, v in given.items() if v is not None and v is not False})
        return command(*args, recipe=recipe, **kwargs)

    for option in reversed((
        click.option("--recipe", type=click.Choice(sorted(RECIPES)), help="A named recipe (docs/recipes.md); "
                     "the options below override its fields."),
        click.option("--scheduler", type=click.Choice(["linear", "cosine", "exponential"]),
                     help="Learning-rate schedule: linear or cosine after warm-up, or exponential per epoch. [linear]"),
        click.option("--warmup-ratio", type=click.FloatRange(0, 1), help="Warm-up share of the steps. [0.1]"),
        click.option("--layer-decay", type=click.FloatRange(0, 1, min_open=True),
                     help="Layer-wise LR decay: each encoder layer group below the top trains at x this. [off]"),
        click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), help="Label smoothing. [0]"),
        click.option("--class-weight", type=click.Choice(["none", "balanced"]), help="Loss weights per class. [none]"),
        click.option("--modality-dropout", type=click.FloatRange(0, 1),
                     help="Share of training records with one modality (text or image) zeroed. [0]"),
        click.option("--augment", is_flag=True, default=None, help="timm's random training transform on images."),
        click.option("--ema", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Validate and keep an exponential moving average of the weights, e.g. 0.999. [off]"),
        click.option("--monitor", type=click.Choice(MONITORS),
                     help="Validation figure for early stopping and the best epoch. [loss]"),
        click.option("--patience", type=click.IntRange(min=1), help="Epochs without improvement before stopping. [2]"),
        click.option("--text-normalizer", type=click.Choice(["none", "tweet"]),
                     help="tweet: URLs, @mentions, hashtags, emoji and HTML entities made readable. [none; "
                          "tweet for the MVSA datasets]"),
        click.option("--average-top", type=click.IntRange(min=1),
                     help="Keep the greedy soup of the N best epochs' weights (averaged where validation "
                          "does not drop; AutoGluon's default is 3). [1: the best epoch]"),
        click.option("--seed-ensemble", type=click.IntRange(min=1),
                     help="bench: train N models from different seeds on each split and average their "
                          "probabilities (a row labelled as an ensemble; N times the training). [1]"),
    )):
        wrapper = option(wrapper)
    return wrapper


def recipe_defaults(recipe: dict[str, Any], modes: Sequence[str], top_k: int,
                    epochs: int) -> tuple[dict[str, Any], Sequence[str], int, int]:
    """A --recipe's mode, top-k and epochs where the user left --mode, --top-k and --epochs unset; the
    rest of the recipe as TrainConfig fields."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    recipe = dict(recipe)
    mode, k, most = recipe.pop("mode", None), recipe.pop("top_k", None), recipe.pop("max_epochs", None)
    if mode is not None and ctx.get_parameter_source("modes" if "modes" in ctx.params else "mode") in (
            ParameterSource.DEFAULT, None):
        modes = [mode] if not isinstance(modes, str) else mode
    if k is not None and ctx.get_parameter_source("top_k") is ParameterSource.DEFAULT:
        top_k = k
    if most is not None and ctx.get_parameter_source("epochs") is ParameterSource.DEFAULT:
        epochs = most
    return recipe, modes, top_k, epochs


def speed_fields(workers: int | None, no_prefix_cache: bool, prefix_dtype: str, no_bucketing: bool,
                   image_cache: bool = False, frozen_backend: str = "pytorch") -> dict:
    """TrainConfig fields of the speed options that differ from their defaults (docs/speed.md)."""
    options: dict[str, Any] = {} if workers is None else {"workers": workers}
    if no_prefix_cache:
        options["prefix_cache"] = False
    if prefix_dtype != "float32":
        options["prefix_dtype"] = prefix_dtype
    if no_bucketing:
        options["bucketing"] = False
    if image_cache:
        options["image_cache"] = True
    if frozen_backend != "pytorch":
        from jftzoo.backends import check_backend, installed

        check_backend(frozen_backend)  # openvino without OpenVINO: exit 2 with the install line
        # auto is settled here, so a record names the runtime that made it
        backend = frozen_backend if frozen_backend != "auto" else ("openvino" if installed("openvino") else "pytorch")
        if backend != "pytorch":
            options["frozen_backend"] = backend
    return options
