"""`jftzoo bench --executor ray`: the grid's tasks as Ray tasks, on this machine or a cluster.

Why Ray: a grid is many independent fits, and Ray schedules such tasks with resource requests (CPUs,
GPUs), retries crashed ones, and runs the same code locally (no set-up) or on a cluster. jftzoo does
not schedule anything itself.

Shape of a run: Ray starts (and its workers load the grid's encoders) while the driver plans. The
frozen features come first, into the embedding cache: each pass the local executor would make, in its
order, cut into slices at batch boundaries, one Ray task a slice (the same batches as one pass, so the
same floats at the same torch thread count); then one Ray task per pending (cell, fold, seed) trains and scores the
cell through `jftzoo.bench.cells.run_task` (the local executor's code) and RETURNS its record and
predictions. Only the driver (the `jftzoo bench` process) writes the results store, as results come
back, so kill-safety and resume are exactly those of the local executor. A task that raises an
unexpected error or whose worker dies is retried `retries` times, then its cell is recorded as
failed with the reason; a task's own failure (a plugin's bug, a missing tokenizer...) is returned as
data and not retried, since it would fail again.

Features reach the workers through the embedding cache's path: with no cache (`--no-cache`) the run
uses a temporary one, removed at the end. On a cluster, a cache folder that every node mounts avoids
recomputing features per node (`JFTZOO_CACHE_LAYOUT=files` there: LMDB's lock is not for network
filesystems); a node that cannot see it computes its own (same results, more time). See docs/scale.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jftzoo.errors import JftzooError, UsageError

if TYPE_CHECKING:
    from jftzoo.bench.cells import Encoders
    from jftzoo.bench.grid import BenchConfig, Cell
    from jftzoo.bench.runner import Task, Work

INSTALL = "pip install 'jftzoo[ray]'"


@dataclass(frozen=True)
class RayOptions:
    """How the grid is handed to Ray. `address`: an existing cluster (`ray start --head` printed it, or
    `auto`); None starts Ray on this machine with `num_cpus` cores (None: all of them)."""

    address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    retries: int = 1
    num_cpus: int | None = None

    def describe(self) -> str:
        where = f"cluster {self.address}" if self.address else "local"
        gpus = f", {self.gpus_per_cell:g} GPU" if self.gpus_per_cell else ""
        return f"ray ({where}; {self.cpus_per_cell:g} CPU{gpus} per task)"


def require_ray() -> None:
    """A one-line usage error naming the extra when Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None


@dataclass(frozen=True)
class _Run:
    """What every worker needs to rebuild the driver's set-up: the grid's config and where the cache is."""

    run_id: str
    config: BenchConfig
    cache_layout: str
    cache_root: str
    threads: int


class _WorkerState:
    """Per worker process and run: encoders built once, a feature store on the shared cache, the top-k
    prefix store (Ray reuses a worker process for many tasks, so these are paid once per worker)."""

    def __init__(self, run: _Run) -> None:
        import torch

        from jftzoo.bench.cells import Encoders
        from jftzoo.cache_layouts import embedding_cache
        from jftzoo.features import FeatureStore
        from jftzoo.train.prefix import PrefixStore

        torch.set_num_threads(run.threads)
        self.run_id = run.run_id
        cache = embedding_cache(Path(run.cache_root), run.cache_layout)
        self.features = FeatureStore(cache=cache, backend=run.config.train.get("frozen_backend", "pytorch"))
        self.encoders = Encoders(run.config, self.features)
        self.prefixes = PrefixStore(run.config.train.get("prefix_dtype", "float32"))

    def counted(self) -> tuple[Counter[str], Counter[str]]:
        """Passes and items encoded so far by this worker (the driver adds up the differences)."""
        return Counter(self.features.passes), Counter(self.features.encoded)


_STATE: dict[str, _WorkerState] = {}  # run id -> this worker's state (one run at a time in practice)


def _state(run: _Run) -> _WorkerState:
    if run.run_id not in _STATE:
        _STATE.clear()
        _STATE[run.run_id] = _WorkerState(run)
    return _STATE[run.run_id]


def _delta(state: _WorkerState, before: tuple[Counter[str], Counter[str]]) -> dict[str, dict[str, int]]:
    passes, encoded = state.counted()
    return {"passes": dict(passes - before[0]), "encoded": dict(encoded - before[1])}


def encode_task(run: _Run, cell: Cell, name: str, items: list[Any], tokens: bool) -> dict[str, Any]:
    """Frozen features of encoder `name` for `items` (a batch-aligned slice of a pass), into the shared cache.
    Returns what it encoded, or the reason it failed (the cells that read it then fail with it)."""
    from jftzoo.bench.cells import UNAVAILABLE, task_failure

    state = _state(run)
    before = state.counted()
    try:
        state.features.features(state.encoders.get(name), items, tokens=tokens)
    except UNAVAILABLE as exc:
        return {"unavailable": str(exc), **_delta(state, before)}
    except Exception as exc:
        reason = task_failure(cell, exc)
        if reason is None:
            raise
        return {"failed": reason, **_delta(state, before)}
    return _delta(state, before)


def cell_task(run: _Run, ds: Any, cell: Cell, identity: dict[str, Any], task: Task, seed: int,
              *passes: dict[str, Any]) -> dict[str, Any]:
    """One (cell, fold, seed), after the frozen passes it reads (`passes`, their results): the record and
    predictions, or why it could not run."""
    from jftzoo.bench.cells import UNAVAILABLE, run_task, task_failure

    for done in passes:
        if "failed" in done or "unavailable" in done:
            return {k: v for k, v in done.items() if k in ("failed", "unavailable")}
    state = _state(run)
    before = state.counted()
    try:
        record, test_preds, val_preds = run_task(cell, run.config, state.encoders, state.features, list(ds.labels),
                                                 ds.by_id(), task.train_ids, task.val_ids, task.test_ids, seed,
                                                 identity, lambda event: None, state.prefixes)
    except UNAVAILABLE as exc:
        return {"unavailable": str(exc)}
    except Exception as exc:
        reason = task_failure(cell, exc)
        if reason is None:
            raise
        return {"failed": f"{task.fold}, seed {seed}: {reason}", **_delta(state, before)}
    import socket

    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"  # which machine and process ran it
    return {"outcome": (record, test_preds, val_preds), **_delta(state, before)}


def _init(options: RayOptions) -> bool:
    """Connect to the cluster, or start Ray here; True when this call started it (and must shut it down)."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
                              "configure_logging": True}
    if options.address:
        kwargs["address"] = options.address
    else:
        kwargs["num_cpus"] = options.num_cpus or os.cpu_count() or 1
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise JftzooError(f"--address {options.address}: no Ray cluster answered ({exc}); start one with "
                          "`ray start --head` on the head machine, or leave --address out to run Ray here") from exc
    return True


def warm_task(run: _Run, names: list[str]) -> int:
    """Start a worker's state and build the grid's encoders while the driver is still planning (imports and
    weight loads overlap its work instead of delaying the first tasks). Failures show later, in real tasks."""
    state = _state(run)
    for name in names:
        with contextlib.suppress(Exception):
            state.encoders.get(name)
    return os.getpid()


class RaySession:
    """Ray for one bench run: started (or joined) before the driver plans, so workers start and load the
    grid's encoders meanwhile; `run` hands it the plan's work; `close` shuts down what it started."""

    def __init__(self, options: RayOptions, config: BenchConfig, cache: Any) -> None:
        require_ray()
        import ray

        from jftzoo.cache_layouts import cache_location, embedding_cache

        self.options, self.config = options, config
        self.scratch = None
        if cache is None:  # memory-only run: the features still travel through a cache, a temporary one
            self.scratch = tempfile.mkdtemp(prefix="jftzoo-ray-cache-")
            cache = embedding_cache(Path(self.scratch))
        self.cache = cache
        layout, root = cache_location(cache)
        self.started = _init(options)
        try:
            self.run_ref = ray.put(_Run(run_id=os.urandom(8).hex(), config=config, cache_layout=layout,
                                        cache_root=root, threads=max(1, int(options.cpus_per_cell))))
            _check_feasible(options)
            self.slots = _slots(options)
            self.resources = {"num_cpus": options.cpus_per_cell, "num_gpus": options.gpus_per_cell,
                              "max_retries": options.retries, "retry_exceptions": True}
            names = sorted({*config.text, *config.vision})
            warm = ray.remote(warm_task).options(num_cpus=options.cpus_per_cell, num_gpus=options.gpus_per_cell)
            self.warming = [warm.remote(self.run_ref, names) for _ in range(self.slots)]
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        import ray

        if self.started:
            ray.shutdown()
            self.started = False
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def run(self, work: list[Work], encoders: Encoders, emit: Callable[[dict[str, Any]], None],
            commit: Callable[..., None], fail: Callable[..., None], unavailable: Callable[[Cell, str], None],
            total: int) -> dict[str, Counter[str]]:
        """Run every pending task of `work`; `commit`/`fail`/`unavailable` (the runner's) record each result as
        it comes back; `encoders` are the driver's (built while planning). Returns the encoder passes and the
        items encoded on the workers."""
        import ray

        from jftzoo.bench.cells import tokens_needed
        from jftzoo.features import FeatureStore

        options, config, cache, run_ref, slots = self.options, self.config, self.cache, self.run_ref, self.slots
        todo = [item for item in work if item.pending]
        counted: dict[str, Counter[str]] = {"passes": Counter(), "encoded": Counter()}
        if not todo:
            return counted
        remote_encode = ray.remote(encode_task).options(**self.resources)
        remote_cell = ray.remote(cell_task).options(**self.resources)
        datasets: dict[int, Any] = {}  # id(dataset part) -> its object ref, put once
        for item in todo:
            datasets.setdefault(id(item.plan.ds), ray.put(item.plan.ds))
        # Frozen passes: what the local executor would encode, plan by plan, in its order, cut into slices at
        # batch boundaries so several workers share a pass and still make the same batches.
        lookup = FeatureStore(cache=cache, backend=config.train.get("frozen_backend", "pytorch"))
        passes: dict[tuple[str, str], list[Any]] = {}  # (dataset, encoder) -> its slices' tasks
        planned: dict[tuple[str, str], set[str]] = {}
        seen: set[tuple[int, str]] = set()
        for item in todo:
            if item.cell.mode != "frozen":
                continue
            needs = tokens_needed(item.plan.cells)
            for name in (item.cell.text, item.cell.vision):
                if name is None or (id(item.plan), name) in seen:
                    continue
                seen.add((id(item.plan), name))
                at = (item.plan.data, name)
                enc = encoders.get(name)
                tokens = needs.get(at, False)
                order = lookup.pending(enc, [r.item(enc.modality) for r in item.plan.ds.records], tokens,
                                       planned.setdefault(at, set()))
                if order:
                    counted["passes"][name] += 1
                size = _slice_size(len(order), slots, lookup.batch_size)
                passes.setdefault(at, []).extend(
                    remote_encode.remote(run_ref, item.cell, name, [x for _, x in order[i : i + size]], tokens)
                    for i in range(0, len(order), size))
        emit({"event": "executor", "executor": options.describe(), "encoder_passes": sum(counted["passes"].values()),
              "slices": sum(len(v) for v in passes.values())})
        running: dict[Any, tuple[Work, Task]] = {}
        for item in todo:
            deps = [ref for n in (item.cell.text, item.cell.vision) if n is not None and item.cell.mode == "frozen"
                    for ref in passes.get((item.plan.data, n), [])]
            for task in item.pending:
                ref = remote_cell.remote(run_ref, datasets[id(item.plan.ds)], item.cell, item.identity, task,
                                         item.plan.seed, *deps)
                running[ref] = (item, task)
        failed = finished = 0
        slices = {ref for refs in passes.values() for ref in refs}
        _progress(emit, len(running), slots, finished, failed, total)
        while running or slices:
            ready, _ = ray.wait([*running, *slices], num_returns=1)
            for ref in ready:
                if ref in slices:  # a slice of a frozen pass: count what it encoded (a failure reaches its cells)
                    slices.discard(ref)
                    with contextlib.suppress(ray.exceptions.RayError):
                        counted["encoded"].update(ray.get(ref).get("encoded", {}))
                    continue
                item, task = running.pop(ref)
                label = f"{task.fold}, seed {item.plan.seed}"
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failed += 1
                    fail(item.cell, f"{label}: the Ray task failed after {options.retries} "
                                    f"retr{'y' if options.retries == 1 else 'ies'}: {_reason(exc)}")
                    continue
                counted["encoded"].update(result.get("encoded", {}))  # a worker that could not read the cache
                if "outcome" in result:
                    finished += 1
                    commit(item, task, result["outcome"], options.describe())
                elif "unavailable" in result:
                    unavailable(item.cell, result["unavailable"])
                else:
                    failed += 1
                    fail(item.cell, result["failed"] if result["failed"].startswith(label)
                         else f"{label}: {result['failed']}")
            _progress(emit, len(running), slots, finished, failed, total)
        return counted


def _slice_size(n: int, slots: int, batch: int) -> int:
    """Items per slice of a frozen pass: a multiple of the batch size (the same batches as one pass), about one
    slice per task slot, at most 128 batches (a lost worker costs little, and progress shows)."""
    batches = -(-n // batch)
    return batch * max(1, min(128, -(-batches // slots)))


def _check_feasible(options: RayOptions) -> None:
    """A task no node can hold would wait forever (Ray queues it): say so before submitting anything."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for flag, key, want in (("--cpus-per-cell", "CPU", options.cpus_per_cell),
                            ("--gpus-per-cell", "GPU", options.gpus_per_cell)):
        most = max((n.get(key, 0.0) for n in nodes), default=0.0)
        if want > most:
            raise JftzooError(f"{flag} {want:g}: no node of the Ray cluster has that many ({key} per node: at most "
                              f"{most:g}); ask for fewer, or add nodes that have them")


def _slots(options: RayOptions) -> int:
    """How many tasks the cluster runs at once, from its CPUs (and GPUs, when tasks ask for them)."""
    import ray

    have = ray.cluster_resources()
    slots = int(have.get("CPU", 1) // max(options.cpus_per_cell, 1e-9))
    if options.gpus_per_cell:
        slots = min(slots, int(have.get("GPU", 0) // options.gpus_per_cell))
    return max(slots, 1)


def _progress(emit: Callable[[dict[str, Any]], None], left: int, slots: int, finished: int, failed: int,
              total: int) -> None:
    emit({"event": "cells", "running": min(left, slots), "queued": max(left - slots, 0), "finished": finished,
          "failed": failed, "tasks": total})


def _reason(exc: Exception) -> str:
    """The last line of a Ray error (the worker's exception, or why the worker died), without Ray's banner."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
