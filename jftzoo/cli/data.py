"""`jftzoo datasets` and `jftzoo data check`: what data jftzoo reads and what is wrong with it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click
from rich.table import Table

from jftzoo.cli.app import CONTEXT, cli, stderr_console, stdout_console
from jftzoo.cli.options import IMAGE_ROOT_OPTION, ON_BAD_OPTION, ON_MISSING_OPTION
from jftzoo.errors import UsageError
from jftzoo.train.config import as_option


@cli.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def datasets_cmd(as_json: bool) -> None:
    """List the dataset kinds that --data KIND:PATH accepts.

    Example: jftzoo datasets --json
    """
    from jftzoo.datasets.registry import dataset_specs

    rows = [
        {"name": s.name, "labels": list(s.labels) if s.labels else None, "needs_path": s.needs_path,
         "options": list(s.options), "license": s.license, "description": s.description, "provider": s.provider,
         "train_defaults": dict(s.train_defaults)}
        for s in dataset_specs().values()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} dataset kinds", title_justify="left")
    for col in ("name", "labels", "usage", "description"):
        table.add_column(col)
    for r in rows:
        usage = f"--data {r['name']}:PATH" if r["needs_path"] else f"--data {r['name']}"
        if r["train_defaults"]:  # what training on it sets unless told otherwise (docs/datasets.md)
            usage += "\ntrains with " + " ".join(as_option(k, v) for k, v in r["train_defaults"].items())
        table.add_row(r["name"], ", ".join(r["labels"]) if r["labels"] else "from the data", usage, r["description"])
    stdout_console().print(table)


@cli.group("data", context_settings=CONTEXT)
def data_group() -> None:
    """Inspect datasets before training on them.

    Example: jftzoo data check --data mvsa-single:PATH
    """


@data_group.command("check")
@IMAGE_ROOT_OPTION
@click.option("--data", "data", required=True, help="KIND:PATH, e.g. mvsa-single:../shared/data/mvsa_single.")
@click.option("--label-policy", type=click.Choice(["merge", "text", "image", "majority"]),
              help="MVSA: how annotator labels become one label (default merge).")
@click.option("--balance", type=click.IntRange(min=1), help="MVSA: seeded subsample of N records per class.")
@click.option("--seed", type=int, default=0, show_default=True)
@ON_BAD_OPTION
@ON_MISSING_OPTION
@click.option("--folds", type=click.IntRange(min=2), default=10, show_default=True,
              help="Check every class has at least this many members for k-fold CV.")
@click.option("--write-split", type=click.Path(dir_okay=False), help="Also write a split manifest (JSON) here.")
@click.option("--split", "split_kind", default="kfold", show_default=True,
              help="For --write-split: 'kfold', a ratio like 8:1:1, or 'official'.")
@click.option("--groups", type=click.Choice(["near-duplicates", "none"]), default="near-duplicates",
              show_default=True, help="For --write-split: keep near-duplicate posts on one side; none: random split.")
@click.option("--field", "fields", multiple=True, metavar="NAME=COLUMN",
              help="csv/jsonl: which column holds id, text, image or label (e.g. --field text=tweet).")
@click.option("--json", "as_json", is_flag=True)
def data_check_cmd(image_root: str | None,
                   data: str, label_policy: str | None, balance: int | None, seed: int, on_bad: str, on_missing: str,
                   folds: int,
                   write_split: str | None, split_kind: str, groups: str, fields: Sequence[str],
                   as_json: bool) -> None:
    """Read a dataset, print counts per class, near-duplicate groups and every problem found; trains nothing.

    Example: jftzoo data check --data mvsa-single:../shared/data/mvsa_single --write-split split.json --split 8:1:1
    """
    from jftzoo.datasets import splits
    from jftzoo.datasets.groups import duplicate_groups
    from jftzoo.datasets.records import BadDataError
    from jftzoo.datasets.registry import load_dataset

    options: dict[str, object] = {"label_policy": label_policy, "balance": balance, "seed": seed if balance else None,
                                  "image_root": image_root}
    for item in fields:
        key, sep, column = item.partition("=")
        if not sep or key not in ("id", "text", "image", "label") or not column:
            raise UsageError(f"--field {item!r}: expected NAME=COLUMN with NAME one of id, text, image, label")
        options[f"{key}_field"] = column
    try:
        ds = load_dataset(data, on_bad=on_bad, on_missing=on_missing, **options)
    except BadDataError as exc:
        if as_json:
            click.echo(json.dumps({"data": data, "ok": False, "problems": [vars(p) for p in exc.problems]}, indent=2))
            raise SystemExit(1) from exc
        raise
    fold_error = None
    try:
        splits.check_min_class(ds, folds)
    except UsageError as exc:
        fold_error = str(exc)
    dups = duplicate_groups(ds.records)
    largest = dups.members()
    written = digest = None
    if write_split:
        grouping = dups if groups == "near-duplicates" else None
        if split_kind == "kfold":
            split = splits.stratified_kfold(ds, folds, seed, grouping)
        elif split_kind == "official":
            split = splits.official_split(ds, grouping)
        else:
            split = splits.ratio_split(ds, split_kind, seed, grouping)
        digest = splits.write_split(split, Path(write_split))
        written = write_split
    report = {
        "data": data, "ok": fold_error is None, "records": len(ds), "classes": ds.class_counts(),
        "duplicates": {"groups": len(largest), "records_in_groups": sum(len(m) for m in largest),
                       "text_links": dups.text_links, "image_links": dups.image_links,
                       "largest": largest[:5]},
        "missing": ds.missing_counts(),
        "dropped_by_label_policy": ds.dropped, "skipped": [vars(p) for p in ds.skipped], "notes": ds.notes,
        "official_splits": {k: len(v) for k, v in ds.splits.items()},
        "checksum": split.checksum if written else ds.checksum(),  # hashing reads every image: once
        "fold_check": fold_error or f"every class has at least {folds} members", "split_written": written,
        "split_digest": digest, "split_groups": split.groups if written else None,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        out = stdout_console()
        table = Table(title=f"{ds.name}: {len(ds)} records", title_justify="left")
        table.add_column("class")
        table.add_column("records", justify="right")
        for label, n in report["classes"].items():
            table.add_row(label, str(n))
        out.print(table)
        missing = report["missing"]
        kept = "kept as data" if on_missing == "keep" else "posts without either were left out and are listed below"
        out.print(f"missing text: {missing['text']}, missing image: {missing['image']} ({kept})", highlight=False)
        for reason, n in ds.dropped.items():
            out.print(f"dropped by the label policy: {n} ({reason})", highlight=False)
        for note in ds.notes:
            out.print(f"note: {note}", highlight=False)
        for split_name, n in report["official_splits"].items():
            out.print(f"official split {split_name}: {n}", highlight=False)
        for p in ds.skipped:
            out.print(f"[yellow]skipped[/yellow] {p}", highlight=False)
        dup = report["duplicates"]
        out.print(f"near-duplicate groups: {dup['groups']} holding {dup['records_in_groups']} records (same normalised "
                  f"text: {dup['text_links']} links, same image bytes: {dup['image_links']})", highlight=False)
        for members in dup["largest"]:
            shown = ", ".join(members[:8]) + (f" ... ({len(members)} records)" if len(members) > 8 else "")
            out.print(f"  group of {len(members)}: {shown}", highlight=False)
        out.print(f"checksum: {report['checksum']}", highlight=False)
        if written:
            out.print(f"split manifest written to {written} (groups {report['split_groups']}, digest {digest})",
                      highlight=False)
    if fold_error:
        if not as_json:
            stderr_console().print(f"[red]Error:[/red] {fold_error}", highlight=False)
        raise SystemExit(1)
