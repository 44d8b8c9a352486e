"""`jftzoo results show|export|predictions|compare|merge|migrate`: reading, joining and re-keying a results store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from jftzoo.cli.tables import (
    DEFAULT_OUT,
    ENSEMBLE_OPTION,
    SELECT_ENSEMBLE_OPTION,
    consoles,
    derived_records,
    print_tables,
    write_summary,
)
from jftzoo.errors import JftzooError, UsageError
from jftzoo.train.metrics import SCORES


@click.group("results", context_settings={"help_option_names": ["-h", "--help"]})
def results_group() -> None:
    """Show or export a benchmark results store.

    Example: jftzoo results show --results jftzoo-bench
    """


def _load_records(results: Path) -> list[dict[str, Any]]:
    from jftzoo.bench.store import FILENAME, ResultStore

    store = ResultStore(results)
    if not store.path.exists():
        raise UsageError(f"no results store at {store.path}: run `jftzoo bench --out {results}` first, "
                         f"or point --results at a folder holding {FILENAME}")
    records = store.records()
    if not records:
        raise JftzooError(f"{store.path} holds no finished record yet")
    return records


def _load_rows(results: Path, ensemble: bool = False, select_ensemble: int | None = None) -> list[dict[str, Any]]:
    from jftzoo.bench.report import summarize

    records = _load_records(results)
    return summarize(records + derived_records(records, results, ensemble, select_ensemble))


RESULTS_OPTION = click.option("--results", "results", default=DEFAULT_OUT, show_default=True,
                              type=click.Path(file_okay=False), help="The results store folder of `jftzoo bench`.")


@results_group.command("show")
@RESULTS_OPTION
@ENSEMBLE_OPTION
@SELECT_ENSEMBLE_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="JSON rows: {metric}_mean, {metric}_std, {metric}_ci95 [low, high], val_{metric}_..., n_splits.")
def results_show_cmd(results: str, as_json: bool, ensemble: bool, select_ensemble: int | None) -> None:
    """One row per configuration: mean, sd and 95 % CI over splits (seeds x folds).

    Example: jftzoo results show --results benchmarks/results/mvsa_single_frozen
    """
    from jftzoo.bench.report import to_json

    rows = _load_rows(Path(results), ensemble, select_ensemble)
    if as_json:
        click.echo(to_json(rows))
    else:
        print_tables(rows)


@results_group.command("export")
@RESULTS_OPTION
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "md"]), multiple=True, default=["csv"],
              show_default=True, help="Repeatable.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@ENSEMBLE_OPTION
@SELECT_ENSEMBLE_OPTION
def results_export_cmd(results: str, fmt: Sequence[str], out: str, ensemble: bool,
                       select_ensemble: int | None) -> None:
    """Write results.csv / results.json / results.md (and heatmap.png) into --out.

    Example: jftzoo results export --format md --format json --out report/
    """
    from jftzoo.bench.plot import heatmap
    from jftzoo.bench.report import to_csv, to_json, to_markdown

    rows = _load_rows(Path(results), ensemble, select_ensemble)
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
    _, err = consoles()
    err.print("wrote " + ", ".join(written), highlight=False)


@results_group.command("predictions")
@RESULTS_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON list instead of one JSON object per line.")
def results_predictions_cmd(results: str, as_json: bool) -> None:
    """Every record's stored test predictions, so any metric can be recomputed.

    One object per record: key, config_hash, dataset, seed, fold, labels (class order), ids, true
    (true labels), probs (one row per id, in `labels` order) and the record's test accuracy.

    Example: jftzoo results predictions --results jftzoo-bench | head -1
    """
    from jftzoo.bench.predictions import read_predictions

    folder = Path(results)
    objects = []
    for record in _load_records(folder):
        p = read_predictions(folder, record)
        obj = {"key": record["key"], "config_hash": record.get("config_hash"), "dataset": record["dataset"],
               "text": record.get("text"), "vision": record.get("vision"), "fusion": record["fusion"],
               "mode": record["mode"], "seed": record["seed"], "fold": record["fold"], "labels": p.labels,
               "ids": p.ids, "true": [p.labels[i] for i in p.true], "probs": [[round(float(x), 6) for x in row]
                                                                          for row in p.probs],
               "accuracy": record["metrics"]["accuracy"]}
        if as_json:
            objects.append(obj)
        else:
            click.echo(json.dumps(obj))
    if as_json:
        click.echo(json.dumps(objects, indent=1))


@results_group.command("compare")
@RESULTS_OPTION
@click.option("--a", "sel_a", required=True, metavar="KEY=VALUE[,KEY=VALUE]",
              help="Row A: row fields or training fields, e.g. fusion=concat,average_top=3.")
@click.option("--b", "sel_b", required=True, metavar="KEY=VALUE[,KEY=VALUE]", help="Row B, e.g. fusion=text-only.")
@click.option("--metric", type=click.Choice(SCORES), default="accuracy",
              show_default=True, help="auc: macro one-vs-rest ROC AUC (binary: ROC AUC).")
@click.option("--resamples", type=click.IntRange(min=99), default=1000, show_default=True,
              help="Bootstrap resamples and permutations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the resampling.")
@click.option("--part", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="The records paired: test (to report a difference) or val (to choose between two "
                   "configurations without reading a test record).")
@click.option("--shared-splits", is_flag=True,
              help="Pair on the splits both rows have (e.g. a row whose seeds are still running); the others are "
                   "left out and counted.")
@ENSEMBLE_OPTION
@SELECT_ENSEMBLE_OPTION
@click.option("--json", "as_json", is_flag=True)
def results_compare_cmd(results: str, sel_a: str, sel_b: str, metric: str, resamples: int, seed: int, part: str,
                        shared_splits: bool, ensemble: bool, select_ensemble: int | None, as_json: bool) -> None:
    """Paired difference A - B on the same test records and splits: diff, 95 % CI (paired bootstrap
    over records within splits) and p-value (paired permutation test). Rows run on different splits
    are refused unless `--shared-splits` pairs them on the splits both have. `--part val` pairs their
    validation records instead, to choose between them.

    Example: jftzoo results compare --a fusion=concat --b fusion=text-only --metric auc

    Example: jftzoo results compare --select-ensemble 3 --a mode=frozen+top-k --b fusion=concat,mode=frozen
    """
    from jftzoo.bench.compare import paired_compare, parse_selector, select_row
    from jftzoo.bench.report import summarize

    folder = Path(results)
    records = _load_records(folder)
    records += derived_records(records, folder, ensemble, select_ensemble)
    rows = summarize(records)
    row_a = select_row(rows, parse_selector(sel_a), "a")
    row_b = select_row(rows, parse_selector(sel_b), "b")

    def of(row: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in records if r.get("config_hash") == row["config_hash"]]

    records_a, records_b, left_a, left_b = of(row_a), of(row_b), 0, 0
    if shared_splits:
        from jftzoo.bench.compare import on_shared_splits

        records_a, records_b, left_a, left_b = on_shared_splits(records_a, records_b)
    result = paired_compare(folder, row_a, row_b, records_a, records_b, metric, resamples, seed, part)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "left_out_splits": {"a": left_a, "b": left_b}}, indent=2))
        return
    out, _ = consoles()
    from jftzoo.bench.compare import describe

    out.print(f"A: {describe(row_a)}\nB: {describe(row_b)}", highlight=False)
    out.print(f"{metric}: A {result.a_mean:.4f}, B {result.b_mean:.4f}; A - B = {result.diff:+.4f}, 95 % CI "
              f"[{result.ci95[0]:+.4f}, {result.ci95[1]:+.4f}], p = {result.p_value:.4f} "
              f"({result.n_pairs} paired {'validation' if part == 'val' else 'test'} records over "
              f"{result.n_splits} split(s), {resamples} resamples)"
              + (f"; left out, not on both rows: {left_a} split(s) of A, {left_b} of B" if left_a or left_b else ""),
              highlight=False)


@results_group.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--into", "into", required=True, type=click.Path(file_okay=False),
              help="The store to add them to (created if missing).")
@click.option("--wait", is_flag=True, help="If a bench is writing --into, wait for it to end instead of exiting 1.")
def results_merge_cmd(sources: Sequence[str], into: str, wait: bool) -> None:
    """Add the records of other results stores (another machine's, another --out's) to --into.

    Records keep their keys and say where they were made (device, machine, versions); their predictions
    and split manifests come with them, checked first. Records --into already holds are skipped, so
    merging again adds nothing.

    Example: jftzoo results merge gpu-run/ --into benchmarks/results/mvsa_single
    """
    from jftzoo.bench.merge import merge_store

    _, err = consoles()
    merged = 0
    for source in sources:
        report = merge_store(source, into, wait=wait,
                             on_wait=lambda who: err.print(f"waiting for {who} to finish with {into}", highlight=False))
        err.print(f"{source}: merged {len(report.merged)} record(s) into {into} ({report.already} already there; "
                  f"{report.predictions} prediction file(s), {len(report.manifests)} split manifest(s) copied)",
                  highlight=False)
        merged += len(report.merged)
        if report.legacy:
            err.print(f"{report.legacy} of them were stored under an earlier key scheme (their keys name library "
                      f"versions, so a bench cannot resume them): jftzoo results migrate --results {into}",
                      highlight=False)
    if merged:  # the store's summary.md and heatmap.png described it before the merge: re-made from all its records
        written = _refresh_summary(Path(into))
        err.print("re-made " + ", ".join(written), highlight=False)
    err.print(f"see them: jftzoo results show --results {into}", highlight=False)


def _refresh_summary(folder: Path) -> list[str]:
    """Write the store's summary.md and heatmap.png from every record it holds (plain rows, no ensembles)."""
    png = write_summary(folder, _load_rows(folder))
    return [str(folder / "summary.md")] + ([str(png)] if png else [])


@results_group.command("migrate")
@RESULTS_OPTION
@click.option("--environment", "environments", multiple=True, metavar="LIB=VERSION[,LIB=VERSION]",
              help="Library versions of another machine that made records (e.g. a GPU's "
                   "torch=2.11.0,tokenizers=0.23.2,Pillow=12.3.0); repeatable. This machine's and each record's "
                   "own are always tried.")
@click.option("--dry-run", is_flag=True, help="Check and report; change nothing.")
@click.option("--wait", is_flag=True, help="If a bench is writing the store, wait for it to end instead of exiting 1.")
def results_migrate_cmd(results: str, environments: Sequence[str], dry_run: bool, wait: bool) -> None:
    """Re-key records stored before key scheme 2, so another machine's seeds resume and join their row.

    Earlier records named their encoders' library versions in their keys: a GPU machine's seeds of a
    configuration became a row of their own, and a bench there could not resume a CPU run's store. A record
    is re-keyed only when its key rebuilds from its fields and its encoder fingerprints are this machine's
    encoders under some library versions; any other is left as it was and listed (exit 1).

    Example: jftzoo results migrate --results benchmarks/results/mvsa_single --environment torch=2.11.0
    """
    from jftzoo.bench.migrate import SUPERSEDED, migrate_store, parse_environment

    _, err = consoles()
    envs = [parse_environment(e) for e in environments]
    report = migrate_store(results, envs, dry_run=dry_run, wait=wait)
    verb = "would re-key" if dry_run else "re-keyed"
    err.print(f"{results}: {verb} {report.migrated} record(s), {report.current} already current"
              + (f", {len(report.superseded)} stored twice (the later {'would move' if dry_run else 'moved'} to "
                 f"{SUPERSEDED})" if report.superseded else ""), highlight=False)
    seen = {json.dumps(v, sort_keys=True) for v in report.environments.values() if v}
    for env in sorted(seen):
        err.print(f"  made under {', '.join(f'{k} {v}' for k, v in json.loads(env).items())}", highlight=False)
    for key, why in report.unverified:
        err.print(f"  left as it was: record {key[:12]}: {why}", highlight=False)
    if report.unverified:
        raise JftzooError(f"{len(report.unverified)} record(s) could not be checked and keep their old keys "
                          "(listed above); they still show, as rows of their own")


def register(cli: click.Group) -> None:
    cli.add_command(results_group)
