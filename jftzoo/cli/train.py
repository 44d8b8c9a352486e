"""`jftzoo train` and `jftzoo predict`: one model, fitted, saved and used."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from jftzoo.cli.app import cli, interruptible, stderr_console, stdout_console
from jftzoo.cli.options import IMAGE_ROOT_OPTION, ON_BAD_OPTION, ON_MISSING_OPTION
from jftzoo.cli.training_options import recipe_options, speed_options
from jftzoo.devices import check_device
from jftzoo.errors import UsageError
from jftzoo.train.metrics import SCORES


class _TrainProgress:
    """rich bars for epochs and steps on stderr on a TTY; one plain line per epoch when not; silent under --json."""

    def __init__(self, enabled: bool, max_epochs: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=stderr_console(), transient=True,
                                 disable=not (enabled and sys.stderr.isatty()))
        self.epochs = self.progress.add_task("epochs", total=max_epochs)
        self.steps = self.progress.add_task("steps", total=None)
        self.enabled = enabled
        self.max_epochs = max_epochs

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "step":
            self.progress.update(self.steps, completed=event["step"], total=event["steps"],
                                 description=f"epoch {event['epoch']} loss {event['loss']:.3f}")
        elif event["event"] == "epoch":
            self.progress.update(self.epochs, completed=event["epoch"])
            if self.enabled and not sys.stderr.isatty():  # a log file or a scheduler: one plain line per epoch
                scores = "".join(f", {k} {v:.4f}" for k, v in event.items() if k.startswith("val_") and k != "val_loss")
                stderr_console().print(f"epoch {event['epoch']}/{self.max_epochs}: train loss "
                                       f"{event['train_loss']:.4f}, val loss {event['val_loss']:.4f}{scores}",
                                       highlight=False)
        elif event["event"] == "note" and self.enabled:  # e.g. top-k taking the uncached path, and why
            stderr_console().print(f"note: {event['message']}", highlight=False)


@cli.command("train")
@IMAGE_ROOT_OPTION
@click.option("--text", "text", default="minilm", show_default=True, help="Text encoder name.")
@click.option("--vision", "vision", default="efficientnet_lite0", show_default=True, help="Vision encoder name.")
@click.option("--fusion", default="attention", show_default=True, help="Fusion head (see docs/fusion.md).")
@click.option("--mode", type=click.Choice(["frozen", "top-k", "joint"]), default="frozen", show_default=True)
@click.option("--top-k", type=click.IntRange(min=0), default=2, show_default=True,
              help="top-k mode: layer groups of each encoder that train.")
@click.option("--data", "data", default="emoji-sentiment", show_default=True, help="KIND:PATH (jftzoo datasets).")
@click.option("--label-policy", type=click.Choice(["merge", "text", "image", "majority"]))
@ON_BAD_OPTION
@ON_MISSING_OPTION
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
def train_cmd(image_root: str | None,
              text: str, vision: str, fusion: str, mode: str, top_k: int, data: str, label_policy: str | None,
              on_bad: str, on_missing: str, ratio: str, out: str, epochs: int, min_epochs: int | None, batch_size: int,
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
    from jftzoo.train.config import refuse_seed_ensemble
    from jftzoo.train.metrics import evaluate

    get_spec(text), get_spec(vision), get_fusion_spec(fusion)  # usage errors before any work
    refuse_seed_ensemble(recipe, "train")  # FusionClassifier's own check, before the dataset loads
    check_device(device)
    ds = load_dataset(data, on_bad=on_bad, on_missing=on_missing, label_policy=label_policy, image_root=image_root)

    # Only options the user gave override the head's preset (attention-paper: the released recipe);
    # a --recipe's fields come first, the options given beside it over them.
    from jftzoo.cli.training_options import recipe_defaults, speed_fields
    from jftzoo.datasets.registry import train_defaults
    from jftzoo.fusion.registry import apply_train_preset

    recipe, mode, top_k, epochs = recipe_defaults(recipe, mode, top_k, epochs)
    min_epochs = min_epochs or recipe.pop("min_epochs", None)
    defaults = train_defaults(data, reads_text="text" in get_fusion_spec(fusion).modalities)
    rates = {k: v for k, v in (("lr_encoder", lr_encoder), ("lr_head", lr_head)) if v is not None}
    given = apply_train_preset(fusion, {**recipe, **rates}, defaults)
    given["min_epochs"] = min(min_epochs or given.get("min_epochs", 3), epochs)

    given.update(speed_fields(workers, no_prefix_cache, prefix_dtype, no_bucketing, image_cache, frozen_backend))

    def make() -> FusionClassifier:
        return FusionClassifier(text, vision, fusion, mode, pretrained=not random_init, text_weights=text_weights,
                                vision_weights=vision_weights, device=device, head={"dropout": dropout},
                                top_k=top_k, max_epochs=epochs,
                                batch_size=batch_size, seed=seed, **given)

    if folds:
        from jftzoo.train.cv import cross_validate

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
        for key in SCORES:
            table.add_column(key, justify="right")
        for f in cv["folds"]:
            table.add_row(f["fold"], *(f"{f[k]:.3f}" for k in SCORES))
        table.add_row("mean ± std", *(f"{cv[k + '_mean']:.3f} ± {cv[k + '_std']:.3f}" for k in SCORES))
        stdout_console().print(table)
        stdout_console().print(f"every fold's figures written to {Path(out) / 'cv.json'}", highlight=False)
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
        from jftzoo.cache_layouts import embedding_cache
        from jftzoo.features import FeatureStore

        features = FeatureStore(cache=embedding_cache(), batch_size=max(batch_size, 32),
                                backend=given.get("frozen_backend", "pytorch"))
    # Labels come from the dataset's fixed label set, so every split uses the same class indices.
    def kept() -> str:
        return (f"No model was written to {out} (a model is saved when training ends); the embedding cache keeps "
                "the frozen encoders' outputs, so running the same command again starts faster.")

    with interruptible(kept):
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
               "best_epoch": clf.best_epoch_, **{k: metrics[k] for k in SCORES},
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
    stdout_console().print(table)
    stdout_console().print(f"model saved to {out}", highlight=False)


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
@IMAGE_ROOT_OPTION
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--text", "text", help="The post's text (leave out for a post without text).")
@click.option("--image", "image", type=click.Path(), help="The post's image (leave out for a post without one).")
@click.option("--data", "data", help="KIND:PATH: predict every record of a dataset.")
@ON_BAD_OPTION
@ON_MISSING_OPTION
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda:0.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, label, probs}.")
@click.option("--output", "output", type=click.Path(dir_okay=False),
              help="Write the predictions to this .csv or .jsonl file as they are made (chunk by chunk: bounded "
                   "memory for large datasets) instead of printing them.")
@click.option("--chunk", type=click.IntRange(min=1), default=1024, show_default=True,
              help="With --output: records predicted and written per chunk.")
def predict_cmd(image_root: str | None,
                model_dir: str, text: str | None, image: str | None, data: str | None, on_bad: str, on_missing: str,
                batch_size: int, device: str, as_json: bool, output: str | None, chunk: int) -> None:
    """Labels and class probabilities from a model folder written by `jftzoo train`.

    Example: jftzoo predict runs/demo --text "what a day" --image post.jpg
    """
    from jftzoo.datasets import load_dataset
    from jftzoo.datasets.records import Record
    from jftzoo.train.classifier import FusionClassifier

    if data and (text is not None or image):
        raise UsageError("give either --data or --text / --image, not both")
    if not data and text is None and not image:
        raise UsageError("give --text and/or --image for one post (a post may lack either), or --data KIND:PATH")
    check_device(device)
    if data:
        records = load_dataset(data, on_bad=on_bad, on_missing=on_missing, image_root=image_root).records
    else:
        one = Record("1", text or "", Path(image) if image else None, "?")
        if on_missing != "keep" and not (one.has_text and one.has_image):
            raise UsageError(f"the post has no {'text' if not one.has_text else 'image'} and --on-missing is "
                             f"{on_missing}: give both, or leave --on-missing at keep")
        records = [one]
    clf = FusionClassifier.load(model_dir, device=device)
    if output:
        from jftzoo.predict_output import write_predictions

        n = write_predictions(clf, records, Path(output), batch_size, chunk)
        stderr_console().print(f"{n} prediction(s) written to {output}", highlight=False)
        return
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
    stdout_console().print(table)
