"""The training configuration and its identity: which fields can change a result (and so enter a
benchmark record's configuration hash) and which are speed or per-run settings.

Torch-free, so the bench's reports, `results` and the recipe names read stored configurations without
importing the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Any

from jftzoo.errors import UsageError

# per-run fields, and speed options that leave every number bit for bit the same: never part of an identity
RUNTIME_ONLY = ("seed", "workers", "image_cache")
# Speed options a mode never reads: left out of its identity, so they do not rename its configurations.
UNUSED_BY_MODE = {"frozen": ("bucketing", "prefix_cache", "prefix_dtype"),
                  "joint": ("prefix_cache", "prefix_dtype", "frozen_backend"), "top-k": ("frozen_backend",)}
SCHEDULERS = ("linear", "cosine", "exponential")


@dataclass
class TrainConfig:
    mode: str = "frozen"  # frozen | top-k | joint
    top_k: int | tuple[int, int] = 2  # layer groups per encoder that train in top-k mode
    min_epochs: int = 3  # never stop before this many epochs
    max_epochs: int = 10
    patience: int = 2  # epochs without validation improvement before stopping
    batch_size: int = 16
    grad_accum: int = 1  # optimizer step every this many batches
    lr_encoder: float = 2e-5
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    scheduler: str = "linear"  # linear | cosine: warm-up, then decay per optimizer step; exponential: per epoch
    lr_gamma: float = 0.9  # exponential: the learning rates' factor after each epoch
    warmup_ratio: float = 0.1  # linear, cosine: linear warm-up over this share of steps, then the decay
    grad_clip: float = 1.0
    val_fraction: float = 0.1  # of the training records, stratified, for early stopping
    seed: int = 0
    # -- speed (docs/speed.md) -----------------------------------------------------------------------------
    workers: int | None = None  # DataLoader preprocessing processes; None: from the core count; 0: in-process
    bucketing: bool = True  # text batches of similar length (shuffled within buckets), when encoders train
    prefix_cache: bool = True  # top-k: run the frozen lower groups once per record, then only the top per step
    prefix_dtype: str = "float32"  # storage of cached prefix outputs: float32 | float16 (half the memory)
    image_cache: bool = False  # decode + resize each image once per machine (jftzoo.decoded), not once per epoch
    frozen_backend: str = "pytorch"  # frozen passes: pytorch | openvino | auto (jftzoo.backends; vision on CPU)
    # -- recipe (docs/recipes.md; jftzoo.train.recipe) -------------------------------------------------------
    layer_decay: float | None = None  # encoder group i below the top trains at lr_encoder * layer_decay**i
    label_smoothing: float = 0.0  # cross-entropy against (1 - s) one-hot + s uniform
    class_weight: str = "none"  # none | balanced: loss weights n / (C * count) from the training labels
    modality_dropout: float = 0.0  # share of training records with one modality (text or image) zeroed
    augment: bool = False  # timm's training transform (random crop, flip, colour) on training images
    ema: float | None = None  # validate and keep an exponential moving average of the weights (e.g. 0.999)
    monitor: str = "loss"  # validation figure for early stopping and the best epoch: loss | accuracy | f1_macro |...
    text_normalizer: str = "none"  # none | tweet (jftzoo.datasets.tweets), applied in fit and predict
    average_top: int = 1  # keep the greedy soup of this many best epochs' weights (recipe.CheckpointSoup); 1: the best
    seed_ensemble: int = 1  # bench: this many models from different seeds on one split, probabilities averaged

    def __post_init__(self) -> None:
        check_scheduler(self.scheduler)
        if self.average_top < 1:
            raise UsageError(f"average_top must be at least 1 (1: keep the best epoch), got {self.average_top}")
        if self.seed_ensemble < 1:
            raise UsageError(f"seed_ensemble must be at least 1 (1: one model), got {self.seed_ensemble}")


# Recipe fields added in 0.3: at these values training is exactly what it was before them, so they
# enter an identity only when set otherwise (earlier results keep their configuration hashes).
ADDED_LATER = {"layer_decay": None, "label_smoothing": 0.0, "class_weight": "none", "modality_dropout": 0.0,
               "augment": False, "ema": None, "monitor": "loss", "text_normalizer": "none",
               "frozen_backend": "pytorch", "average_top": 1, "seed_ensemble": 1}


def config_identity(config: TrainConfig) -> dict[str, Any]:
    """The fields of `config` that can change a result (hashed into benchmark records' keys)."""
    skip = {*RUNTIME_ONLY, *UNUSED_BY_MODE.get(config.mode, ())}
    identity = {k: v for k, v in asdict(config).items()
                if k not in skip and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    if config.modality_dropout > 0:  # dropped rows once were zeroed; now the head's learned "missing" embedding
        identity["absent_as"] = "missing-embedding"
    return identity


# TrainConfig fields whose `train`/`bench` option is not `--field-name`, those no option sets (a recipe or the
# Python API only), and the booleans whose option turns them off
OPTION_NAMES = {"max_epochs": "--epochs"}
NO_OPTION = ("grad_accum", "lr_gamma", "grad_clip", "val_fraction", "weight_decay")
NEGATED = ("bucketing", "prefix_cache")


def as_option(name: str, value: Any) -> str:
    """A TrainConfig field's value as the `train`/`bench` option that sets it (`average_top`, 3 -> `--average-top
    3`), so a configuration printed from a record can be pasted back; `name=value` where no option sets the field,
    "" for a flag left off."""
    if name in NO_OPTION:
        return f"{name}={value}"
    flag = OPTION_NAMES.get(name, "--" + name.replace("_", "-"))
    if isinstance(value, bool):  # a flag: given where it differs from what leaving it off means
        if name in NEGATED:
            return "" if value else f"--no-{flag[2:]}"
        return flag if value else ""
    return f"{flag} {value!r}" if isinstance(value, float) else f"{flag} {value}"


def member_seeds(seed: int, size: int) -> list[int]:
    """The training seeds of a seed ensemble's members on the split of `seed`: the first is `seed` itself, so
    member 0 is the model a run without the ensemble trains; the others are far from any split seed in use."""
    return [seed + 1000 * m for m in range(size)]


ONE_MODEL = {"train": "jftzoo train (FusionClassifier) keeps one model", "tune": "jftzoo tune scores one model a trial"}


def refuse_seed_ensemble(options: Mapping[str, Any], where: str) -> None:
    """`seed_ensemble` is measured by `jftzoo bench`; what keeps or scores one model (ONE_MODEL) refuses it rather
    than train one model silently."""
    n = options.get("seed_ensemble", 1)
    if n > 1:
        raise UsageError(f"--seed-ensemble {n}: {ONE_MODEL[where]}. Measure an ensemble over seeds with `jftzoo "
                         f"bench --seed-ensemble {n}` (the same options); leave --seed-ensemble off here.")


def check_scheduler(name: str) -> None:
    """Fail on an unknown schedule before any model is built or trained."""
    if name not in SCHEDULERS:
        raise UsageError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")


@cache
def field_defaults() -> dict[str, Any]:
    """Every TrainConfig field's default: what a stored configuration's absent field was (config_identity
    leaves ADDED_LATER fields at their defaults out)."""
    return {f.name: f.default for f in fields(TrainConfig)}


def stored_field(train_config: Mapping[str, Any] | None, name: str) -> Any:
    """A stored configuration's field (a record's `train_config`), or TrainConfig's default where it is absent
    (a field added later, or one left at its default by config_identity); None for a name TrainConfig lacks."""
    return (train_config or {}).get(name, field_defaults().get(name))
