"""The work of one benchmark task, wherever it runs: encoders built once per process, one cell trained on
one split's training part, stopped on its validation part and scored on its test part.

`jftzoo.bench.runner` (the local executor) and `jftzoo.bench.ray_executor` (Ray workers) both run tasks
through `run_task`, so a record is the same whichever executor made it.
"""

from __future__ import annotations

import copy
import pathlib
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from jftzoo.bench.grid import BASELINES, BenchConfig, Cell
from jftzoo.errors import JftzooError, TokenizerUnavailableError, WeightsUnavailableError

Progress = Callable[[dict[str, Any]], None]
UNAVAILABLE = (WeightsUnavailableError, TokenizerUnavailableError)
CLASSICAL = ("majority", "svm")  # baseline rows fitted by jftzoo.bench.baselines, not trained heads


class EncoderBuildError(JftzooError):
    """An encoder's factory raised while building it (a plugin bug); its cells fail, the rest run."""


class PluginRuntimeError(JftzooError):
    """A plugin's code (an encoder after it was built, a head) raised mid-task; its cell fails, the rest run."""


def _build_failure(name: str, exc: Exception) -> str:
    from jftzoo.plugins import describe, plugin_infos
    from jftzoo.registry import get_spec

    try:
        provider = get_spec(name).provider
    except Exception:  # the spec itself is gone: say what we know
        provider = "?"
    info = plugin_infos.get(provider)
    who = describe(info) if info is not None else f"plugin {provider!r}"
    return f"encoder {name!r} from {who} failed to build: {type(exc).__name__}: {exc}"


def plugin_fault(cell: Cell, exc: Exception) -> PluginRuntimeError | None:
    """`exc` as the cell's failure when a third-party plugin's code raised it; None for jftzoo's own bugs,
    which still stop the run (they would fail every cell alike)."""
    import traceback

    from jftzoo.plugins import blame, describe

    info = blame(exc)
    if info is None:
        return None
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return PluginRuntimeError(f"{describe(info)} raised while running {cell.label()}: {type(exc).__name__}: "
                              f"{exc} (at {pathlib.Path(frame.filename).name}:{frame.lineno}); report it to the "
                              "plugin's authors")


def task_failure(cell: Cell, exc: Exception) -> str | None:
    """A task's failure as its cell's reason (jftzoo's errors, plugins' bugs); None for jftzoo's own bugs, which
    must not be recorded as a cell's failure (they would fail every cell alike)."""
    failure = exc if isinstance(exc, JftzooError) else plugin_fault(cell, exc)
    return None if failure is None else str(failure)


class Encoders:
    """Each encoder built once per run (pre-trained, or random under --random-init), reused frozen
    and copied for training, so availability is decided once and labelled consistently."""

    def __init__(self, config: BenchConfig, features: Any = None) -> None:
        from jftzoo.features import FeatureStore

        self.config = config
        self.features = features if features is not None else FeatureStore()  # memoises fingerprints
        self.built: dict[str, Any] = {}
        self.weights: dict[str, str] = {}  # name -> "pretrained" | "random"
        self.missing: dict[str, str] = {}  # name -> why
        self.broken: dict[str, str] = {}  # name -> how its factory failed (a plugin bug)

    def get(self, name: str) -> Any:
        from jftzoo.registry import get_encoder

        if name in self.missing:
            raise WeightsUnavailableError(self.missing[name])
        if name in self.broken:
            raise EncoderBuildError(self.broken[name])
        if name not in self.built:
            try:
                try:
                    enc = _deterministic(get_encoder, name, True)
                except WeightsUnavailableError as exc:
                    if not self.config.random_init:
                        self.missing[name] = str(exc)
                        raise
                    enc = _deterministic(get_encoder, name, False)  # labelled `random` in every table and record
            except JftzooError:
                raise
            except Exception as exc:  # a plugin's factory bug: this encoder's cells fail, the grid goes on
                self.broken[name] = _build_failure(name, exc)
                raise EncoderBuildError(self.broken[name]) from exc
            self.weights[name] = "pretrained" if enc.pretrained else "random"
            if isinstance(getattr(type(enc), "tokenizer", None), property):  # loaded lazily by text encoders
                try:
                    enc.tokenizer  # noqa: B018 (fail now, not mid-grid, when the tokenizer is hub-only)
                except TokenizerUnavailableError as exc:
                    self.missing[name] = str(exc)
                    raise
            self.built[name] = enc.to(self.config.device).eval()
        return self.built[name]

    def identity(self, name: str) -> str:
        """The built encoder's identity in a configuration: weights and preprocessing (`FeatureStore.identity`)."""
        return self.features.identity(self.get(name))

    def fresh(self, name: str) -> Any:
        """A private copy for a cell that trains the encoder."""
        return copy.deepcopy(self.get(name))


def _deterministic(get_encoder: Callable[..., Any], name: str, pretrained: bool) -> Any:
    """Build under a seed of its own, named by the encoder, without touching the global generator: random-init
    weights (and any part a checkpoint leaves initialised) are then the same in every process and every run, so
    a Ray worker's encoder has the fingerprint the driver put in the record, and a random-init run resumes."""
    import zlib

    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(name.encode("utf-8")))
        return get_encoder(name, pretrained=pretrained)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def tokens_needed(cells: list[Cell]) -> dict[tuple[str, str], bool]:
    """(dataset, encoder) pairs whose frozen pass must keep token sequences (a head reads them)."""
    from jftzoo.bench.grid import BASELINES
    from jftzoo.fusion.registry import get_fusion_spec

    need: dict[tuple[str, str], bool] = {}
    for cell in cells:
        uses = cell.fusion not in BASELINES and get_fusion_spec(cell.fusion).uses_tokens
        for name in (cell.text, cell.vision):
            if name is not None:
                need[(cell.dataset, name)] = need.get((cell.dataset, name), False) or uses
    return need


def cell_weights(cell: Cell, encoders: Encoders) -> str:
    """`random` if any of the cell's encoders was built with random weights; raises if one is unavailable."""
    used = [n for n in (cell.text, cell.vision) if n is not None]
    for name in used:
        encoders.get(name)
    if not used:
        return "none"  # the majority baseline reads no encoder
    return "random" if any(encoders.weights[n] == "random" for n in used) else "pretrained"


def train_config(cell: Cell, config: BenchConfig, seed: int) -> Any:
    """The cell's TrainConfig: the bench's options over the head's own preset (e.g. the paper's recipe
    for attention-paper) over the dataset kind's training defaults (MVSA: the tweet normaliser), never below
    one epoch."""
    from jftzoo.datasets.registry import train_defaults
    from jftzoo.fusion.registry import apply_train_preset
    from jftzoo.train.config import TrainConfig

    options = apply_train_preset(cell.fusion, {**config.train, **config.mode_train.get(cell.mode, {})},
                                 train_defaults(cell.dataset, reads_text=cell.text is not None))
    options = {"mode": cell.mode, "top_k": config.top_k, "max_epochs": config.epochs,
               "min_epochs": min(3, config.epochs), "batch_size": config.batch_size, **options, "seed": seed}
    options["min_epochs"] = min(options["min_epochs"], options["max_epochs"])
    return TrainConfig(**options)


def preset_notes(cells: Sequence[Cell], config: BenchConfig) -> list[str]:
    """One line per head that brings its own recipe (a fusion `train_preset`, e.g. attention-paper's) into a grid
    where unimodal baseline rows of its mode train beside it with other values of those fields (they train with
    the grid's options, not the head's recipe): the comparison then mixes two recipes unless the fields named are
    given to the bench itself, which applies them to every cell."""
    from jftzoo.fusion.registry import get_fusion_spec

    notes = []
    for cell in cells:
        preset = {} if cell.fusion in BASELINES else get_fusion_spec(cell.fusion).train_preset
        baselines = [c for c in cells if c.dataset == cell.dataset and c.mode == cell.mode
                     and c.fusion in ("text-only", "image-only")]
        if not preset or not baselines:
            continue
        mine = asdict(train_config(cell, config, 0))
        differ: dict[str, Any] = {}
        for base in baselines:
            theirs = asdict(train_config(base, config, 0))
            differ |= {k: mine[k] for k in preset
                       if mine[k] != theirs[k] and not (k == "text_normalizer" and base.text is None)}
        if differ:
            fields = ", ".join(f"{k}={v}" for k, v in differ.items())
            names = " and ".join(sorted({b.fusion for b in baselines}))
            notes.append(f"{cell.label()} trains with its head's own recipe ({fields}); the {names} {cell.mode} "
                         "row(s) beside it train with this grid's options instead, so the two recipes differ; to "
                         "train them alike, give those options to the bench")
    return notes


def _head_config(cell: Cell, encoders: Encoders, n_classes: int) -> Any:
    from jftzoo.fusion.heads import HeadConfig

    text = encoders.get(cell.text) if cell.text else None
    vision = encoders.get(cell.vision) if cell.vision else None
    return HeadConfig(n_classes=n_classes, text_dim=text.embed_dim if text else 0,
                      vision_dim=vision.embed_dim if vision else 0, text_token_dim=text.token_dim if text else 0,
                      vision_token_dim=vision.token_dim if vision else 0)


def identity_of(cell: Cell, config: BenchConfig, encoders: Encoders, n_classes: int) -> dict[str, Any]:
    """What besides the cell and protocol decides a result: jftzoo's version, each encoder's identity
    (weights and preprocessing; the library versions are kept in each record instead, so one configuration's
    seeds may run on several machines) and the full training configuration."""
    from jftzoo.bench.baselines import MAJORITY, svm_identity
    from jftzoo.version import __version__

    used = {n: encoders.identity(n) for n in (cell.text, cell.vision) if n is not None}
    if cell.fusion == "majority":
        train: dict[str, Any] = dict(MAJORITY)
    elif cell.fusion == "svm":
        train = svm_identity(config.svm_kernel)
        if config.train.get("frozen_backend", "pytorch") != "pytorch":  # it reads the frozen features
            train["frozen_backend"] = config.train["frozen_backend"]
    else:
        from jftzoo.train.config import config_identity

        tc = config_identity(train_config(cell, config, 0))
        train = {**tc, "head": asdict(_head_config(cell, encoders, n_classes))}
    return {"jftzoo": __version__, "encoders": used, "train": train}


def run_task(cell: Cell, config: BenchConfig, encoders: Encoders, features: Any, labels: list[str], by_id: dict,
             train_ids: list[str], val_ids: list[str], test_ids: list[str], seed: int, identity: dict[str, Any],
             emit: Progress, prefixes: Any = None) -> tuple[dict[str, Any], Any, Any]:
    """Train on the training part, stop and report validation on the validation part (the split's,
    or carved from training for k-fold), and score the test part, which nothing else reads."""
    import numpy as np
    import torch

    from jftzoo.bench.predictions import Predictions
    from jftzoo.train.metrics import evaluate
    from jftzoo.train.trainer import TrainConfig, carve_validation, predict_proba, prefix_proba

    index = {c: j for j, c in enumerate(labels)}
    train = [by_id[i] for i in train_ids]
    val = [by_id[i] for i in val_ids]
    test = [by_id[i] for i in test_ids]
    baseline = cell.fusion in CLASSICAL
    tc = TrainConfig(seed=seed) if baseline else train_config(cell, config, seed)  # baselines: the same carve
    if not val:
        train, val = carve_validation(train, tc.val_fraction, seed)
    if config.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if baseline:
        t_fit = time.perf_counter()
        val_probs, probs = _baseline(cell, encoders, features, train, [val, test], index, seed, config.svm_kernel)
        train_s = time.perf_counter() - t_fit
        seen = len(train)
    else:
        from jftzoo.train.config import member_seeds

        batch = max(config.batch_size, 32)
        shared = features if cell.mode == "frozen" else None
        gates: list[Any] = []
        members = member_seeds(seed, tc.seed_ensemble)  # [seed] without --seed-ensemble
        results, val_runs, test_runs = [], [], []
        train_s = 0.0
        for member_seed in members:  # one split, models from different seeds: their probabilities are averaged
            t_fit = time.perf_counter()
            model, result, member_val = train_and_validate(cell, config, encoders, features, labels, train, val,
                                                           member_seed, emit, prefixes, test=test)
            train_s += time.perf_counter() - t_fit
            gated = cell.fusion == "gated" and hasattr(model.head, "last_weights")
            read_gates = (lambda m: gates.append(m.head.last_weights.cpu())) if gated else None
            if result.prefix is not None:  # top-k: the test part's frozen prefix was cached with the others
                member_test = prefix_proba(model, result.prefix, "score", batch, on_batch=read_gates)
            else:
                member_test = predict_proba(model, test, batch, shared, text_normalizer=tc.text_normalizer,
                                            on_batch=read_gates)
            if config.explain:  # never with an ensemble (grid.validate refuses it)
                extra["explain"] = _explain(model, train, test, batch, shared, tc.text_normalizer)
            results.append(result)
            val_runs.append(member_val)  # (n_val, C)
            test_runs.append(member_test)  # (n_test, C)
            del model
        val_probs, probs = val_runs[0], test_runs[0]
        if len(members) > 1:  # (n, C) each, averaged record by record in float64
            val_probs = np.mean([np.asarray(p, dtype=np.float64) for p in val_runs], axis=0)
            probs = np.mean([np.asarray(p, dtype=np.float64) for p in test_runs], axis=0)
        result = results[0]  # member 0 is the model a run without the ensemble trains
        seen = len(train) * sum(len(r.history) for r in results)
        extra.update({"best_epoch": result.best_epoch, "epochs_run": len(result.history), "history": result.history,
                      **({"averaged_epochs": result.averaged_epochs} if result.averaged_epochs else {})})
        if len(members) > 1:
            extra["seed_ensemble"] = {"seeds": members, "best_epochs": [r.best_epoch for r in results],
                                      "epochs_run": [len(r.history) for r in results]}
        if gates:  # mean gate weights (text, image) over the test records: how much each modality counted
            extra["gate_weights_test_mean"] = [float(x) for x in torch.cat(gates).mean(0)]
    y_test, y_val = [index[r.label] for r in test], [index[r.label] for r in val]
    metrics = evaluate(y_test, probs, labels)
    val_metrics = evaluate(y_val, val_probs, labels)
    wall = time.perf_counter() - t0
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if config.device.startswith("cuda") else None
    record = {"metrics": metrics, "val_metrics": val_metrics, "n_train": len(train), "n_val": len(val),
              "n_test": len(test), "wall_s": wall, "train_s": train_s,
              "samples_per_s": seen / train_s if train_s > 0 else None, "peak_rss_mb": _peak_rss_mb(),
              "peak_gpu_mb": peak_gpu, **extra}
    test_preds = Predictions(labels, [r.id for r in test], y_test, np.asarray(probs, dtype=np.float32))
    val_preds = Predictions(labels, [r.id for r in val], y_val, np.asarray(val_probs, dtype=np.float32))
    return record, test_preds, val_preds


def _explain(model: Any, train: list, test: list, batch_size: int, features: Any, normalizer: str
             ) -> dict[str, Any]:
    """bench --explain: the text's pooled share of the modality Shapley values on the test part (the
    `auto` baseline: the training part's mean embeddings for frozen encoders, empty/grey inputs else)."""
    from jftzoo.explain.coalitions import baseline_outputs, coalition_probs, resolve_baseline
    from jftzoo.explain.shapley import at, pooled_share, shapley
    from jftzoo.train.trainer import normalized_texts

    records, reference = normalized_texts(test, normalizer), normalized_texts(train, normalizer)
    kind = resolve_baseline(model, "auto", True)
    bases = baseline_outputs(model, kind, reference, batch_size, features=features)
    co = coalition_probs(model, records, bases, batch_size, features=features)
    phi = shapley(at(co.probs, co.probs["both"].argmax(1)))
    share = pooled_share(phi)
    return {"text_share": share, "image_share": 1 - share, "baseline": kind,
            "shapley_mean": {"text": float(phi.text.mean()), "image": float(phi.image.mean())}}


def train_and_validate(cell: Cell, config: BenchConfig, encoders: Encoders, features: Any, labels: list[str],
                       train: list, val: list, seed: int, emit: Progress, prefixes: Any = None,
                       progress: Any = None, test: list = ()) -> tuple[Any, Any, Any]:
    """(model, TrainResult, validation probabilities) of one cell on one split: the training half of a
    benchmark task, shared with `jftzoo tune` so a tuned configuration re-run by `jftzoo bench` gives
    the same validation figures. Only `train` and `val` decide anything; `test` records are only handed to
    fit to cache their frozen prefix (top-k), for the caller's scoring. `progress` also sees fit's events."""
    from jftzoo.train.trainer import fit, predict_proba, prefix_proba, seed_everything

    tc = train_config(cell, config, seed)
    for name in (cell.text, cell.vision):  # built (and its init's random draws made) before seeding, so a task
        if name is not None:               # draws the same numbers whether or not its process built it already
            encoders.get(name)
    seed_everything(seed)
    model = _build_model(cell, encoders, len(labels))
    shared = features if cell.mode == "frozen" else None

    def forward(event: dict[str, Any]) -> None:
        if progress is not None:
            progress(event)
        if event.get("event") == "epoch":
            emit({**event, "event": "epoch", "max_epochs": tc.max_epochs})
        elif event.get("event") == "note":
            emit({**event, "cell": cell.label()})

    result = fit(model, train, labels, tc, progress=forward, validation=val, features=shared, prefix_store=prefixes,
                 score=test)
    batch = max(config.batch_size, 32)
    if result.prefix is not None:  # top-k: only the trained top groups run
        val_probs = prefix_proba(model, result.prefix, "val", batch)
    else:
        val_probs = predict_proba(model, val, batch, shared, text_normalizer=tc.text_normalizer)
    return model, result, val_probs


def _build_model(cell: Cell, encoders: Encoders, n_classes: int) -> Any:
    from jftzoo.fusion.registry import build_head
    from jftzoo.train.model import FusionModel

    frozen = cell.mode == "frozen"
    pick = encoders.get if frozen else encoders.fresh  # frozen encoders are shared, trained ones copied
    text = pick(cell.text) if cell.text else None
    vision = pick(cell.vision) if cell.vision else None
    head_name = "concat" if cell.fusion == "clip" else cell.fusion
    device = encoders.config.device
    return FusionModel(text, vision, build_head(head_name, _head_config(cell, encoders, n_classes)).to(device))


def _baseline(cell: Cell, encoders: Encoders, features: Any, train: list, score: list[list], index: dict[str, int],
              seed: int, svm_kernel: str = "auto") -> list[Any]:
    """Probabilities of the majority or SVM baseline for each list of records in `score`."""
    import numpy as np

    from jftzoo.bench import baselines

    y_train = np.array([index[r.label] for r in train])
    if cell.fusion == "majority":
        return baselines.majority(y_train, len(index), score)
    text, vision = encoders.get(cell.text), encoders.get(cell.vision)

    def embed(records: list) -> np.ndarray:
        parts, absent = [], []
        for encoder, modality in ((text, "text"), (vision, "vision")):
            got = features.features(encoder, [r.item(modality) for r in records])
            x = got.pooled.numpy().astype(np.float64)  # (N, D)
            gone = ~got.present.numpy() if got.present is not None else np.zeros(len(records), dtype=bool)
            x[gone] = np.nan  # a post without this modality: imputed by the baseline
            parts.append(x)
            absent.append(gone.astype(np.float64)[:, None])  # (N, 1)
        return np.concatenate(parts + absent, axis=1)  # (N, D_t + D_v + 2)

    return baselines.svm(embed(train), y_train, len(index), [embed(part) for part in score], seed, svm_kernel)


def frozen_pass(cell: Cell, ds: Any, encoders: Encoders, features: Any, needs_tokens: dict[tuple[str, str], bool],
                emit: Progress) -> None:
    """One pass of each of the cell's encoders over the whole dataset (shared by all cells: later calls hit the
    feature store), with the token sequences where a head of the grid reads them."""
    for name in (cell.text, cell.vision):
        if name is not None:
            enc = encoders.get(name)
            items = [r.item(enc.modality) for r in ds.records]
            features.features(enc, items, tokens=needs_tokens.get((cell.dataset, name), False),
                              progress=lambda i, n, _name=name: emit(
                                  {"event": "encode", "encoder": _name, "done": i, "total": n}))
