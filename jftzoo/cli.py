"""The `jftzoo` command line. Heavy libraries load inside the commands that need them."""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from jftzoo import __version__
from jftzoo.bench.commands import recipe_options, speed_options
from jftzoo.devices import check_device
from jftzoo.errors import JftzooError, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _stdout() -> Console:
    # Wide when piped, so tables are not cropped in files and CI logs.
    return Console(width=None if sys.stdout.isatty() else 200)


def _stderr() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    _stderr().print(f"[yellow]Warning:[/yellow] {message}", markup=True, highlight=False)


class JftzooGroup(click.Group):
    """Turns jftzoo's errors into exit codes: 2 for usage errors, 1 for runtime failures."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise click.UsageError(str(exc), ctx=ctx) from exc
        except JftzooError as exc:
            _stderr().print(f"[red]Error:[/red] {exc}", markup=True, highlight=False)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # `jftzoo ... | head`: the reader has all it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)
        except Exception as exc:
            if os.environ.get("JFTZOO_DEBUG"):
                raise
            _stderr().print(
                f"[red]Internal error:[/red] {type(exc).__name__}: {exc}\n"
                "This is a bug in jftzoo or a plugin; re-run with JFTZOO_DEBUG=1 for the traceback "
                "and report it.",
                markup=True,
                highlight=False,
            )
            ctx.exit(1)


@click.group(cls=JftzooGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="jftzoo")
def cli() -> None:
    """jftzoo: multimodal (image + text) sentiment classification by joint fine-tuning of two
    pre-trained encoders. Encoders come from plugins; `jftzoo list-encoders` shows them."""
    warnings.showwarning = _show_warning  # plugin problems: one clear line each on stderr


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


@cli.command("list-encoders")
@click.argument("patterns", nargs=-1)
@click.option("--modality", type=click.Choice(["text", "vision"]), help="Only encoders of this modality.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_encoders_cmd(patterns: Sequence[str], modality: str | None, as_json: bool) -> None:
    """List registered encoders; PATTERNS are wildcards on names and aliases (e.g. 'clip*')."""
    from jftzoo.errors import UnknownEncoderError
    from jftzoo.registry import get_registry

    registry = get_registry()
    specs = registry.list(list(patterns) or "*", modality)
    literal = [p for p in patterns if not any(c in p for c in "*?[")]
    if not specs and literal:
        raise UnknownEncoderError(literal[0], registry.all_keys())
    rows = []
    for spec in specs:
        offline = spec.offline_source()
        rows.append(
            {
                "name": spec.name,
                "aliases": list(spec.aliases),
                "modality": spec.modality,
                "dim": spec.dim,
                "params": spec.params,
                "source": spec.source,
                "hub_id": spec.hub_id,
                "license": spec.license,
                "pooling": spec.pooling,
                "offline": offline is not None,
                "weights_from": offline,
                "provider": spec.provider,
                "description": spec.description,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        _stderr().print("No encoders match.")
        return
    show_provider = any(not r["provider"].startswith("jftzoo.default_plugins") for r in rows)
    table = Table(title=f"{len(rows)} encoders", title_justify="left")
    for col in ("name", "modality", "dim", "params", "source", "licence", "offline"):
        table.add_column(col, justify="right" if col in ("dim", "params") else "left", no_wrap=True)
    if show_provider:
        table.add_column("plugin", no_wrap=True)
    for r in rows:
        offline = f"[green]yes ({r['weights_from']})[/green]" if r["offline"] else "[dim]no[/dim]"
        cells = [r["name"], r["modality"], str(r["dim"]), _human(r["params"]), r["source"], r["license"], offline]
        if show_provider:
            cells.append("built-in" if r["provider"].startswith("jftzoo.default_plugins") else r["provider"])
        table.add_row(*cells)
    _stdout().print(table)


@cli.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include jftzoo's built-in default plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_cmd(show_all: bool, as_json: bool) -> None:
    """Installed plugin distributions, their versions and hooks, and any load errors."""
    from jftzoo import plugins
    from jftzoo.registry import get_registry

    registry = get_registry()
    counts: dict[str, int] = {}
    for spec in registry.list("*"):
        counts[spec.provider] = counts.get(spec.provider, 0) + 1
    rows = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "hooks": info.hooks,
            "encoders": counts.get(info.name, 0),
            "builtin": info.builtin,
        }
        for info in plugins.plugin_infos.values()
        if show_all or not info.builtin
    ]
    errors = [
        {"plugin": p.plugin, "distribution": p.distribution, "stage": p.stage, "error": p.error}
        for p in registry.problems
    ]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "errors": errors}, indent=2))
        return
    table = Table(title="plugins", title_justify="left")
    for col in ("name", "distribution", "version", "hooks", "encoders"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(r["name"], r["distribution"] or "-", r["version"] or "-", ", ".join(r["hooks"]),
                      str(r["encoders"]))
    console = _stdout()
    if rows:
        console.print(table)
    else:
        console.print("No third-party plugins installed (use --all to include the built-ins).")
    for e in errors:
        console.print(f"[red]load error[/red] {e['plugin']} ({e['stage']}): {e['error']}", highlight=False)


@cli.command("embed")
@click.argument("encoder")
@click.option("--text", "texts", multiple=True, help="A text to embed (repeatable).")
@click.option("--image", "images", multiple=True, type=click.Path(dir_okay=False), help="An image file (repeatable).")
@click.option("--weights", type=click.Path(), help="Local weights (file or folder) instead of the default sources.")
@click.option("--random-init", is_flag=True, help="Random weights: test plumbing offline; never a result.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda:0.")
@click.option("--json", "as_json", is_flag=True, help="Print the full vectors as JSON.")
def embed_cmd(
    encoder: str,
    texts: Sequence[str],
    images: Sequence[str],
    weights: str | None,
    random_init: bool,
    batch_size: int,
    device: str,
    as_json: bool,
) -> None:
    """Embed texts or images with ENCODER and print the pooled vectors."""
    from jftzoo.registry import get_encoder, get_spec

    spec = get_spec(encoder)
    items: list[str] = list(texts) if spec.modality == "text" else list(images)
    wrong = images if spec.modality == "text" else texts
    if wrong:
        other = "--image" if spec.modality == "text" else "--text"
        raise UsageError(f"{spec.name} is a {spec.modality} encoder; {other} does not apply to it")
    if not items:
        flag = "--text" if spec.modality == "text" else "--image"
        raise UsageError(f"give at least one {flag} to embed with {spec.name}")
    if weights and random_init:
        raise UsageError("--weights and --random-init exclude each other")
    enc = get_encoder(spec.name, pretrained=not random_init, weights=weights, device=device)
    vectors = enc.embed(items, batch_size=batch_size, show_progress=not as_json)
    kind = "pretrained" if enc.pretrained else "random"
    if as_json:
        out = [
            {"input": item, "encoder": spec.name, "weights": kind, "dim": enc.embed_dim, "embedding": v.tolist()}
            for item, v in zip(items, vectors, strict=False)
        ]
        click.echo(json.dumps(out))
        return
    table = Table(title=f"{spec.name} embeddings ({enc.embed_dim}-d), weights: {enc.weight_source}",
                  title_justify="left")
    table.add_column("input")
    table.add_column("norm", justify="right")
    table.add_column("first values")
    for item, v in zip(items, vectors, strict=False):
        head = ", ".join(f"{x:+.3f}" for x in v[:4].tolist())
        table.add_row(str(item), f"{float(v.norm()):.3f}", head + ", ...")
    _stdout().print(table)


@cli.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def datasets_cmd(as_json: bool) -> None:
    """List the dataset kinds that --data KIND:PATH accepts."""
    from jftzoo.datasets.registry import dataset_specs

    rows = [
        {"name": s.name, "labels": list(s.labels) if s.labels else None, "needs_path": s.needs_path,
         "options": list(s.options), "license": s.license, "description": s.description, "provider": s.provider}
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
        table.add_row(r["name"], ", ".join(r["labels"]) if r["labels"] else "from the data", usage, r["description"])
    _stdout().print(table)


@cli.group("data", context_settings=CONTEXT)
def data_group() -> None:
    """Inspect datasets before training on them."""


@data_group.command("check")
@click.option("--data", "data", required=True, help="KIND:PATH, e.g. mvsa-single:../shared/data/mvsa_single.")
@click.option("--label-policy", type=click.Choice(["merge", "text", "image", "majority"]),
              help="MVSA: how annotator labels become one label (default merge).")
@click.option("--balance", type=click.IntRange(min=1), help="MVSA: seeded subsample of N records per class.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--on-bad", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Stop at bad records with the full list, or leave them out and report them.")
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
def data_check_cmd(data: str, label_policy: str | None, balance: int | None, seed: int, on_bad: str, folds: int,
                   write_split: str | None, split_kind: str, groups: str, fields: Sequence[str],
                   as_json: bool) -> None:
    """Read a dataset, print counts per class, near-duplicate groups and every problem found; trains nothing.

    Example: jftzoo data check --data mvsa-single:../shared/data/mvsa_single --write-split split.json --split 8:1:1
    """
    from jftzoo.datasets import splits
    from jftzoo.datasets.groups import duplicate_groups
    from jftzoo.datasets.records import BadDataError
    from jftzoo.datasets.registry import load_dataset

    options: dict[str, object] = {"label_policy": label_policy, "balance": balance, "seed": seed if balance else None}
    for item in fields:
        key, sep, column = item.partition("=")
        if not sep or key not in ("id", "text", "image", "label") or not column:
            raise UsageError(f"--field {item!r}: expected NAME=COLUMN with NAME one of id, text, image, label")
        options[f"{key}_field"] = column
    try:
        ds = load_dataset(data, on_bad=on_bad, **options)
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
        "dropped_by_label_policy": ds.dropped, "skipped": [vars(p) for p in ds.skipped], "notes": ds.notes,
        "official_splits": {k: len(v) for k, v in ds.splits.items()},
        "checksum": split.checksum if written else ds.checksum(),  # hashing reads every image: once
        "fold_check": fold_error or f"every class has at least {folds} members", "split_written": written,
        "split_digest": digest, "split_groups": split.groups if written else None,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        out = _stdout()
        table = Table(title=f"{ds.name}: {len(ds)} records", title_justify="left")
        table.add_column("class")
        table.add_column("records", justify="right")
        for label, n in report["classes"].items():
            table.add_row(label, str(n))
        out.print(table)
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
            _stderr().print(f"[red]Error:[/red] {fold_error}", highlight=False)
        raise SystemExit(1)


class _TrainProgress:
    """rich bars for epochs and steps on stderr; silent when not on a TTY or under --json."""

    def __init__(self, enabled: bool, max_epochs: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=_stderr(), transient=True,
                                 disable=not (enabled and sys.stderr.isatty()))
        self.epochs = self.progress.add_task("epochs", total=max_epochs)
        self.steps = self.progress.add_task("steps", total=None)
        self.enabled = enabled

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "step":
            self.progress.update(self.steps, completed=event["step"], total=event["steps"],
                                 description=f"epoch {event['epoch']} loss {event['loss']:.3f}")
        elif event["event"] == "epoch":
            self.progress.update(self.epochs, completed=event["epoch"])
        elif event["event"] == "note" and self.enabled:  # e.g. top-k taking the uncached path, and why
            _stderr().print(f"note: {event['message']}", highlight=False)


@cli.command("train")
@click.option("--text", "text", default="minilm", show_default=True, help="Text encoder name.")
@click.option("--vision", "vision", default="efficientnet_lite0", show_default=True, help="Vision encoder name.")
@click.option("--fusion", default="attention", show_default=True, help="Fusion head (see docs/fusion.md).")
@click.option("--mode", type=click.Choice(["frozen", "top-k", "joint"]), default="frozen", show_default=True)
@click.option("--top-k", type=click.IntRange(min=0), default=2, show_default=True,
              help="top-k mode: layer groups of each encoder that train.")
@click.option("--data", "data", default="emoji-sentiment", show_default=True, help="KIND:PATH (jftzoo datasets).")
@click.option("--label-policy", type=click.Choice(["merge", "text", "image", "majority"]))
@click.option("--on-bad", type=click.Choice(["error", "skip"]), default="error", show_default=True)
@click.option("--split", "ratio", default="8:1:1", show_default=True, help="train:val:test ratio, stratified.")
@click.option("--folds", type=click.IntRange(min=2), help="Stratified k-fold CV instead of --split (writes cv.json).")
@click.option("--groups", type=click.Choice(["near-duplicates", "none"]), default="near-duplicates",
              show_default=True, help="Keep near-duplicate posts on one side of the split; none: random split.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Most epochs.")
@click.option("--min-epochs", type=click.IntRange(min=1), help="Never stop before this many epochs. [3]")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr-encoder", type=float, help="Encoder learning rate. [2e-5; the head's preset if it has one]")
@click.option("--lr-head", type=float, help="Head learning rate. [1e-3; the head's preset if it has one]")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Dropout in the fusion head.")
@click.option("--seed", type=int, default=0, show_default=True)
@speed_options
@click.option("--random-init", is_flag=True, help="Random encoder weights (plumbing tests; labelled random).")
@click.option("--text-weights", type=click.Path(), help="Local weights for the text encoder.")
@click.option("--vision-weights", type=click.Path(), help="Local weights for the vision encoder.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON (no progress bars).")
@recipe_options
def train_cmd(text: str, vision: str, fusion: str, mode: str, top_k: int, data: str, label_policy: str | None,
              on_bad: str, ratio: str, out: str, epochs: int, min_epochs: int | None, batch_size: int,
              lr_encoder: float | None, lr_head: float | None, seed: int, random_init: bool,
              text_weights: str | None, vision_weights: str | None, device: str, as_json: bool,
              folds: int | None, dropout: float, groups: str, workers: int | None, no_prefix_cache: bool,
              prefix_dtype: str, no_bucketing: bool, image_cache: bool, frozen_backend: str,
              recipe: dict[str, Any]) -> None:
    """Fine-tune TEXT + VISION with a fusion head on a seeded split; evaluate on its test part; save to OUT.

    Example: jftzoo train --fusion concat --mode frozen --data emoji-sentiment --out runs/demo
    """
    from jftzoo.datasets import load_dataset, ratio_split, write_split
    from jftzoo.fusion.registry import get_fusion_spec
    from jftzoo.registry import get_spec
    from jftzoo.train.classifier import FusionClassifier
    from jftzoo.train.metrics import evaluate

    get_spec(text), get_spec(vision), get_fusion_spec(fusion)  # usage errors before any work
    check_device(device)
    ds = load_dataset(data, on_bad=on_bad, label_policy=label_policy)

    # Only options the user gave override the head's preset (attention-paper: the released recipe);
    # a --recipe's fields come first, the options given beside it over them.
    from jftzoo.bench.commands import _speed_options, recipe_defaults
    from jftzoo.fusion.registry import apply_train_preset

    recipe, mode, top_k, epochs = recipe_defaults(recipe, mode, top_k, epochs)
    min_epochs = min_epochs or recipe.pop("min_epochs", None)
    given = {**recipe, **{k: v for k, v in (("lr_encoder", lr_encoder), ("lr_head", lr_head)) if v is not None}}
    given["min_epochs"] = min(min_epochs or apply_train_preset(fusion, {}).get("min_epochs", 3), epochs)

    given.update(_speed_options(workers, no_prefix_cache, prefix_dtype, no_bucketing, image_cache, frozen_backend))

    def make() -> FusionClassifier:
        return FusionClassifier(text, vision, fusion, mode, pretrained=not random_init, text_weights=text_weights,
                                vision_weights=vision_weights, device=device, head={"dropout": dropout},
                                top_k=top_k, max_epochs=epochs,
                                batch_size=batch_size, seed=seed, **given)

    if folds:
        from jftzoo.train.cv import SUMMARY_KEYS, cross_validate

        cv = cross_validate(make, ds, folds, seed, groups=groups, backend=given.get("frozen_backend", "pytorch"))
        weights = _weights_label(cv["weights"])
        cv.update({"text": text, "vision": vision, "fusion": fusion, "mode": mode, "data": data})
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "cv.json").write_text(json.dumps(cv, indent=2) + "\n", encoding="utf-8")
        if as_json:
            click.echo(json.dumps({k: v for k, v in cv.items() if k != "folds"} | {"folds": len(cv["folds"])}))
            return
        table = Table(title=f"{text} + {vision}, {fusion}, {mode} ({weights} weights) on {ds.name}: "
                            f"{folds}-fold CV", title_justify="left")
        table.add_column("fold")
        for key in SUMMARY_KEYS:
            table.add_column(key, justify="right")
        for f in cv["folds"]:
            table.add_row(f["fold"], *(f"{f[k]:.3f}" for k in SUMMARY_KEYS))
        table.add_row("mean ± std", *(f"{cv[k + '_mean']:.3f} ± {cv[k + '_std']:.3f}" for k in SUMMARY_KEYS))
        _stdout().print(table)
        _stdout().print(f"every fold's figures written to {Path(out) / 'cv.json'}", highlight=False)
        return
    from jftzoo.datasets.groups import groups_for

    split = ratio_split(ds, ratio, seed, groups_for(ds, groups))
    by_id = ds.by_id()
    part = {name: [by_id[i] for i in ids] for name, ids in split.parts.items()}
    clf = make()
    accelerator = _accelerator(device, unused_encoder=len(get_fusion_spec(fusion).modalities) < 2)
    main_process = accelerator is None or accelerator.is_main_process
    features = None
    if mode == "frozen":  # frozen embeddings come from (and go to) the same disk cache as the bench's
        from jftzoo.cache import DiskCache
        from jftzoo.features import FeatureStore

        features = FeatureStore(cache=DiskCache(), batch_size=max(batch_size, 32),
                                backend=given.get("frozen_backend", "pytorch"))
    # Labels come from the dataset's fixed label set, so every split uses the same class indices.
    clf.fit(ds.subset(part["train"]), progress=_TrainProgress(not as_json and main_process, epochs),
            validation=part["val"] or None, accelerator=accelerator, features=features)
    if not main_process:
        return  # only the first process evaluates, saves and prints
    weights = _weights_label({m: ("pretrained" if enc.pretrained else "random")
                              for m, enc in (("text", clf.model_.text), ("vision", clf.model_.vision))})
    probs = clf.predict_proba(part["test"], features=features)
    index = {c: i for i, c in enumerate(clf.classes_)}
    metrics = evaluate([index[r.label] for r in part["test"]], probs, list(clf.classes_))
    val_metrics = None
    if part["val"]:  # the figures a choice between runs may use; test is only reported
        val_probs = clf.predict_proba(part["val"], features=features)
        val_metrics = evaluate([index[r.label] for r in part["val"]], val_probs, list(clf.classes_))
    clf.metrics_ = {"test": metrics, "val": val_metrics, "split": {"ratio": ratio, "seed": seed, "dataset": ds.name,
                                               "checksum": split.checksum, "groups": split.groups,
                                               "digest": split.digest()}}
    clf.save(out, extra={"weights": weights, "data": data})
    write_split(split, Path(out) / "split.json")
    summary = {"out": out, "text": text, "vision": vision, "fusion": fusion, "mode": mode, "weights": weights,
               "best_epoch": clf.best_epoch_, **{k: metrics[k] for k in ("auc", "accuracy", "f1_macro", "f1_weighted")},
               "test_records": metrics["n"]}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    table = Table(title=f"{text} + {vision}, {fusion}, {mode} ({weights} weights) on {ds.name}: "
                        f"test of {metrics['n']}", title_justify="left")
    for col in ("AUC", "accuracy", "macro-F1", "weighted-F1", "best epoch"):
        table.add_column(col, justify="right")
    table.add_row(f"{metrics['auc']:.3f}", f"{metrics['accuracy']:.3f}", f"{metrics['f1_macro']:.3f}",
                  f"{metrics['f1_weighted']:.3f}", str(clf.best_epoch_))
    _stdout().print(table)
    _stdout().print(f"model saved to {out}", highlight=False)


def _weights_label(by_modality: dict[str, str]) -> str:
    """`pretrained` only when every encoder really loaded pre-trained weights, else `random`."""
    return "random" if "random" in by_modality.values() else "pretrained"


def _accelerator(device: str, unused_encoder: bool) -> Any:
    """A Hugging Face Accelerator when started by `torchrun` / `accelerate launch` with several processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import Accelerator, DistributedDataParallelKwargs

    # Unimodal heads leave one encoder unused in forward: DDP must be told.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=unused_encoder)
    return Accelerator(cpu=device == "cpu", kwargs_handlers=[ddp])


@cli.command("predict")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--text", "text", help="The post's text (with --image).")
@click.option("--image", "image", type=click.Path(), help="The post's image (with --text).")
@click.option("--data", "data", help="KIND:PATH: predict every record of a dataset.")
@click.option("--on-bad", type=click.Choice(["error", "skip"]), default="error", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda:0.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, label, probs}.")
def predict_cmd(model_dir: str, text: str | None, image: str | None, data: str | None, on_bad: str,
                batch_size: int, device: str, as_json: bool) -> None:
    """Labels and class probabilities from a model folder written by `jftzoo train`."""
    from jftzoo.datasets import load_dataset
    from jftzoo.datasets.records import Record
    from jftzoo.train.classifier import FusionClassifier

    if data and (text is not None or image):
        raise UsageError("give either --data or --text with --image, not both")
    if not data and (text is None or not image):
        raise UsageError("give --text and --image for one post, or --data KIND:PATH for a dataset")
    check_device(device)
    one = [Record("1", text or "", Path(image or ""), "?")]
    records = load_dataset(data, on_bad=on_bad).records if data else one
    clf = FusionClassifier.load(model_dir, device=device)
    probs = clf.predict_proba(records, batch_size)
    rows = [{"id": r.id, "label": str(clf.classes_[p.argmax()]),  # type: ignore[index]
             "probs": {str(c): float(x) for c, x in zip(clf.classes_, p, strict=True)}}  # type: ignore[arg-type]
            for r, p in zip(records, probs, strict=True)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"predictions of {model_dir}", title_justify="left")
    table.add_column("id")
    table.add_column("label")
    for c in clf.classes_:  # type: ignore[union-attr]
        table.add_column(f"p({c})", justify="right")
    for row in rows:
        table.add_row(row["id"], row["label"], *(f"{v:.3f}" for v in row["probs"].values()))
    _stdout().print(table)


def _register_bench() -> None:
    from jftzoo.bench.commands import register  # click only: no torch at import
    from jftzoo.bench.tune_commands import register as register_tune

    register(cli)
    register_tune(cli)
    from jftzoo.commands.explain import register as register_explain

    register_explain(cli)


_register_bench()


def main() -> None:
    cli(prog_name="jftzoo")


if __name__ == "__main__":
    main()
