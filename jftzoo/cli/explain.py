"""`jftzoo explain`: modality shares, ablation, word and region attributions for a saved model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from jftzoo.cli.options import IMAGE_ROOT_OPTION, ON_BAD_OPTION, ON_MISSING_OPTION
from jftzoo.errors import UsageError

PARTS = ("test", "val", "train", "all")


class _Progress:
    """rich bars on a TTY; one plain line per stage and every 10 % otherwise (logs, CI, nohup)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._said: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.tty:
            if self._bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                from jftzoo.console import stderr_console

                self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=stderr_console(), transient=True)
                self._bar.start()
            if stage not in self._tasks:
                self._tasks[stage] = self._bar.add_task(f"explain: {stage}", total=total)
            self._bar.update(self._tasks[stage], completed=done, total=total)
            return
        step = max(1, total // 10)
        last = self._said.get(stage, -1)
        if last < 0 or done == total or done // step > last // step:
            self._said[stage] = done
            click.echo(f"explain: {stage} {done}/{total}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _records(model_dir: Path, data: str | None, split_file: str | None, part: str, on_bad: str,
             image_root: str | None = None, on_missing: str = "keep") -> tuple[list[Any], list[Any] | None, str]:
    """(records to explain, reference records (the training part) or None, a description)."""
    from jftzoo.datasets import load_dataset
    from jftzoo.datasets.splits import read_split

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    data = data or config.get("data")
    if not data:
        raise UsageError(f"{model_dir} does not say which data it was trained on: pass --data KIND:PATH")
    ds = load_dataset(data, on_bad=on_bad, on_missing=on_missing, image_root=image_root)
    own = model_dir / "split.json"
    path = Path(split_file) if split_file else (own if own.is_file() else None)
    if path is not None and not split_file and read_split(path).checksum != ds.checksum():
        path = None  # the model's own split names other data: explain all of this data
    if path is None:
        if part != "all" and split_file is None and part != "test":
            raise UsageError(f"--part {part} needs a split: pass --split-file (the model folder has none for {data})")
        return list(ds.records), None, f"{data}, all {len(ds.records)} records (no split manifest)"
    split = read_split(path, ds)
    by_id = ds.by_id()
    reference = [by_id[i] for i in split.parts.get("train", [])] or None
    if part == "all":
        return list(ds.records), reference, f"{data}, all {len(ds.records)} records"
    if part not in split.parts:
        raise UsageError(f"split {path} has parts {', '.join(split.parts)}; --part {part} is not one of them")
    chosen = [by_id[i] for i in split.parts[part]]
    return chosen, reference, f"{data}, the {part} part of {path} ({len(chosen)} records)"


def _table(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"modality shares over {result.n} records (Shapley, baseline {result.baseline!r})",
              title_justify="left")
    for col in ("predicted", "n", "text share", "image share", "φ text", "φ image", "head text/image"):
        t.add_column(col, justify="right" if col != "predicted" else "left")
    w = result.modality_weights
    overall_w = f"{w['overall']['text']['mean']:.2f} / {w['overall']['image']['mean']:.2f}" if w else "—"
    t.add_row("all", str(result.n), f"{result.modality_shares['text']:.3f}", f"{result.modality_shares['image']:.3f}",
              f"{result.shapley['text']:+.4f}", f"{result.shapley['image']:+.4f}", overall_w)
    for c, e in result.per_class.items():
        if not e["n"]:
            t.add_row(c, "0", "—", "—", "—", "—", "—")
            continue
        hw = e.get("head_weights")
        t.add_row(c, str(e["n"]), f"{e['text']:.3f}", f"{e['image']:.3f}", f"{e['shapley']['text']:+.4f}",
                  f"{e['shapley']['image']:+.4f}", f"{hw['text']:.2f} / {hw['image']:.2f}" if hw else "—")
    console.print(t)
    if result.ablation:
        a = Table(title="ablation: the absent modality replaced by its baseline (95 % bootstrap CIs over records)",
                  title_justify="left")
        a.add_column("inputs")
        for m in ("accuracy", "macro-F1", "AUC (macro one-vs-rest)"):
            a.add_column(m, justify="right")
        for name, metrics in result.ablation.items():
            a.add_row(name, *(f"{v['value']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]"
                              if v["ci"][0] is not None else f"{v['value']:.3f}"
                              for v in (metrics["accuracy"], metrics["f1_macro"], metrics["auc"])))
        console.print(a)
    if w:
        console.print(f"head weights (text / image): {w['note']}", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


@click.command("explain")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", help="KIND:PATH to explain. [the data the model was trained on]")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False),
              help="A split manifest; its --part is explained and its train part is the 'mean' baseline's "
                   "reference. [the model's own split.json]")
@click.option("--part", type=click.Choice(PARTS), default="test", show_default=True)
@click.option("--text", "text", help="Explain one post: its text (leave out for a post without text).")
@click.option("--image", "image", type=click.Path(),
              help="Explain one post: its image file (leave out for a post without one).")
@click.option("--ids", help="Comma-separated record ids to draw cards for. [the first --cards records]")
@click.option("--cards", type=click.IntRange(min=0), default=3, show_default=True,
              help="Cards for the first N records when --ids is not given.")
@click.option("--limit", type=click.IntRange(min=1), help="Explain only the first N records of the part.")
@click.option("--baseline", type=click.Choice(["auto", "input", "mean"]), default="auto", show_default=True,
              help="An absent modality: mean = the mean embedding of the training part (else of the explained "
                   "records); input = an empty text / a grey image through the encoder; auto = mean for frozen "
                   "encoders, input for fine-tuned ones.")
@click.option("--steps", type=click.IntRange(min=2), default=50, show_default=True,
              help="Integrated-gradients steps per card.")
@ON_BAD_OPTION
@ON_MISSING_OPTION
@IMAGE_ROOT_OPTION
@click.option("--out", type=click.Path(file_okay=False), help="Folder for explanation.json, shares.png and "
              "cards/. [MODEL_DIR/explain]")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (no tables or progress bars).")
def explain_cmd(model_dir: str, data: str | None, split_file: str | None, part: str, text: str | None,
                image: str | None, ids: str | None, cards: int, limit: int | None, baseline: str, steps: int,
                on_bad: str, on_missing: str, image_root: str | None, out: str | None, device: str,
                as_json: bool) -> None:
    """How much each modality, word and image region counted in MODEL_DIR's predictions.

    On a dataset: modality Shapley values and shares (overall and per predicted class), an ablation
    with each modality alone, the head's own modality weights, and cards for a few records. On one
    post (--text and/or --image): its probabilities, Shapley values, word and region attributions and card.

    Example: jftzoo explain runs/demo --part test --cards 3
    """
    from jftzoo.devices import check_device
    from jftzoo.explain import explain_dataset, explain_record
    from jftzoo.train.classifier import FusionClassifier

    one = text is not None or image is not None
    if one and (data or split_file or ids):
        raise UsageError("give either one post (--text and/or --image) or a dataset (--data / --split-file), not both")
    check_device(device)
    folder = Path(out) if out else Path(model_dir) / "explain"
    clf = FusionClassifier.load(model_dir, device=device)
    if one:
        from jftzoo.datasets.records import Record

        post = Record("post", text or "", Path(image) if image else None, "?")
        rx = explain_record(clf, record=post, baseline=baseline, n_steps=steps,
                            card=folder / "cards" / "post.png")
        (folder / "cards" / "post.json").write_text(json.dumps(rx.as_dict(), indent=2) + "\n", encoding="utf-8")
        if as_json:
            click.echo(json.dumps(rx.as_dict(), indent=2))
            return
        _record_summary(rx)
        return
    records, reference, described = _records(Path(model_dir), data, split_file, part, on_bad, image_root,
                                             on_missing)
    if limit is not None:
        records = records[:limit]
    features = None
    if clf.mode == "frozen":  # the frozen encoders' outputs from the embedding cache that train and bench fill
        from jftzoo.cache_layouts import embedding_cache
        from jftzoo.features import FeatureStore

        features = FeatureStore(cache=embedding_cache(), backend=clf.train_config.frozen_backend)
    progress = _Progress(quiet=as_json)
    try:
        result = explain_dataset(clf, records, baseline=baseline, reference=reference, progress=progress,
                                 features=features)
        by_id = {r.id: r for r in records}
        wanted = [i.strip() for i in ids.split(",") if i.strip()] if ids else [r.id for r in records[:cards]]
        missing = [i for i in wanted if i not in by_id]
        if missing:
            from jftzoo.errors import suggest

            hint = suggest(missing[0], list(by_id))
            raise UsageError(f"--ids {', '.join(missing)}: not among the explained records ({described})"
                             + (f". Did you mean {', '.join(map(repr, hint))}?" if hint else ""))
        card_paths = []
        for n, i in enumerate(wanted, 1):
            progress("cards", n - 1, len(wanted))
            rx = explain_record(clf, record=by_id[i], baseline=baseline, reference=reference, n_steps=steps,
                                card=folder / "cards", features=features)
            (folder / "cards" / f"{Path(rx.card).stem}.json").write_text(json.dumps(rx.as_dict(), indent=2) + "\n",
                                                                         encoding="utf-8")
            card_paths.append(rx.card)
        progress("cards", len(wanted), len(wanted))
    finally:
        progress.close()
    from jftzoo.explain.card import draw_shares

    folder.mkdir(parents=True, exist_ok=True)
    chart = draw_shares(result, folder / "shares.png")
    payload = result.as_dict()
    payload.update({"model": str(model_dir), "data": described, "cards": card_paths, "shares_chart": str(chart)})
    (folder / "explanation.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps({k: v for k, v in payload.items() if k != "records"}, indent=2))
        return
    click.echo(f"explained: {described}")
    _table(result)
    click.echo(f"written: {folder / 'explanation.json'} (every record), {chart}, {len(card_paths)} card(s) in "
               f"{folder / 'cards'}")


def _record_summary(rx: Any) -> None:
    from rich.console import Console

    console = Console()
    probs = ", ".join(f"{c} {p:.3f}" for c, p in rx.probs.items())
    console.print(f"predicted [bold]{rx.label}[/bold] ({probs})")
    console.print(f"Shapley (predicted class's probability): text {rx.shapley['text']:+.4f}, image "
                  f"{rx.shapley['image']:+.4f}; shares: text {rx.modality_shares['text']:.3f}, image "
                  f"{rx.modality_shares['image']:.3f}", highlight=False)
    top = sorted(rx.words, key=lambda w: -abs(w[1]))[:8]
    if top:
        console.print("words (integrated gradients): " + ", ".join(f"{w} {a:+.3f}" for w, a in top), highlight=False)
    for modality, c in rx.completeness.items():
        console.print(f"completeness, {modality}: attributions sum {c['attribution_sum']:+.4f} vs logit change "
                      f"{c['logit_difference']:+.4f} (relative error {c['relative_error']:.1%})", highlight=False)
    console.print(f"card: {rx.card}", highlight=False)


def register(cli: click.Group) -> None:
    cli.add_command(explain_cmd)
