"""`jftzoo bench`: the grid run and its progress display."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from jftzoo.bench.baselines import KERNELS, RBF_MAX_TRAIN
from jftzoo.bench.grid import DEFAULT_DATA, DEFAULT_FUSIONS, DEFAULT_TEXT, DEFAULT_VISION, MODES
from jftzoo.cli.options import IMAGE_ROOT_OPTION, ON_BAD_OPTION, ON_MISSING_OPTION
from jftzoo.cli.tables import (
    DEFAULT_OUT,
    ENSEMBLE_OPTION,
    SELECT_ENSEMBLE_OPTION,
    consoles,
    derived_records,
    print_tables,
    store_rows,
    write_summary,
)
from jftzoo.cli.training_options import (
    parse_seeds,
    recipe_defaults,
    recipe_options,
    speed_fields,
    speed_options,
    split_commas,
)
from jftzoo.errors import UsageError

PLAN_ROWS = 20  # cells listed in the printed plan; the rest are summed in one line


def plan_lines(event: dict[str, Any]) -> list[str]:
    """The plan as lines: the totals, then each cell's tasks to run, stored and estimated time."""
    from jftzoo.bench.estimate import describe

    rows = event.get("rows", [])
    sources = sorted({s for r in rows for s in r["sources"]})
    how = {"measured": "finished runs of the same configuration", "similar": "runs of the same head and mode",
           "default": "reference rates of a 2-core CPU"}
    basis = "; ".join(how[s] for s in sources if s in how)
    lines = [f"plan: {event['tasks']} task(s) over {event['cells']} cell(s): {event['done']} already in the store, "
             f"{event['pending']} to run, {describe(event['estimate_s'])} of training"
             + (f" (estimated from {basis})" if basis else "")]
    for r in rows[:PLAN_ROWS]:
        todo = f"{r['pending']} to run, {describe(r['estimate_s'])}" if r["pending"] else "nothing to run"
        lines.append(f"  {r['cell']}: {todo}" + (f" ({r['done']} stored)" if r["done"] else ""))
    if len(rows) > PLAN_ROWS:
        rest = rows[PLAN_ROWS:]
        lines.append(f"  ... {len(rest)} more cell(s): {sum(r['pending'] for r in rest)} to run, "
                     f"{describe(sum(r['estimate_s'] for r in rest))}")
    return lines


class _BenchProgress:
    """Cells/folds with ETA, the current encoder pass and the current cell's epochs, on stderr: rich bars on a
    terminal; otherwise (a log, CI, nohup) one plain line per task start and finish and a heartbeat at least
    every `heartbeat_s` seconds naming the task, its epoch and the ETA. `log_json`: every event as a JSON line."""

    def __init__(self, enabled: bool, log_json: str | None = None, heartbeat_s: float = 30.0) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        _, err = consoles()
        self.tty = sys.stderr.isatty()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=err, transient=True,
                                 disable=not (enabled and self.tty))
        self.tasks = self.progress.add_task("cells x folds", total=None)
        self.encode = self.progress.add_task("encoder pass", total=None, visible=False)
        self.epochs = self.progress.add_task("epochs", total=None, visible=False)
        self.console = err
        self.enabled = enabled
        self.lines = enabled and not self.tty  # plain log lines instead of bars
        self.notes: set[str] = set()  # each note once per run
        self.log = open(log_json, "a", encoding="utf-8") if log_json else None  # noqa: SIM115 (closed in __exit__)
        self.heartbeat_s = heartbeat_s
        self.started = time.monotonic()
        self.state: dict[str, Any] = {"what": "reading the data and planning", "done": 0, "tasks": "?",
                                      "since": self.started}
        self._stop: Any = None

    def __enter__(self) -> _BenchProgress:
        self.progress.start()
        if self.lines:
            import threading

            self._stop = threading.Event()
            threading.Thread(target=self._beat, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()
        if self._stop is not None:
            self._stop.set()
        if self.log is not None:
            self.log.close()

    def _say(self, text: str) -> None:
        click.echo(f"[{time.strftime('%H:%M:%S')}] bench: {text}", err=True)

    def _eta(self) -> str:
        """The plan's estimate of what is left, scaled by how the finished tasks compared with their estimates."""
        st = self.state
        if "left_after" not in st:
            return "ETA unknown until the plan is made"
        ratio = st["actual_s"] / st["estimated_s"] if st["estimated_s"] > 0 else 1.0
        current = max(st["task_est"] * ratio - (time.monotonic() - st["task_start"]), 0.0) if st["running"] else 0.0
        from jftzoo.bench.estimate import describe

        return f"ETA {describe(st['left_after'] * ratio + current)}"

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            st = self.state
            self._say(f"busy with {st['what']} for {time.monotonic() - st['since']:.0f} s "
                      f"({st['done']}/{st['tasks']} tasks done; {self._eta()})")

    def __call__(self, event: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps({"time": time.time(), **event}, default=str) + "\n")
            self.log.flush()
        kind = event["event"]
        st = self.state
        if kind == "plan":
            st.update(tasks=event["tasks"], done=event["done"], left_after=event["estimate_s"], actual_s=0.0,
                      estimated_s=0.0, task_est=0.0, running=False)
            self.progress.update(self.tasks, total=event["tasks"], completed=event["done"])
            if self.enabled:
                for line in plan_lines(event):
                    if self.lines:
                        self._say(line)
                    else:
                        self.console.print(line, highlight=False)
        elif kind == "encode":
            self.progress.update(self.encode, visible=event["done"] < event["total"], completed=event["done"],
                                 total=event["total"], description=f"encoding with {event['encoder']}")
            if event["done"] == 0 or st["what"] != f"encoding with {event['encoder']}":
                st.update(what=f"encoding with {event['encoder']}", since=time.monotonic())
        elif kind == "task":
            label = f"{event['cell']} [{event['fold']}, seed {event['seed']}]"
            st.update(what=label, since=time.monotonic(), done=event["done"], tasks=event["tasks"])
            if "estimate_s" in event:
                st.update(task_est=event["estimate_s"], left_after=event["left_s"] - event["estimate_s"],
                          task_start=time.monotonic(), running=True)
            self.progress.update(self.tasks, completed=event["done"], description=label)
            self.progress.update(self.epochs, visible=False, completed=0)
            if self.lines:
                self._say(f"start {label} ({event['done'] + 1}/{event['tasks']})")
        elif kind == "epoch":
            self.progress.update(self.epochs, visible=True, completed=event["epoch"], total=event["max_epochs"],
                                 description=f"epoch {event['epoch']} val loss {event['val_loss']:.3f}")
            base = st["what"].split(" · epoch")[0]
            st["what"] = f"{base} · epoch {event['epoch']}/{event['max_epochs']}"
        elif kind == "record":
            st["done"] = event["done"]
            if st.get("running"):
                st["actual_s"] = st.get("actual_s", 0.0) + time.monotonic() - st["task_start"]
                st["estimated_s"] = st.get("estimated_s", 0.0) + st["task_est"]
                st["running"] = False
            self.progress.update(self.tasks, completed=event["done"])
            if self.lines:
                self._say(f"done {event['cell']} [{event['fold']}, seed {event['seed']}] AUC {event['auc']:.3f} "
                          f"in {time.monotonic() - st['since']:.0f} s ({event['done']}/{event['tasks']}; "
                          f"{self._eta()})")
            st.update(what="set-up of the next task", since=time.monotonic())
        elif kind == "executor" and self.enabled:
            line = (f"executor {event['executor']}: {event['encoder_passes']} frozen encoder pass(es) in "
                    f"{event['slices']} slice(s) first")
            self._say(line) if self.lines else self.console.print(line, highlight=False)
        elif kind == "cells":
            line = (f"{event['running']} running, {event['queued']} queued, {event['finished']} finished, "
                    f"{event['failed']} failed")
            st.update(what=f"Ray tasks: {line}", since=time.monotonic())
            self.progress.update(self.tasks, description=f"Ray: {line}")
            if self.lines:
                self._say(f"Ray tasks: {line} (of {event['tasks']} in the grid)")
        elif kind == "waiting":
            st.update(what=f"waiting for {event['holder']} to release the results folder", since=time.monotonic())
            self.console.print(f"waiting: the results folder is in use by {event['holder']} (--wait)",
                               highlight=False)
        elif kind == "note" and self.enabled and event["message"] not in self.notes:
            self.notes.add(event["message"])
            self.console.print(f"note: {event['message']}", highlight=False)
        elif kind in ("unavailable", "failed") and self.enabled:
            self.console.print(f"[yellow]Warning:[/yellow] {event['cell']}: {kind}: {event['reason']}",
                               markup=True, highlight=False)


@click.command("bench")
@click.option("--text", "texts", multiple=True, help=f"Text encoder(s); repeat or comma-separate. [{DEFAULT_TEXT}]")
@click.option("--vision", "visions", multiple=True, help=f"Vision encoder(s). [{DEFAULT_VISION}]")
@click.option("--fusion", "fusions", multiple=True,
              help=f"Fusion head(s) or baselines svm, clip. [{','.join(DEFAULT_FUSIONS)}]")
@click.option("--mode", "modes", multiple=True, help=f"{'|'.join(MODES)} (repeatable). [frozen]")
@click.option("--data", "datas", multiple=True, help=f"KIND:PATH dataset(s). [{DEFAULT_DATA}]")
@click.option("--protocol", type=click.Choice(["grid", "paper"]), default="grid", show_default=True,
              help="paper: the paper's Table 1 comparison (10-fold CV, AUC).")
@click.option("--folds", type=click.IntRange(min=2), help="Stratified k-fold CV. [5; 10 under --protocol paper]")
@click.option("--split", "split", help="A seeded train:val:test split instead of k-fold, e.g. 8:1:1.")
@click.option("--groups", type=click.Choice(["near-duplicates", "none"]), default="near-duplicates",
              show_default=True, help="Keep near-duplicate posts (same normalised text or image bytes) on one side "
              "of every split; none: the literature's random splits.")
@click.option("--split-file", "split_files", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Reuse a split manifest from `jftzoo data check --write-split` (matched to --data by checksum).")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds (split and training).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Most epochs per fit.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--top-k", type=click.IntRange(min=0), default=2, show_default=True,
              help="Layer groups per encoder that train in top-k mode.")
@click.option("--label-policy", type=click.Choice(["merge", "text", "image", "majority"]),
              help="MVSA label policy (readers that take one).")
@click.option("--limit", type=click.IntRange(min=2), help="A seeded stratified subsample of N records per dataset.")
@speed_options
@click.option("--random-init", is_flag=True,
              help="Build encoders whose weights are unavailable with random weights (labelled random); "
                   "encoders with weights keep them, unlike train/tune --random-init (every encoder random).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Results store folder (resumable; results.jsonl, summary.md, heatmap.png).")
@click.option("--no-cache", is_flag=True, help="Keep frozen embeddings in memory only (no $JFTZOO_CACHE_DIR).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows (no progress bars).")
@click.option("--lr-encoder", type=float, help="Encoder learning rate. [2e-5; the head's preset if it has one]")
@click.option("--lr-head", type=float, help="Head learning rate. [1e-3; the head's preset if it has one]")
@click.option("--svm-kernel", type=click.Choice(KERNELS), default="auto", show_default=True,
              help=f"The svm baseline: rbf (the paper's SVC), linear (LinearSVC), auto (rbf up to {RBF_MAX_TRAIN:,} "
                   "training records, docs/bench.md).")
@ENSEMBLE_OPTION
@SELECT_ENSEMBLE_OPTION
@ON_BAD_OPTION
@ON_MISSING_OPTION
@IMAGE_ROOT_OPTION
@click.option("--wait", is_flag=True, help="If another bench holds --out, wait for it to end instead of exiting 1.")
@click.option("--log-json", type=click.Path(dir_okay=False),
              help="Append every progress event (plan, task, epoch, record...) to this file as JSON lines.")
@click.option("--explain", "explain", is_flag=True,
              help="Add a 'text share' column: the text's share of the modality Shapley values on each test part "
                   "(docs/explain.md). Records finished without it show —.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: tasks one after another here; ray: tasks as Ray tasks on this machine's cores or a cluster "
                   "(pip install 'jftzoo[ray]'; docs/scale.md). This process writes the results either way.")
@click.option("--address", help="--executor ray: a running Ray cluster (e.g. auto, or HEAD:6379). [start Ray here]")
@click.option("--cpus-per-cell", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="--executor ray: CPUs each task asks for (and its torch threads).")
@click.option("--gpus-per-cell", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="--executor ray: GPUs each task asks for (fractions share a GPU).")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="--executor ray: times a crashed task is tried again before its cell is recorded as failed.")
@recipe_options
def bench_cmd(texts: Sequence[str], visions: Sequence[str], fusions: Sequence[str], modes: Sequence[str],
              datas: Sequence[str], protocol: str, folds: int | None, split: str | None, groups: str,
              split_files: Sequence[str], seeds: str, epochs: int,
              batch_size: int, top_k: int, label_policy: str | None, limit: int | None, workers: int | None,
              no_prefix_cache: bool, prefix_dtype: str, no_bucketing: bool, image_cache: bool, frozen_backend: str,
              random_init: bool,
              device: str, out: str, no_cache: bool, as_json: bool, lr_encoder: float | None, lr_head: float | None,
              svm_kernel: str,
              ensemble: bool, select_ensemble: int | None, on_bad: str, on_missing: str, image_root: str | None,
              wait: bool,
              log_json: str | None, explain: bool, executor: str, address: str | None, cpus_per_cell: float,
              gpus_per_cell: float, retries: int, recipe: dict[str, Any]) -> None:
    """Benchmark a grid of text encoders x vision encoders x fusion heads x modes x datasets.

    With no options: the demo dataset, minilm + efficientnet_lite0, the main heads frozen plus one top-k
    concat row (recipe `demo`: each encoder's top layer group fine-tuned through the prefix cache; left
    out once --fusion, --mode or a recipe is given), 5-fold CV (group-aware: near-duplicate posts never
    cross folds). The majority and unimodal baselines are always in the table. Finished (cell, fold,
    seed) records, their test predictions and the split manifests are kept in --out; running again
    skips finished work. Before training, the plan lists each cell's tasks and estimated time.

    Example: jftzoo bench --data mvsa-single:PATH --split 8:1:1 --seeds 0,1,2,3,4
    """
    from jftzoo.bench.grid import BenchConfig
    from jftzoo.bench.report import paper_methods

    if folds is not None and split is not None:
        raise UsageError("give either --folds K or --split RATIO, not both")
    ray_options = _executor(executor, address, cpus_per_cell, gpus_per_cell, retries)
    if gpus_per_cell and device == "cpu":
        raise UsageError("--gpus-per-cell reserves GPUs for tasks that would run on the CPU; add --device cuda")
    recipe, modes, top_k, epochs = recipe_defaults(recipe, modes, top_k, epochs)
    train = {**recipe, **{k: v for k, v in (("lr_encoder", lr_encoder), ("lr_head", lr_head)) if v is not None}}
    config = BenchConfig(
        data=split_commas(datas) or [DEFAULT_DATA], text=split_commas(texts) or [DEFAULT_TEXT],
        vision=split_commas(visions) or [DEFAULT_VISION], fusion=split_commas(fusions) or list(DEFAULT_FUSIONS),
        mode=split_commas(modes) or ["frozen"], folds=None if split else (folds or 5), split=split,
        seeds=parse_seeds(seeds), epochs=epochs, batch_size=batch_size, top_k=top_k, random_init=random_init,
        device=device, limit=limit, label_policy=label_policy, groups=groups, split_files=list(split_files),
        train={**train, **speed_fields(workers, no_prefix_cache, prefix_dtype, no_bucketing, image_cache,
                                               frozen_backend)}, explain=explain, on_bad=on_bad, on_missing=on_missing,
        image_root=image_root, svm_kernel=svm_kernel,
    )
    if protocol != "paper" and not fusions and not modes and not recipe:
        # The default grid shows what fine-tuning does, cheaply: one top-k row (the `demo` recipe) beside the
        # frozen heads and baselines (its own top-k unimodal rows: `--mode top-k --recipe demo`).
        from jftzoo.train.presets import recipe_preset

        demo = recipe_preset("demo")
        config.extra_cells = [("concat", demo.pop("mode"))]
        config.mode_train = {"top-k": demo}
    if protocol == "paper":
        if fusions or modes:
            raise UsageError("--protocol paper fixes the methods and modes; leave out --fusion and --mode")
        text = split_commas(texts) or ["distilbert"]
        vision = split_commas(visions) or ["resnet50"]
        if len(text) != 1 or len(vision) != 1:
            raise UsageError("--protocol paper takes one --text and one --vision (default distilbert, resnet50)")
        config.text, config.vision = text, vision
        config.fusion = [m[1] for m in paper_methods(text[0], vision[0])]
        config.mode = ["frozen", "joint"]  # svm is frozen by nature; every other method is fine-tuned
        config.folds = None if split else (folds or 10)
    _run_and_show(config, protocol, Path(out), no_cache, as_json, ensemble, log_json, wait, ray_options,
                  select_ensemble)


def _executor(executor: str, address: str | None, cpus_per_cell: float, gpus_per_cell: float, retries: int) -> Any:
    """RayOptions for `--executor ray` (None: local), checked before any work: Ray's options need it, and it
    needs Ray installed (exit 2 naming the extra)."""
    if executor == "local":
        given = [flag for flag, value, default in (("--address", address, None), ("--cpus-per-cell", cpus_per_cell,
                 1.0), ("--gpus-per-cell", gpus_per_cell, 0.0), ("--retries", retries, 1)) if value != default]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to --executor ray")
        return None
    from jftzoo.bench.ray_executor import RayOptions, require_ray

    require_ray()
    return RayOptions(address=address, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell, retries=retries)


def _run_and_show(config: Any, protocol: str, out: Path, no_cache: bool, as_json: bool, ensemble: bool = False,
                  log_json: str | None = None, wait: bool = False, executor: Any = None,
                  select_ensemble: int | None = None) -> None:
    from jftzoo.bench.grid import expand
    from jftzoo.bench.report import paper_markdown, paper_methods, paper_table, summarize, to_json
    from jftzoo.bench.runner import run_bench
    from jftzoo.cache_layouts import embedding_cache

    cells = expand(config)  # names checked (exit 2) before any model loads
    if protocol == "paper":  # only the paper's method/mode pairs
        wanted = {(f, m) for _, f, _, _, m in paper_methods(config.text[0], config.vision[0])}
        cells = [c for c in cells if (c.fusion, c.mode) in wanted]
    _, stderr = consoles()
    heartbeat = float(os.environ.get("JFTZOO_HEARTBEAT_S", "30"))  # seconds between "still running" log lines
    from jftzoo.cli.app import interruptible

    def kept() -> str:
        from jftzoo.bench.store import ResultStore

        n = len(ResultStore(out).records())
        return (f"{n} finished record(s) are kept whole in {out / 'results.jsonl'}; the task that was running is "
                "dropped. Run the same command again to resume: finished tasks are skipped.")

    with interruptible(kept), _BenchProgress(not as_json, log_json, heartbeat) as progress:
        report = run_bench(config, out, progress=progress, cache=None if no_cache else embedding_cache(),
                           cells=cells, wait=wait, executor=executor)
    from jftzoo.atomic import atomic_write

    with interruptible(kept):  # the tables and figure come from the records: the same command writes them again
        records = report.records + derived_records(report.records, out, ensemble, select_ensemble)
        rows = summarize(records, report.cells, report.unavailable, report.failed)
        png = write_summary(out, store_rows(out, records, report))
        table = None
        if protocol == "paper":
            table = paper_table(rows, config.text[0], config.vision[0], list(config.data))
            atomic_write(out / "table1.md", paper_markdown(table).encode("utf-8"))
    if as_json:
        click.echo(to_json(rows))
    else:
        if table is not None:
            _print_paper(table)
        else:
            print_tables(rows)
    for data, problems in report.bad_records.items():
        shown = "; ".join(str(p) for p in problems[:10]) + (f"; ... {len(problems) - 10} more" if len(problems) > 10
                                                             else "")
        stderr.print(f"{len(problems)} bad record(s) of {data} left out (--on-bad skip): {shown}. All listed in "
                     f"{report.bad_records_file}", highlight=False)
    passes = ", ".join(f"{k} {v}" for k, v in sorted(report.encoder_passes.items())) or "none"
    stderr.print(
        f"{report.new_records} new record(s), {report.skipped_records} already in {out / 'results.jsonl'}; "
        f"encoder passes: {passes}; {report.wall_s:.1f} s"
        + (f"; heatmap {png}" if png else "")
        + (f"; {sum(report.cache_corrupt.values())} corrupt cache entries recomputed" if report.cache_corrupt else ""),
        highlight=False,
    )
    for cell, why in report.unavailable.items():
        stderr.print(f"[yellow]Unavailable:[/yellow] {cell.label()}: {why} (or pass --random-init)", markup=True,
                     highlight=False)
    for cell, why in report.failed.items():
        stderr.print(f"[red]Failed:[/red] {cell.label()}: {why}", markup=True, highlight=False)
    if report.failed or not report.records:
        raise SystemExit(1)


def _print_paper(table: list[list[str]]) -> None:
    from rich.table import Table

    from jftzoo.bench.report import PAPER_NOTES

    out, _ = consoles()
    header, *body = table
    t = Table(title="Table 1 (AUC, mean ± std over folds)", title_justify="left")
    t.add_column(header[0])
    for name in header[1:]:
        t.add_column(name, justify="right")
    for row in body:
        t.add_row(*row)
    out.print(t)
    for note in PAPER_NOTES:
        out.print(note, highlight=False)


def register(cli: click.Group) -> None:
    cli.add_command(bench_cmd)
