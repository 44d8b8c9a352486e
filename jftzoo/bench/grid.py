"""What a benchmark runs: the grid of cells, validated before any work starts."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from jftzoo.devices import check_device
from jftzoo.errors import UsageError

BASELINES = ("svm", "clip", "majority")  # rows of the grid that are not fusion heads from the registry
UNIMODAL = ("text-only", "image-only")
CLIP_TEXT, CLIP_VISION = "clip-text", "clip-vision"
MODES = ("frozen", "top-k", "joint")
DEFAULT_DATA = "emoji-sentiment"
DEFAULT_TEXT, DEFAULT_VISION = "minilm", "efficientnet_lite0"
# The main heads of the default run: every pooled-embedding head plus the SVM baseline. `xattn`
# (token sequences) is left out only to keep the default run under two minutes on 2 CPU cores.
# The majority and unimodal rows are added to every grid anyway (`expand`).
DEFAULT_FUSIONS = ("majority", "svm", "text-only", "image-only", "concat", "attention", "gated", "late")
GROUPINGS = ("near-duplicates", "none")


@dataclass(frozen=True, order=True)
class Cell:
    """One row of the results table; `text`/`vision` is None where the cell uses no such encoder."""

    dataset: str
    text: str | None
    vision: str | None
    fusion: str
    mode: str

    def label(self) -> str:
        return f"{self.text or '-'} + {self.vision or '-'} / {self.fusion} / {self.mode}"


@dataclass
class BenchConfig:
    data: Sequence[str] = (DEFAULT_DATA,)
    text: Sequence[str] = (DEFAULT_TEXT,)
    vision: Sequence[str] = (DEFAULT_VISION,)
    fusion: Sequence[str] = DEFAULT_FUSIONS
    mode: Sequence[str] = ("frozen",)
    folds: int | None = 5  # stratified k-fold; None with `split` set
    split: str | None = None  # e.g. "8:1:1": one seeded train/val/test split per seed
    seeds: Sequence[int] = (0,)
    epochs: int = 10
    batch_size: int = 16
    top_k: int = 2
    random_init: bool = False
    device: str = "cpu"
    limit: int | None = None  # a seeded stratified subsample of each dataset, for quick runs
    label_policy: str | None = None  # MVSA label policy, passed to readers that take it
    train: dict[str, Any] = field(default_factory=dict)  # more TrainConfig fields (learning rates...)
    # TrainConfig fields for the cells of one mode only, over `train` (the default demo's fast top-k row)
    mode_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (fusion, mode) cells added to the product as they are: the default demo's one top-k row, whose
    # baselines are the frozen unimodal rows beside it (its own top-k unimodal rows would double its cost)
    extra_cells: Sequence[tuple[str, str]] = ()
    groups: str = "near-duplicates"  # near-duplicate posts never cross a split; "none": the literature's random splits
    split_files: Sequence[str] = ()  # manifests from `jftzoo data check --write-split`, matched to data by checksum
    image_root: str | None = None  # csv/jsonl: the folder image paths are relative to
    on_bad: str = "error"  # bad records (unreadable image, unknown label...): stop with the list, or skip them
    on_missing: str = "keep"  # posts without text or image: keep (data), skip (listed), or error
    explain: bool = False  # modality Shapley shares on each task's test part (not in any key: a measurement)
    svm_kernel: str = "auto"  # the SVM baseline: rbf (the paper's), linear, or auto (by training size; baselines.py)

    def protocol(self) -> dict[str, Any]:
        """How the data is read and split, shared by every record (hashed into each record's key).

        Training options (epochs, batch size, top-k, learning rates...) are not here: they enter
        each cell's full TrainConfig, so a baseline's key does not change with a head's learning
        rate. Split files are left out: the split's digest is in every key, which names them exactly.
        """
        return {"folds": self.folds, "split": self.split, "limit": self.limit, "label_policy": self.label_policy,
                "groups": self.groups}


def cell_for(dataset: str, text: str, vision: str, fusion: str, mode: str) -> Cell:
    """Normalise one grid point, so equal computations collapse into one cell."""
    if fusion == "majority":
        return Cell(dataset, None, None, "majority", "frozen")  # the most frequent training class, no encoder
    if fusion == "svm":
        return Cell(dataset, text, vision, "svm", "frozen")  # an SVM on frozen embeddings, whatever the mode
    if fusion == "clip":
        return Cell(dataset, CLIP_TEXT, CLIP_VISION, "clip", mode)  # CLIP's own two towers
    from jftzoo.fusion.registry import get_fusion_spec

    uses = get_fusion_spec(fusion).modalities
    return Cell(dataset, text if "text" in uses else None, vision if "vision" in uses else None, fusion, mode)


def validate(config: BenchConfig) -> None:
    """Every name checked before any work starts: unknown ones exit 2 with suggestions."""
    from jftzoo.datasets.registry import get_dataset_spec, parse_data_arg
    from jftzoo.errors import suggest
    from jftzoo.fusion.registry import fusion_specs
    from jftzoo.registry import get_spec

    for flag, names, modality in (("--text", config.text, "text"), ("--vision", config.vision, "vision")):
        if not names:
            raise UsageError(f"{flag} needs at least one encoder name")
        for name in names:
            spec = get_spec(name)
            if spec.modality != modality:
                raise UsageError(f"{flag} {name}: {name!r} is a {spec.modality} encoder; "
                                 f"`jftzoo list-encoders --modality {modality}` lists {modality} encoders")
    known = [*fusion_specs(), *BASELINES]
    for name in config.fusion:
        if name not in known:
            hint = suggest(name, known)
            did = f" Did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
            raise UsageError(f"Unknown fusion {name!r}.{did} Known: {', '.join(known)}.")
    for mode in config.mode:
        if mode not in MODES:
            hint = suggest(mode, MODES)
            did = f" Did you mean {hint[0]!r}?" if hint else ""
            raise UsageError(f"Unknown mode {mode!r}.{did} Modes: {', '.join(MODES)}.")
    for data in config.data:
        kind, _ = parse_data_arg(data)
        get_dataset_spec(kind)
    if (config.folds is None) == (config.split is None):
        raise UsageError("give either --folds K or --split RATIO, not both")
    if config.folds is not None and config.folds < 2:
        raise UsageError(f"--folds must be at least 2, got {config.folds}")
    if not config.seeds:
        raise UsageError("--seeds needs at least one seed")
    check_device(config.device)
    if config.groups not in GROUPINGS:
        hint = suggest(config.groups, GROUPINGS)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"Unknown --groups {config.groups!r}.{did} Choices: {', '.join(GROUPINGS)}.")
    if config.split_files and config.limit is not None:
        raise UsageError("--split-file names the records of a whole dataset; it cannot be combined with --limit")
    if config.explain and config.train.get("seed_ensemble", 1) > 1:
        raise UsageError("--explain attributes one model; an ensemble over seeds is several: leave --seed-ensemble "
                         "off to explain, or --explain off to measure the ensemble")


def expand(config: BenchConfig) -> list[Cell]:
    """The product of every list, collapsed where cells compute the same thing, in a stable order.

    Every multimodal figure is shown beside its baselines: the majority row per dataset and the
    text-only / image-only rows of each encoder in each mode are added when not asked for.
    """
    from jftzoo.fusion.registry import get_fusion_spec

    validate(config)
    cells: dict[Cell, None] = {}
    for data in config.data:
        cells.setdefault(cell_for(data, None, None, "majority", "frozen"))  # type: ignore[arg-type]
    for data, fusion, mode, text, vision in itertools.product(
        config.data, config.fusion, config.mode, config.text, config.vision
    ):
        cells.setdefault(cell_for(data, text, vision, fusion, mode))
    for data, (fusion, mode), text, vision in itertools.product(config.data, config.extra_cells, config.text,
                                                                config.vision):
        cells.setdefault(cell_for(data, text, vision, fusion, mode))
    for data, (fusion, mode) in itertools.product(config.data, itertools.product(config.fusion, config.mode)):
        if fusion in BASELINES or len(get_fusion_spec(fusion).modalities) < 2:
            continue
        mode = "frozen" if fusion == "svm" else mode
        for text in config.text:
            cells.setdefault(cell_for(data, text, None, "text-only", mode))  # type: ignore[arg-type]
        for vision in config.vision:
            cells.setdefault(cell_for(data, None, vision, "image-only", mode))  # type: ignore[arg-type]
    return list(cells)


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# Records written since key scheme 2 say so (`key_scheme`). Scheme 1 hashed each encoder's library versions into
# the configuration, so a machine with another torch could neither resume nor join a row; `results migrate`
# re-keys such records after checking their fingerprints (jftzoo.bench.migrate).
KEY_SCHEME = 2


def config_hash(cell: Cell, protocol: dict[str, Any], identity: dict[str, Any]) -> str:
    """Names a configuration (a table row): the cell, the protocol, and `identity` (jftzoo version,
    encoder identities (weights and preprocessing), the full train config). Seeds, splits and folds are
    not in it: they are what a row's statistics run over."""
    return _digest({"cell": asdict(cell), "protocol": protocol, "identity": identity})[:16]


def record_key(cell: Cell, protocol: dict[str, Any], identity: dict[str, Any], split_digest: str, fold: str,
               seed: int) -> str:
    """Names one (configuration, split, fold, seed) result: the resume key of the results store."""
    return _digest({"cell": asdict(cell), "protocol": protocol, "identity": identity, "split": split_digest,
                    "fold": fold, "seed": seed})
