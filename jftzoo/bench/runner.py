"""Run a benchmark grid: every (cell, fold, seed) once, frozen encoders once per record, resumable.

Each finished (cell, fold, seed) goes to the results store straight away, keyed by a hash of
everything that determines it, so a re-run (or a run after a crash) skips finished work.
"""

from __future__ import annotations

import json
import pathlib
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from jftzoo.bench.cells import (
    CLASSICAL,
    UNAVAILABLE,
    EncoderBuildError,
    Encoders,
    Progress,
    cell_weights,
    frozen_pass,
    identity_of,
    plugin_fault,
    preset_notes,
    run_task,
    task_failure,
    tokens_needed,
    train_config,
)
from jftzoo.bench.grid import KEY_SCHEME, BenchConfig, Cell, config_hash, expand, record_key
from jftzoo.bench.store import ResultStore, write_manifest
from jftzoo.datasets.splits import folds_of, matching_split, subsample
from jftzoo.errors import UsageError

if TYPE_CHECKING:
    from jftzoo.bench.ray_executor import RayOptions, RaySession


@dataclass
class BenchReport:
    cells: list[Cell]
    records: list[dict[str, Any]]  # this grid's records, earlier runs' included
    unavailable: dict[Cell, str] = field(default_factory=dict)  # cell -> why its weights are missing
    failed: dict[Cell, str] = field(default_factory=dict)  # cell -> error of a (cell, fold) that failed
    encoder_passes: dict[str, int] = field(default_factory=dict)  # passes each encoder ran this time
    items_encoded: dict[str, int] = field(default_factory=dict)
    cache_corrupt: dict[str, int] = field(default_factory=dict)  # broken cache entries found and recomputed
    new_records: int = 0
    skipped_records: int = 0
    wall_s: float = 0.0
    bad_records: dict[str, list[Any]] = field(default_factory=dict)  # dataset -> Problems left out (--on-bad skip)
    bad_records_file: str | None = None  # where they are listed, beside the results
    repaired_bytes: int = 0  # an unfinished last line of results.jsonl cut off on open (an interrupted write)


@dataclass
class Plan:
    """One dataset under one seed: its records (subsampled under --limit), split and manifest, and the cells."""

    data: str
    seed: int
    ds: Any
    split: Any
    manifest: str  # the split manifest, relative to the results folder
    digest: str
    cells: list[Cell]


@dataclass
class Task:
    """One pending (cell, fold, seed): the ids of each part, its results-store key and estimated seconds."""

    fold: str
    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]
    key: str
    guess: float


@dataclass
class Work:
    """A cell under one plan, with what names its records and the tasks still to run."""

    plan: Plan
    cell: Cell
    weights: str
    identity: dict[str, Any]
    chash: str
    pending: list[Task]


def versions() -> dict[str, str]:
    import sklearn

    from jftzoo.train.classifier import model_versions

    return {**model_versions(), "python": platform.python_version(), "scikit-learn": sklearn.__version__}


def load_bench_dataset(data: str, config: BenchConfig) -> Any:
    from jftzoo.datasets.registry import get_dataset_spec, load_dataset, parse_data_arg

    spec = get_dataset_spec(parse_data_arg(data)[0])
    options = {"label_policy": config.label_policy} if "label_policy" in spec.options else {}
    if config.image_root is not None:
        options["image_root"] = config.image_root  # a kind that takes none says so (usage error)
    return load_dataset(data, on_bad=config.on_bad, on_missing=config.on_missing, **options)


def make_split(ds: Any, config: BenchConfig, seed: int) -> Any:
    """The bench's split of `ds` for `seed`: k-fold or ratio, group-aware unless `--groups none`."""
    from jftzoo.datasets.groups import groups_for
    from jftzoo.datasets.splits import split_for

    return split_for(ds, config.folds, config.split, seed, groups_for(ds, config.groups))


def run_bench(
    config: BenchConfig,
    out_dir: Any,
    progress: Progress | None = None,
    cache: Any = None,
    cells: list[Cell] | None = None,
    wait: bool = False,
    executor: RayOptions | None = None,
) -> BenchReport:
    """Run every pending (cell, fold, seed) of the grid (or of `cells`, a chosen part of it);
    `cache` is an embedding cache (None: memory only). The results folder is held for the run
    (`jftzoo.bench.lock`): another run on it raises StoreBusyError, or with `wait` is waited for
    (a "waiting" progress event names it). `executor`: None runs the tasks here, one after another;
    RayOptions hands them to Ray (`jftzoo.bench.ray_executor`), and this process still writes every record."""
    from jftzoo.bench.lock import results_lock

    emit = progress or (lambda event: None)
    with results_lock(out_dir, wait, on_wait=lambda who: emit({"event": "waiting", "holder": who})):
        session = None
        if executor is not None:  # Ray starts, and its workers load the encoders, while this process plans
            from jftzoo.bench.ray_executor import RaySession

            session = RaySession(executor, config, cache)
        try:
            return _run_bench(config, out_dir, progress, cache, cells, session)
        finally:
            if session is not None:
                session.close()


def _note_other_spellings(stored: list[dict[str, Any]], plans: list[Plan], config: BenchConfig, path: Any,
                          emit: Progress) -> None:
    """A record's key names the --data string as given, so the same files named another way (an absolute path, a
    different working folder) start new rows and resume nothing. Split digests name the data by content: stored
    records on this run's splits under another --data string are that case, and the note says how to join them."""
    from collections import Counter

    digests = {plan.digest for plan in plans}
    others = Counter(r["dataset"] for r in stored if r.get("dataset") not in config.data
                     and (r.get("split") or {}).get("digest") in digests)
    for other, n in others.items():
        emit({"event": "note", "message": f"{path}: {n} record(s) on these same splits of the same data are stored "
              f"under --data {other}; a record's key names the --data string, so they are other rows and nothing of "
              f"theirs resumes here. To continue them, run with --data {other} (from the folder it was given in)"})


def _run_bench(config: BenchConfig, out_dir: Any, progress: Progress | None, cache: Any,
               cells: list[Cell] | None, session: RaySession | None) -> BenchReport:
    import torch

    from jftzoo.bench.predictions import write_predictions
    from jftzoo.datasets.splits import read_split
    from jftzoo.features import FeatureStore, library_versions
    from jftzoo.version import __version__

    started = time.perf_counter()
    emit = progress or (lambda event: None)
    cells = expand(config) if cells is None else cells
    for message in preset_notes(cells, config):  # before any data is read: it concerns the plan itself
        emit({"event": "note", "message": message})
    given = {str(p): read_split(p) for p in config.split_files}  # unreadable or edited manifests fail first
    store = ResultStore(out_dir).open()
    stored = store.records()  # read once: what is done, and the timings the plan estimates from
    if store.repaired_bytes:  # power loss or kill mid-write: that line was never a finished record
        emit({"event": "note", "message": f"{store.path}: cut an unfinished last line ({store.repaired_bytes} "
              "bytes) left by an interrupted run; its task runs again"})
    done = {r["key"] for r in stored if "key" in r}
    legacy = sum(1 for r in stored if "key" in r and r.get("key_scheme", 1) < KEY_SCHEME)
    if legacy:  # their keys named library versions: none can match, so their tasks would silently run again
        emit({"event": "note", "message": f"{store.path}: {legacy} record(s) were stored under an earlier key scheme "
              f"and are not matched, so their tasks run again (to keep them, stop and first run: jftzoo results "
              f"migrate --results {out_dir})"})
    report = BenchReport(cells=cells, records=[], repaired_bytes=store.repaired_bytes)
    from jftzoo.train.prefix import PrefixStore

    features = FeatureStore(cache=cache, backend=config.train.get("frozen_backend", "pytorch"))
    prefixes = PrefixStore(config.train.get("prefix_dtype", "float32"))  # top-k cells on one encoder share it
    encoders = Encoders(config, features)
    protocol = config.protocol()
    env = {"device": config.device, "versions": versions(), "libraries": library_versions(),
           "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads"
           + (f", {torch.cuda.get_device_name()}" if config.device.startswith("cuda") else "")}
    wanted: set[str] = set()
    plans: list[Plan] = []
    for data in config.data:
        ds_cells = [c for c in cells if c.dataset == data]
        full = load_bench_dataset(data, config)  # read (and every image checked) once, whatever the seeds
        if full.skipped:
            report.bad_records[data] = list(full.skipped)
        fixed = matching_split(full, given) if given else None
        for seed in config.seeds:
            ds = full if fixed is not None else subsample(full, config.limit, seed)
            split = fixed if fixed is not None else make_split(ds, config, seed)
            repaired: list[str] = []
            manifest, digest = write_manifest(out_dir, split, repaired)
            for message in repaired:
                emit({"event": "note", "message": message})
            plans.append(Plan(data, seed, ds, split, manifest, digest, ds_cells))
    _note_other_spellings(stored, plans, config, store.path, emit)
    if report.bad_records:  # the same report as `jftzoo data check`, kept beside the results
        from jftzoo.atomic import atomic_write

        path = pathlib.Path(out_dir) / "bad_records.json"
        listed = {d: [{"id": p.record_id, "file": p.file, "reason": p.reason} for p in ps]
                  for d, ps in report.bad_records.items()}
        atomic_write(path, (json.dumps(listed, indent=2) + "\n").encode())
        report.bad_records_file = str(path)
    if given:
        raise UsageError(f"--split-file {', '.join(given)}: made from data none of --data matches (dataset "
                         "checksums differ); write it again with `jftzoo data check --data ... --write-split`")
    total = sum(len(folds_of(plan.split)) * len(plan.cells) for plan in plans)
    # The plan: what is already in the store, what is left and about how long it takes, before anything trains.
    from jftzoo.bench.estimate import Estimator
    from jftzoo.fusion.registry import get_fusion_spec

    estimator = Estimator(stored, config.device)
    work: list[Work] = []
    rows: dict[str, dict[str, Any]] = {}
    finished = 0
    for plan in plans:
        seed, ds, split, digest = plan.seed, plan.ds, plan.split, plan.digest
        for cell in plan.cells:
            try:
                weights = cell_weights(cell, encoders)
                identity = identity_of(cell, config, encoders, len(ds.labels))
            except UNAVAILABLE as exc:
                report.unavailable[cell] = str(exc).splitlines()[0]
                finished += len(folds_of(split))
                emit({"event": "unavailable", "cell": cell.label(), "reason": report.unavailable[cell]})
                continue
            except EncoderBuildError as exc:  # this cell fails alone; the rest of the grid runs
                report.failed[cell] = str(exc)
                finished += len(folds_of(split))
                emit({"event": "failed", "cell": cell.label(), "reason": report.failed[cell]})
                continue
            chash = config_hash(cell, protocol, identity)
            baseline = cell.fusion in CLASSICAL
            tc = None if baseline else train_config(cell, config, seed)
            epochs = 1 if tc is None else tc.max_epochs
            k = 1 if tc is None else max(tc.top_k) if isinstance(tc.top_k, tuple) else tc.top_k
            tokens = not baseline and get_fusion_spec(cell.fusion).uses_tokens
            pending = []
            row = rows.setdefault(cell.label(), {"cell": cell.label(), "done": 0, "pending": 0, "estimate_s": 0.0,
                                                 "sources": set()})
            for fold, train_ids, val_ids, test_ids in folds_of(split):
                key = record_key(cell, protocol, identity, digest, fold, seed)
                wanted.add(key)
                if key in done:
                    report.skipped_records += 1
                    finished += 1
                    row["done"] += 1
                    continue
                n_train = len(train_ids) if val_ids else len(train_ids) - round(0.1 * len(train_ids))
                guess = estimator.task(cell, chash, n_train, epochs, tokens, k)
                pending.append(Task(fold, train_ids, val_ids, test_ids, key, guess.seconds))
                row["pending"] += 1
                row["estimate_s"] += guess.seconds
                row["sources"].add(guess.source)
            work.append(Work(plan, cell, weights, identity, chash, pending))
    left_s = sum(r["estimate_s"] for r in rows.values())
    emit({"event": "plan", "cells": len(cells), "tasks": total, "done": finished,
          "pending": sum(r["pending"] for r in rows.values()), "estimate_s": left_s,
          "rows": [{**r, "sources": sorted(r["sources"])} for r in rows.values()]})
    counts = {"finished": finished}

    def commit(item: Work, task: Task, outcome: tuple[dict[str, Any], Any, Any], executor: str = "local") -> None:
        """A finished task's predictions, then its record (which names them), appended to the store."""
        plan, cell, identity, split = item.plan, item.cell, item.identity, item.plan.split
        record, test_preds, val_preds = outcome
        predictions = write_predictions(store.dir, task.key, test_preds, val_preds)  # before the record names it
        record.update({
            "key": task.key, "key_scheme": KEY_SCHEME, "config_hash": item.chash, "jftzoo_version": __version__,
            **asdict(cell),
            "weights": item.weights, "text_weights": encoders.weights.get(cell.text or ""),
            "vision_weights": encoders.weights.get(cell.vision or ""), "fold": task.fold, "seed": plan.seed,
            "fingerprints": identity["encoders"], "train_config": identity["train"],
            "split": {"kind": split.kind, "folds": config.folds, "ratio": config.split,
                      "groups": split.groups, "checksum": split.checksum, "digest": plan.digest,
                      "manifest": plan.manifest},
            "predictions": predictions, "n_records": len(plan.ds.records), "protocol": protocol,
            **env, **({"executor": executor} if executor != "local" else {}),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        store.append(record)
        report.new_records += 1
        counts["finished"] += 1
        emit({"event": "record", "cell": cell.label(), "fold": task.fold, "seed": plan.seed,
              "done": counts["finished"], "tasks": total, "auc": record["metrics"]["auc"]})

    def fail(cell: Cell, reason: str, tasks: int = 1) -> None:
        report.failed[cell] = reason
        counts["finished"] += tasks
        emit({"event": "failed", "cell": cell.label(), "reason": reason})

    def unavailable(cell: Cell, reason: str) -> None:
        report.unavailable[cell] = reason.splitlines()[0]

    if session is not None:  # Ray: tasks run on workers and return records; this process alone writes the store
        ray_counts = session.run(work, encoders, emit, commit, fail, unavailable, total)
        features.passes.update(ray_counts["passes"])
        features.encoded.update(ray_counts["encoded"])
    else:
        _run_local(work, config, encoders, features, prefixes, emit, commit, fail, unavailable, total, left_s,
                   counts)
    report.records = [r for r in store.records() if r.get("key") in wanted]
    report.encoder_passes = dict(features.passes)
    report.items_encoded = dict(features.encoded)
    report.cache_corrupt = dict(getattr(cache, "corrupt", {}) or {})
    report.wall_s = time.perf_counter() - started
    return report




def _run_local(work: list[Work], config: BenchConfig, encoders: Encoders, features: Any, prefixes: Any, emit: Progress,
               commit: Callable[..., None], fail: Callable[..., None], unavailable: Callable[[Cell, str], None],
               total: int, left_s: float, counts: dict[str, int]) -> None:
    """The local executor: every pending task in this process, in the plan's order."""
    prepared: dict[int, tuple[dict[str, Any], dict[tuple[str, str], bool], list[str]]] = {}
    for item in work:
        plan, cell, pending, seed = item.plan, item.cell, item.pending, item.plan.seed
        if not pending:
            continue
        if id(plan) not in prepared:  # once per (dataset, seed), not once per cell
            prepared[id(plan)] = (plan.ds.by_id(), tokens_needed(plan.cells), list(plan.ds.labels))
        by_id, needs_tokens, labels = prepared[id(plan)]
        if cell.mode == "frozen":  # one pass of each encoder over the whole dataset, shared by all cells
            try:
                frozen_pass(cell, plan.ds, encoders, features, needs_tokens, emit)
            except Exception as exc:
                fault = plugin_fault(cell, exc)
                if fault is None:
                    raise
                fail(cell, str(fault), len(pending))
                continue
        for task in pending:
            emit({"event": "task", "cell": cell.label(), "fold": task.fold, "seed": seed,
                  "done": counts["finished"], "tasks": total, "estimate_s": task.guess, "left_s": left_s})
            left_s -= task.guess
            try:
                outcome = run_task(cell, config, encoders, features, labels, by_id, task.train_ids, task.val_ids,
                                   task.test_ids, seed, item.identity, emit, prefixes)
            except UNAVAILABLE as exc:
                unavailable(cell, str(exc))
                break
            except Exception as exc:  # a jftzoo error, or a plugin's bug: this task fails, the grid goes on
                failure = task_failure(cell, exc)
                if failure is None:
                    raise
                fail(cell, f"{task.fold}, seed {seed}: {failure}")
                continue
            commit(item, task, outcome)
