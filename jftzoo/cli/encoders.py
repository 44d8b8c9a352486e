"""`jftzoo list-encoders`, `plugins`, `embed`: what is installed and what it computes."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click
from rich.table import Table

from jftzoo.cli.app import cli, stderr_console, stdout_console
from jftzoo.errors import UsageError


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


@cli.command("list-encoders")
@click.argument("patterns", nargs=-1)
@click.option("--modality", type=click.Choice(["text", "vision"]), help="Only encoders of this modality.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_encoders_cmd(patterns: Sequence[str], modality: str | None, as_json: bool) -> None:
    """List registered encoders; PATTERNS are wildcards on names and aliases (e.g. 'clip*').

    Example: jftzoo list-encoders 'clip*' --modality vision
    """
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
        stderr_console().print("No encoders match.")
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
    stdout_console().print(table)


@cli.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include jftzoo's built-in default plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_cmd(show_all: bool, as_json: bool) -> None:
    """Installed plugin distributions, their versions and hooks, and any load errors.

    Example: jftzoo plugins --all
    """
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
    console = stdout_console()
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
    """Embed texts or images with ENCODER and print the pooled vectors.

    Example: jftzoo embed minilm --text "what a day"
    """
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
    stdout_console().print(table)
