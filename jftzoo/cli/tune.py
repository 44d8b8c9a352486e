"""`jftzoo tune`: the command over `jftzoo.bench.tune` (Optuna search on validation data)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from jftzoo.cli.options import IMAGE_ROOT_OPTION, ON_BAD_OPTION, ON_MISSING_OPTION
from jftzoo.cli.tables import DEFAULT_OUT, consoles
from jftzoo.cli.training_options import parse_seeds, recipe_options, speed_options, split_commas
from jftzoo.errors import UsageError
from jftzoo.train.presets import MONITORS


class _TuneProgress:
    """Trials done / asked, the best value so far and each trial's fate, on stderr."""

    def __init__(self, enabled: bool, metric: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        _, self.console = consoles()
        self.enabled = enabled
        self.metric = metric
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True,
                                 disable=not (enabled and sys.stderr.isatty()))
        self.task = self.progress.add_task("trials", total=None)

    def __enter__(self) -> _TuneProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "study":
            self.progress.update(self.task, total=event["remaining"], completed=0)
            if self.enabled:
                self.console.print(f"study {event['name']} ({event['finished']} trials already finished): "
                                   f"{event['storage']}", highlight=False)
        elif event["event"] == "trial":
            self.progress.advance(self.task)
            best = event["best"]
            self.progress.update(self.task, description=f"trials (best {self.metric} {best:.4f})" if best is not None
                                 else "trials")
            if self.enabled:
                value = "-" if event["value"] is None else f"{event['value']:.4f}"
                params = ", ".join(f"{k}={_fmt(v)}" for k, v in event["params"].items())
                self.console.print(f"trial {event['number']}: {event['state'].lower()} {value}  {params}",
                                   highlight=False)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@click.command("tune")
@click.option("--data", default="emoji-sentiment", show_default=True, help="KIND:PATH dataset.")
@click.option("--text", default="minilm", show_default=True)
@click.option("--vision", default="efficientnet_lite0", show_default=True)
@click.option("--fusion", "fusions", multiple=True, help="Head (one, or several to search over). [concat]")
@click.option("--mode", type=click.Choice(["frozen", "top-k", "joint"]), default="frozen", show_default=True)
@click.option("--split", default="8:1:1", show_default=True, help="train:val:test; trials read the val part only.")
@click.option("--groups", type=click.Choice(["near-duplicates", "none"]), default="near-duplicates",
              show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Seeds (splits) whose mean validation score is scored.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Most epochs (the upper end of max_epochs in the default space).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--top-k", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="A seeded subsample of the dataset (quick searches).")
@click.option("--label-policy", type=click.Choice(["merge", "text", "image", "majority"]))
@ON_BAD_OPTION
@ON_MISSING_OPTION
@IMAGE_ROOT_OPTION
@click.option("--random-init", is_flag=True, help="Random encoder weights (plumbing; labelled random).")
@click.option("--param", "params", multiple=True,
              help="A searched dimension: NAME=LOW:HIGH[:log] or NAME=A,B,C (repeatable). [by mode]")
@click.option("--metric", type=click.Choice(MONITORS),
              default="accuracy", show_default=True, help="Validation figure to optimise (and early-stop on).")
@click.option("--trials", type=click.IntRange(min=1), help="Finished trials the study should hold. [20]")
@click.option("--timeout", type=click.FloatRange(min=1), help="Stop starting trials after this many seconds.")
@click.option("--study", help="Study name. [from the setting: dataset, pair, mode, protocol, space]")
@click.option("--out", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Results folder: the study is kept in OUT/tune/STUDY.db, split manifests in OUT/splits.")
@click.option("--no-cache", is_flag=True, help="Keep frozen embeddings in memory only.")
@click.option("--json", "as_json", is_flag=True, help="Print the best trial as JSON.")
@speed_options
@recipe_options
def tune_cmd(data: str, text: str, vision: str, fusions: Sequence[str], mode: str, split: str, groups: str, seeds: str,
             epochs: int, batch_size: int, top_k: int, limit: int | None, label_policy: str | None, on_bad: str,
             on_missing: str, image_root: str | None, random_init: bool, params: Sequence[str], metric: str,
             trials: int | None, timeout: float | None, study: str | None, out: str, no_cache: bool, as_json: bool,
             workers: int | None, no_prefix_cache: bool, prefix_dtype: str, no_bucketing: bool, image_cache:
             bool, frozen_backend: str, recipe: dict[str, Any]) -> None:
    """Search training hyperparameters with Optuna on validation data; print the best as bench options.

    Each trial trains like `jftzoo bench` on each seed's split and is scored on the validation part
    only (the test part is never read). Pruning stops poor trials early; the study is stored in
    OUT/tune and resumes when run again.

    Example: jftzoo tune --data mvsa-single:PATH --mode top-k --groups none --trials 30
    """
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UsageError("jftzoo tune needs Optuna: pip install 'jftzoo[tune]'") from None
    from jftzoo.bench.grid import BenchConfig, validate
    from jftzoo.bench.tune import Tuning, bench_command, best_config, default_space, parse_param, run_tuning
    from jftzoo.cache_layouts import embedding_cache
    from jftzoo.cli.training_options import recipe_defaults, speed_fields

    recipe, mode, top_k, epochs = recipe_defaults(recipe, mode, top_k, epochs)
    train = {**recipe, **speed_fields(workers, no_prefix_cache, prefix_dtype, no_bucketing, image_cache,
                                        frozen_backend)}
    config = BenchConfig(data=[data], text=[text], vision=[vision], fusion=split_commas(fusions) or ["concat"],
                         mode=[mode], folds=None, split=split, seeds=parse_seeds(seeds), epochs=epochs,
                         batch_size=batch_size, top_k=top_k, random_init=random_init, limit=limit,
                         label_policy=label_policy, groups=groups, train=train, on_bad=on_bad,
                         on_missing=on_missing, image_root=image_root)
    validate(config)
    space = [parse_param(p) for p in params] or default_space(config)
    if any(p.name == "fusion" for p in space):
        config.fusion = [c for p in space if p.name == "fusion" for c in p.choices]
    tuning = Tuning(config, space, metric, Path(out), study)
    from jftzoo.cli.app import interruptible

    def kept() -> str:
        return (f"Finished trials are stored in the study under {Path(out) / 'tune'}; the trial that was running is "
                "dropped. Run the same command again to resume the study.")

    with interruptible(kept), _TuneProgress(not as_json, metric) as progress:
        result = run_tuning(tuning, trials if trials is not None else (None if timeout else 20), timeout, progress,
                            cache=None if no_cache else embedding_cache())
    try:
        best = result.best_trial
    except ValueError:
        raise click.ClickException("no trial finished: nothing to report (see the trial lines above)") from None
    best_cfg = best_config(tuning, result)
    command = bench_command(best_cfg)
    out_stream, _ = consoles()
    if as_json:
        click.echo(json.dumps({"study": result.study_name, "metric": metric, "best_value": best.value,
                               "best_trial": best.number, "params": best.params, "bench_command": command,
                               "trials": len(result.trials)}, indent=2))
        return
    out_stream.print(f"best validation {metric}: {best.value:.4f} (trial {best.number} of {len(result.trials)})",
                     highlight=False)
    out_stream.print("reproduce it (validation figures; the test part is reported there, never tuned on):",
                     highlight=False)
    click.echo(command)


def register(cli: click.Group) -> None:
    cli.add_command(tune_cmd)
