"""What `bench` and `results` both print: the rows table (rich), and the consoles and options they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

DEFAULT_OUT = "jftzoo-bench"
ENSEMBLE_OPTION = click.option("--ensemble", is_flag=True, help="Add ensemble(a+b+...) rows: the fusion heads' test "
                               "probabilities averaged per record on each split (from stored predictions).")
SELECT_ENSEMBLE_OPTION = click.option(
    "--select-ensemble", "select_ensemble", type=click.IntRange(min=1), default=None, metavar="N",
    help="Add the ensemble that validation picks: of every subset of up to N rows scored on the same splits "
         "(across modes and heads), the best mean validation accuracy; test is only reported.")


def consoles() -> tuple[Any, Any]:
    from jftzoo.cli.app import stderr_console, stdout_console

    return stdout_console(), stderr_console()


def rows_table(rows: list[dict[str, Any]], dataset: str) -> Any:
    from rich.table import Table

    from jftzoo.bench.report import TABLE_COLUMNS, best_in_columns, protocol_line, table_cells, table_columns

    best = best_in_columns(rows)
    table = Table(title=f"{dataset} — {protocol_line(rows)}", title_justify="left")
    columns = table_columns(rows)
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i >= 5 else "left")
    for i, r in enumerate(rows):
        cells = table_cells(r, best, i, lambda t: f"[bold green]{t}[/bold green]", len(columns) > len(TABLE_COLUMNS))
        if r["status"] != "ok":
            cells[2] = f"[yellow]{cells[2]}[/yellow]"
        table.add_row(*cells)
    return table


def print_tables(rows: list[dict[str, Any]]) -> None:
    from jftzoo.bench.report import NOTES, SHARE_NOTE

    out, _ = consoles()
    from jftzoo.bench.report import table_parts

    for _, part in table_parts(rows):  # its title line names the protocol
        out.print(rows_table(part, part[0]["dataset"]))
    for note in NOTES:
        out.print(note, highlight=False)
    if any(r.get("text_share") is not None for r in rows):
        out.print(SHARE_NOTE, highlight=False)
    if any(r["weights"] == "random" for r in rows):
        out.print("(random) = built with random weights (--random-init): exercises the grid, not a result.")
    if any(r.get("outdated") for r in rows):
        out.print("(jftzoo X) = made by an older jftzoo version: not comparable, never picked as best.",
                  highlight=False)


def derived_records(records: list[dict[str, Any]], results: Path, ensemble: bool,
                    select_ensemble: int | None) -> list[dict[str, Any]]:
    """The opt-in derived rows: heads' ensembles (`--ensemble`), validation's pick (`--select-ensemble`)."""
    from jftzoo.bench.ensemble import ensemble_records
    from jftzoo.bench.ensemble_select import select_ensembles

    derived = ensemble_records(records, results) if ensemble else []
    if select_ensemble:
        _, err = consoles()
        choices = select_ensembles(records, results, select_ensemble)
        for choice in choices:
            err.print(choice.describe() + (f"; left out (not on all {len(choice.units)} splits, or outdated): "
                                           f"{', '.join(choice.left_out)}" if choice.left_out else ""),
                      highlight=False)
            derived += choice.records
        if not choices:
            err.print("--select-ensemble: no two rows of one dataset and protocol were scored on the same splits "
                      "(with validation predictions): nothing to pick from", highlight=False)
    return derived


def store_rows(folder: Path, records: list[dict[str, Any]], report: Any) -> list[dict[str, Any]]:
    """The rows of every configuration the store holds: this grid's `records` (its ensembles included) and
    those other commands left there (a store often holds one command's grid per head or recipe), so the
    store's summary.md and heatmap.png describe the store, as after `results merge`, while the terminal
    shows this grid's table."""
    from jftzoo.bench.report import summarize
    from jftzoo.bench.store import ResultStore

    mine = {r.get("key") for r in records}
    others = [r for r in ResultStore(folder).records() if r.get("key") not in mine]
    return summarize(others + records, report.cells, report.unavailable, report.failed)


def write_summary(folder: Path, rows: list[dict[str, Any]]) -> Path | None:
    """The store's summary.md and heatmap.png for `rows`; the PNG's path (None when no row has an AUC)."""
    from jftzoo.atomic import atomic_write
    from jftzoo.bench.plot import heatmap
    from jftzoo.bench.report import to_markdown

    atomic_write(folder / "summary.md", to_markdown(rows).encode("utf-8"))
    return heatmap(rows, folder / "heatmap.png")
