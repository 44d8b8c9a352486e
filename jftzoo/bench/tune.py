"""`jftzoo tune`: hyperparameter search with Optuna, on validation data only.

A trial is one configuration of a declared space (learning rates, layer decay, smoothing, modality
dropout, epochs, head, k). It trains exactly as `jftzoo bench` trains a cell (the shared
`cells.train_and_validate`, the same split manifests and seeds) and is scored on each seed's
validation part; test parts are never read (their ids are dropped before any record is touched).
The per-epoch validation figure goes to Optuna's pruner (median rule), and the study lives in a
SQLite file beside the bench results, so a stopped search resumes where it was. The best trial is
printed as the exact `jftzoo bench` options that reproduce its validation score.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jftzoo.bench.grid import BenchConfig, cell_for
from jftzoo.errors import UsageError
from jftzoo.train.config import as_option, refuse_seed_ensemble


@dataclass(frozen=True)
class Param:
    """One searched dimension: a float/int range (log-uniform if `log`) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)  # type: ignore[arg-type]

    def spec(self) -> str:
        if self.choices:
            return ",".join(str(c) for c in self.choices)
        return f"{self.low}:{self.high}" + (":log" if self.log else "")


INTEGER = {"max_epochs", "top_k", "average_top"}
# Fields a trial may set: TrainConfig recipe fields, plus the head and k, which name the bench cell.
TUNABLE = ("lr_encoder", "lr_head", "layer_decay", "label_smoothing", "modality_dropout", "weight_decay",
           "warmup_ratio", "max_epochs", "fusion", "top_k", "scheduler", "class_weight", "ema", "text_normalizer",
           "average_top")


def parse_param(text: str) -> Param:
    """`name=low:high[:log]` or `name=a,b,c` (e.g. lr_head=1e-4:3e-3:log, fusion=concat,gated)."""
    name, sep, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not rest:
        raise UsageError(f"--param {text!r}: write NAME=LOW:HIGH[:log] or NAME=A,B,C")
    if name not in TUNABLE:
        from jftzoo.errors import suggest

        hint = suggest(name, TUNABLE)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"--param {text!r}: {name!r} cannot be tuned.{did} Tunable: {', '.join(TUNABLE)}")
    if ":" in rest:
        parts = rest.split(":")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise UsageError(f"--param {text!r}: LOW and HIGH must be numbers") from None
        if len(parts) > 3 or (len(parts) == 3 and parts[2] != "log") or not low < high:
            raise UsageError(f"--param {text!r}: write NAME=LOW:HIGH or NAME=LOW:HIGH:log with LOW < HIGH")
        return Param(name, low, high, log=len(parts) == 3, integer=name in INTEGER)
    choices = tuple(_number(c.strip()) for c in rest.split(",") if c.strip())
    return Param(name, choices=choices)


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def default_space(config: BenchConfig) -> list[Param]:
    """What the search varies when no --param is given: the levers that matter for the mode."""
    mode = config.mode[0]
    space = [Param("lr_head", 1e-4, 3e-3, log=True), Param("label_smoothing", 0.0, 0.2),
             Param("max_epochs", 2, max(2, config.epochs), integer=True)]
    if mode != "frozen":
        space += [Param("lr_encoder", 1e-5, 2e-4, log=True), Param("layer_decay", 0.6, 1.0),
                  Param("modality_dropout", 0.0, 0.3)]
    if mode == "top-k":
        space.append(Param("top_k", 1, 3, integer=True))
    if len(config.fusion) > 1:
        space.append(Param("fusion", choices=tuple(config.fusion)))
    return space


@dataclass
class Tuning:
    """The fixed part of a search: one dataset, encoder pair and mode; the seeds whose validation parts score it."""

    config: BenchConfig
    space: list[Param]
    metric: str = "accuracy"
    out: Path = Path("jftzoo-bench")
    study: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from jftzoo.train.recipe import check_monitor

        check_monitor(self.metric)
        c = self.config
        for flag, values in (("--data", c.data), ("--text", c.text), ("--vision", c.vision), ("--mode", c.mode)):
            if len(values) != 1:
                raise UsageError(f"jftzoo tune searches one setting at a time: give exactly one {flag}")
        if not any(p.name == "fusion" for p in self.space) and len(c.fusion) != 1:
            raise UsageError("give one --fusion, or search over heads with --param fusion=A,B")
        for f in c.fusion:
            if f in ("majority", "svm"):
                raise UsageError(f"--fusion {f} is a baseline with nothing to tune")

    @property
    def direction(self) -> str:
        return "minimize" if self.metric == "loss" else "maximize"

    def study_name(self) -> str:
        """Names the setting: a different dataset, pair, protocol, metric or space is a different study."""
        c = self.config
        fixed = {"data": list(c.data), "text": list(c.text), "vision": list(c.vision), "mode": list(c.mode),
                 "fusion": list(c.fusion), "protocol": c.protocol(), "seeds": list(c.seeds), "epochs": c.epochs,
                 "batch_size": c.batch_size, "top_k": c.top_k, "train": self._effective_train(), "metric": self.metric,
                 "space": [p.spec() + p.name for p in self.space]}
        digest = hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return self.study or f"{c.mode[0]}-{digest}"

    def _effective_train(self) -> dict[str, Any]:
        """The fixed training options with the dataset kind's defaults (MVSA: the tweet normaliser) under them, less
        those at TrainConfig's own defaults: a study run before a dataset default existed keeps its name when the
        option restores what it trained with (`--text-normalizer none`), and a new default names a new study."""
        from jftzoo.datasets.registry import train_defaults
        from jftzoo.train.config import ADDED_LATER

        searched = {p.name for p in self.space}  # every trial sets these: a default under them changes nothing
        defaults = {k: v for k, v in train_defaults(self.config.data[0]).items() if k not in searched}
        train = {**defaults, **self.config.train}
        return {k: v for k, v in train.items() if not (k in defaults and k in ADDED_LATER and v == ADDED_LATER[k])}

    def storage(self) -> str:
        path = Path(self.out) / "tune" / f"{self.study_name()}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path.resolve()}"

    def trial_config(self, params: dict[str, Any]) -> BenchConfig:
        """The bench configuration of one trial: the fixed part with the trial's values."""
        params = dict(params)
        c = self.config
        fusion = params.pop("fusion", c.fusion[0])
        top_k = int(params.pop("top_k", c.top_k))
        epochs = int(params.pop("max_epochs", c.epochs))
        train = {**c.train, **params}
        if self.metric != "loss":
            train["monitor"] = self.metric  # early stopping reads the figure the search maximises
        return replace(c, fusion=[fusion], top_k=top_k, epochs=epochs, train=train)


def bench_command(config: BenchConfig) -> str:
    """The `jftzoo bench` command line that runs `config` (one cell), options spelled as the CLI takes them."""
    c = config
    parts = ["jftzoo bench", f"--data {c.data[0]}", f"--text {c.text[0]}", f"--vision {c.vision[0]}",
             f"--fusion {c.fusion[0]}", f"--mode {c.mode[0]}"]
    parts.append(f"--split {c.split}" if c.split else f"--folds {c.folds}")
    parts += [f"--groups {c.groups}", f"--seeds {','.join(str(s) for s in c.seeds)}", f"--epochs {c.epochs}",
              f"--batch-size {c.batch_size}"]
    if c.mode[0] == "top-k":
        parts.append(f"--top-k {c.top_k}")
    if c.limit:
        parts.append(f"--limit {c.limit}")
    if c.label_policy:
        parts.append(f"--label-policy {c.label_policy}")
    if c.random_init:
        parts.append("--random-init")
    for name, value in sorted(c.train.items()):
        if name in ("workers", "image_cache") or value is None:
            continue  # speed only: never changes a figure
        parts.append(as_option(name, value))
    return " ".join(p for p in parts if p)


Event = Callable[[dict[str, Any]], None]


def run_tuning(tuning: Tuning, trials: int | None, timeout: float | None, progress: Event | None = None,
               cache: Any = None) -> Any:
    """Run (or resume) the study until it holds `trials` finished trials or `timeout` seconds pass."""
    import optuna

    from jftzoo.bench.cells import Encoders, train_and_validate
    from jftzoo.bench.runner import load_bench_dataset, make_split
    from jftzoo.bench.store import write_manifest
    from jftzoo.datasets.splits import folds_of, subsample
    from jftzoo.features import FeatureStore
    from jftzoo.train.metrics import evaluate
    from jftzoo.train.prefix import PrefixStore
    from jftzoo.train.trainer import carve_validation

    refuse_seed_ensemble(tuning.config.train, "tune")
    emit = progress or (lambda event: None)
    # The CLI shows progress and errors; the library never prints. ERROR, not WARNING: Optuna logs an interrupted
    # or failed trial as a warning with its traceback, and the caller reports that failure itself.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    c = tuning.config
    study = optuna.create_study(study_name=tuning.study_name(), storage=tuning.storage(), load_if_exists=True,
                                direction=tuning.direction, sampler=optuna.samplers.TPESampler(seed=c.seeds[0]),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    from optuna.trial import TrialState

    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # killed mid-trial last time
        study._storage.set_trial_state_values(stale._trial_id, state=TrialState.FAIL)
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    remaining = None if trials is None else max(0, trials - finished)
    emit({"event": "study", "name": study.study_name, "storage": tuning.storage(), "finished": finished,
          "remaining": remaining})
    if remaining == 0:
        return study

    features = FeatureStore(cache=cache, backend=c.train.get("frozen_backend", "pytorch"))
    prefixes = PrefixStore(c.train.get("prefix_dtype", "float32"))
    encoders = Encoders(c, features)
    full = load_bench_dataset(c.data[0], c)
    plans = []
    for seed in c.seeds:
        ds = subsample(full, c.limit, seed)
        split = make_split(ds, c, seed)
        write_manifest(Path(tuning.out), split)  # the same manifests `jftzoo bench --out` writes
        _, train_ids, val_ids, _test_ids = folds_of(split)[0]  # test ids dropped here, never read
        plans.append((seed, ds, train_ids, val_ids))
    labels = list(full.labels)

    def objective(trial: Any) -> float:
        params = {p.name: p.suggest(trial) for p in tuning.space}
        config = tuning.trial_config(params)
        cell = cell_for(c.data[0], c.text[0], c.vision[0], config.fusion[0], c.mode[0])
        scores = []
        for i, (seed, ds, train_ids, val_ids) in enumerate(plans):
            by_id = ds.by_id()
            train, val = [by_id[x] for x in train_ids], [by_id[x] for x in val_ids]
            if not val:  # k-fold: the validation part is carved from training, as bench does
                from jftzoo.bench.cells import train_config

                train, val = carve_validation(train, train_config(cell, config, seed).val_fraction, seed)

            def report(event: dict[str, Any], _i: int = i) -> None:
                if event.get("event") != "epoch" or len(plans) > 1:
                    return  # several seeds: pruned on whole seeds below, not epochs of one
                value = event["val_loss"] if tuning.metric == "loss" else event.get(f"val_{tuning.metric}")
                if value is not None and math.isfinite(value):
                    trial.report(value, event["epoch"])
                    if trial.should_prune():
                        raise optuna.TrialPruned()

            _, _, val_probs = train_and_validate(cell, config, encoders, features, labels, train, val, seed,
                                                 lambda e: None, prefixes, progress=report)
            index = {label: j for j, label in enumerate(labels)}
            scores.append(_score(tuning.metric, evaluate([index[r.label] for r in val], val_probs, labels),
                                 [index[r.label] for r in val], val_probs))
            if len(plans) > 1:
                trial.report(sum(scores) / len(scores), 1000 + i)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return sum(scores) / len(scores)

    def callback(study: Any, trial: Any) -> None:
        best = None
        with contextlib.suppress(ValueError):  # no finished trial yet
            best = study.best_value
        emit({"event": "trial", "number": trial.number, "state": trial.state.name, "value": trial.value,
              "params": trial.params, "best": best})

    study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=[callback], catch=())
    return study


def _score(metric: str, metrics: dict[str, Any], y: Sequence[int], probs: Any) -> float:
    if metric == "loss":
        import numpy as np

        p = np.clip(np.asarray(probs)[np.arange(len(y)), np.asarray(y)], 1e-12, None)
        return float(-np.log(p).mean())
    value = metrics.get(metric)
    return float("nan") if value is None else float(value)


def best_config(tuning: Tuning, study: Any) -> BenchConfig:
    """The bench configuration of the study's best trial."""
    params = dict(study.best_trial.params)
    return tuning.trial_config(params)
