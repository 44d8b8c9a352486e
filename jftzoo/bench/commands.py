"""`jftzoo bench`, `jftzoo cache info|clear` and `jftzoo results show|export` (rich lives here)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from jftzoo.bench.grid import DEFAULT_DATA, DEFAULT_FUSIONS, DEFAULT_TEXT, DEFAULT_VISION, MODES
from jftzoo.errors import JftzooError, UsageError

DEFAULT_OUT = "jftzoo-bench"


def _split_commas(values: Sequence[str]) -> list[str]:
    """`--fusion concat,gated --fusion late` -> ['concat', 'gated', 'late']."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise UsageError(f"--seeds takes comma-separated integers such as 0,1,2, got {text!r}") from exc


def _consoles() -> tuple[Any, Any]:
    from jftzoo.cli import _stderr, _stdout

    return _stdout(), _stderr()


class _BenchProgress:
    """Cells/folds with ETA, the current encoder pass and the current cell's epochs, on stderr."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        _, err = _consoles()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=err, transient=True,
                                 disable=not (enabled and sys.stderr.isatty()))
        self.tasks = self.progress.add_task("cells x folds", total=None)
        self.encode = self.progress.add_task("encoder pass", total=None, visible=False)
        self.epochs = self.progress.add_task("epochs", total=None, visible=False)
        self.console = err
        self.enabled = enabled

    def __enter__(self) -> _BenchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "plan":
            self.progress.update(self.tasks, total=event["tasks"])
        elif kind == "encode":
            self.progress.update(self.encode, visible=event["done"] < event["total"], completed=event["done"],
                                 total=event["total"], description=f"encoding with {event['encoder']}")
        elif kind == "task":
            self.progress.update(self.tasks, completed=event["done"],
                                 description=f"{event['cell']} [{event['fold']}, seed {event['seed']}]")
            self.progress.update(self.epochs, visible=False, completed=0)
        elif kind == "epoch":
            self.progress.update(self.epochs, visible=True, completed=event["epoch"], total=event["max_epochs"],
                                 description=f"epoch {event['epoch']} val loss {event['val_loss']:.3f}")
        elif kind == "record":
            self.progress.update(self.tasks, completed=event["done"])
        elif kind in ("unavailable", "failed") and self.enabled:
            self.console.print(f"[yellow]Warning:[/yellow] {event['cell']}: {kind}: {event['reason']}",
                               markup=True, highlight=False)


def _table(rows: list[dict[str, Any]], dataset: str) -> Any:
    from rich.table import Table

    from jftzoo.bench.report import METRICS, best_in_columns, encoder_label, fmt_mean_std, fmt_seconds

    best = best_in_columns(rows)
    table = Table(title=f"{dataset}", title_justify="left")
    for name in ("text", "vision", "fusion", "mode"):
        table.add_column(name)
    for name in ("AUC", "accuracy", "macro-F1", "weighted-F1"):
        table.add_column(name, justify="right")
    table.add_column("folds", justify="right")
    table.add_column("cost", justify="right")
    for r in rows:
        cells = []
        for m in METRICS:
            text = fmt_mean_std(r, m)
            is_best = r.get(f"{m}_mean") is not None and r[f"{m}_mean"] == best.get(m)
            cells.append(f"[bold green]{text}[/bold green]" if is_best else text)
        fusion = r["fusion"] if r["status"] == "ok" else f"{r['fusion']} [yellow]({r['status']})[/yellow]"
        text = encoder_label(r["text"], r.get("text_weights"))
        vision = encoder_label(r["vision"], r.get("vision_weights"))
        table.add_row(text, vision, fusion, r["mode"], *cells, str(r["folds"]), fmt_seconds(r["wall_s"]))
    return table


def _print_tables(rows: list[dict[str, Any]]) -> None:
    out, _ = _consoles()
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        out.print(_table([r for r in rows if r["dataset"] == dataset], dataset))
    if any(r["weights"] == "random" for r in rows):
        out.print("(random) = built with random weights (--random-init): exercises the grid, not a result.")


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
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds (split and training).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Most epochs per fit.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--top-k", type=click.IntRange(min=0), default=2, show_default=True,
              help="Layer groups per encoder that train in top-k mode.")
@click.option("--label-policy", type=click.Choice(["merge", "text", "image", "majority"]),
              help="MVSA label policy (readers that take one).")
@click.option("--limit", type=click.IntRange(min=2), help="A seeded stratified subsample of N records per dataset.")
@click.option("--random-init", is_flag=True,
              help="Build encoders whose weights are unavailable with random weights (labelled random).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Results store folder (resumable; results.jsonl, summary.md, heatmap.png).")
@click.option("--no-cache", is_flag=True, help="Keep frozen embeddings in memory only (no $JFTZOO_CACHE_DIR).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows (no progress bars).")
def bench_cmd(texts: Sequence[str], visions: Sequence[str], fusions: Sequence[str], modes: Sequence[str],
              datas: Sequence[str], protocol: str, folds: int | None, split: str | None, seeds: str, epochs: int,
              batch_size: int, top_k: int, label_policy: str | None, limit: int | None, random_init: bool,
              device: str, out: str, no_cache: bool, as_json: bool) -> None:
    """Benchmark a grid of text encoders x vision encoders x fusion heads x modes x datasets.

    With no options: the demo dataset, minilm + efficientnet_lite0, the main heads frozen, 5-fold CV.
    Finished (cell, fold, seed) records are kept in --out; running again skips them.
    """
    from jftzoo.bench.grid import BenchConfig
    from jftzoo.bench.report import paper_methods

    if folds is not None and split is not None:
        raise UsageError("give either --folds K or --split RATIO, not both")
    config = BenchConfig(
        data=_split_commas(datas) or [DEFAULT_DATA], text=_split_commas(texts) or [DEFAULT_TEXT],
        vision=_split_commas(visions) or [DEFAULT_VISION], fusion=_split_commas(fusions) or list(DEFAULT_FUSIONS),
        mode=_split_commas(modes) or ["frozen"], folds=None if split else (folds or 5), split=split,
        seeds=_seeds(seeds), epochs=epochs, batch_size=batch_size, top_k=top_k, random_init=random_init,
        device=device, limit=limit, label_policy=label_policy,
    )
    if protocol == "paper":
        if fusions or modes:
            raise UsageError("--protocol paper fixes the methods and modes; leave out --fusion and --mode")
        text = _split_commas(texts) or ["distilbert"]
        vision = _split_commas(visions) or ["resnet50"]
        if len(text) != 1 or len(vision) != 1:
            raise UsageError("--protocol paper takes one --text and one --vision (default distilbert, resnet50)")
        config.text, config.vision = text, vision
        config.fusion = [m[1] for m in paper_methods(text[0], vision[0])]
        config.mode = ["frozen", "joint"]  # svm is frozen by nature; every other method is fine-tuned
        config.folds = None if split else (folds or 10)
    _run_and_show(config, protocol, Path(out), no_cache, as_json)


def _run_and_show(config: Any, protocol: str, out: Path, no_cache: bool, as_json: bool) -> None:
    from jftzoo.bench.grid import expand
    from jftzoo.bench.plot import heatmap
    from jftzoo.bench.report import paper_markdown, paper_methods, paper_table, summarize, to_json, to_markdown
    from jftzoo.bench.runner import run_bench
    from jftzoo.cache import DiskCache

    cells = expand(config)  # names checked (exit 2) before any model loads
    if protocol == "paper":  # only the paper's method/mode pairs
        wanted = {(f, m) for _, f, _, _, m in paper_methods(config.text[0], config.vision[0])}
        cells = [c for c in cells if (c.fusion, c.mode) in wanted]
    _, stderr = _consoles()
    with _BenchProgress(not as_json) as progress:
        report = run_bench(config, out, progress=progress, cache=None if no_cache else DiskCache(), cells=cells)
    rows = summarize(report.records, report.cells, report.unavailable, report.failed)
    (out / "summary.md").write_text(to_markdown(rows), encoding="utf-8")
    png = heatmap(rows, out / "heatmap.png")
    table = None
    if protocol == "paper":
        table = paper_table(rows, config.text[0], config.vision[0], list(config.data))
        (out / "table1.md").write_text(paper_markdown(table), encoding="utf-8")
    if as_json:
        click.echo(to_json(rows))
    else:
        if table is not None:
            _print_paper(table)
        else:
            _print_tables(rows)
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

    out, _ = _consoles()
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


@click.group("cache", context_settings={"help_option_names": ["-h", "--help"]})
def cache_group() -> None:
    """The embedding cache of frozen encoders ($JFTZOO_CACHE_DIR, default: the user cache folder)."""


@cache_group.command("info")
@click.option("--json", "as_json", is_flag=True)
def cache_info_cmd(as_json: bool) -> None:
    """Where the cache is and what it holds, per encoder fingerprint."""
    from rich.table import Table

    from jftzoo.cache import DiskCache

    cache = DiskCache()
    items = cache.info()
    if as_json:
        click.echo(json.dumps({"path": str(cache.root), "namespaces": [
            {"encoder": i.encoder, "fingerprint": i.fingerprint, "entries": i.entries, "bytes": i.bytes}
            for i in items]}, indent=2))
        return
    out, _ = _consoles()
    out.print(f"cache: {cache.root}", highlight=False)
    table = Table("encoder", "fingerprint", "entries", "size")
    for i in items:
        table.add_row(i.encoder, i.fingerprint[:16], str(i.entries), f"{i.bytes / 2**20:.1f} MiB")
    out.print(table)
    total = sum(i.bytes for i in items)
    out.print(f"{sum(i.entries for i in items)} entries, {total / 2**20:.1f} MiB", highlight=False)


@cache_group.command("clear")
@click.option("--encoder", help="Only this encoder's entries.")
def cache_clear_cmd(encoder: str | None) -> None:
    """Delete cached embeddings (they are recomputed when next needed)."""
    from jftzoo.cache import DiskCache

    entries, size = DiskCache().clear(encoder)
    _, err = _consoles()
    err.print(f"removed {entries} entries ({size / 2**20:.1f} MiB)", highlight=False)


@click.group("results", context_settings={"help_option_names": ["-h", "--help"]})
def results_group() -> None:
    """Show or export a benchmark results store."""


def _load_rows(results: Path) -> list[dict[str, Any]]:
    from jftzoo.bench.report import summarize
    from jftzoo.bench.store import FILENAME, ResultStore

    store = ResultStore(results)
    if not store.path.exists():
        raise UsageError(f"no results store at {store.path}: run `jftzoo bench --out {results}` first, "
                         f"or point --results at a folder holding {FILENAME}")
    records = store.records()
    if not records:
        raise JftzooError(f"{store.path} holds no finished record yet")
    return summarize(records)


@results_group.command("show")
@click.option("--results", "results", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def results_show_cmd(results: str, as_json: bool) -> None:
    """One row per cell: mean ± std over folds and seeds."""
    from jftzoo.bench.report import to_json

    rows = _load_rows(Path(results))
    if as_json:
        click.echo(to_json(rows))
    else:
        _print_tables(rows)


@results_group.command("export")
@click.option("--results", "results", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "md"]), multiple=True, default=["csv"],
              show_default=True, help="Repeatable.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
def results_export_cmd(results: str, fmt: Sequence[str], out: str) -> None:
    """Write results.csv / results.json / results.md (and heatmap.png) into --out."""
    from jftzoo.bench.plot import heatmap
    from jftzoo.bench.report import to_csv, to_json, to_markdown

    rows = _load_rows(Path(results))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    writers = {"csv": to_csv, "json": to_json, "md": to_markdown}
    written = []
    for f in dict.fromkeys(fmt):
        path = folder / f"results.{f}"
        path.write_text(writers[f](rows) + ("" if f != "json" else "\n"), encoding="utf-8")
        written.append(str(path))
    png = heatmap(rows, folder / "heatmap.png")
    if png:
        written.append(str(png))
    _, err = _consoles()
    err.print("wrote " + ", ".join(written), highlight=False)


def register(cli: click.Group) -> None:
    cli.add_command(bench_cmd)
    cli.add_command(cache_group)
    cli.add_command(results_group)
