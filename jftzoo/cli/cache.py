"""`jftzoo cache info|verify|clear|prune`: the cache of frozen embeddings and decoded images."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from jftzoo.cli.tables import consoles
from jftzoo.errors import UsageError


@click.group("cache", context_settings={"help_option_names": ["-h", "--help"]})
def cache_group() -> None:
    """The cache of frozen embeddings and decoded images ($JFTZOO_CACHE_DIR, default: the user cache folder).

    Example: jftzoo cache info
    """


def _namespaces() -> list[tuple[str, Any]]:
    """(kind, namespace info) for every kind of the files layout and the shards layout: what the cache holds."""
    from jftzoo.cache import KINDS, DiskCache
    from jftzoo.cache_shards import ShardedCache

    items: list[tuple[str, Any]] = [(kind, i) for kind in KINDS for i in DiskCache(kind=kind).info()]
    return items + [("embeddings (shards)", i) for i in ShardedCache().info()]


@cache_group.command("info")
@click.option("--json", "as_json", is_flag=True)
def cache_info_cmd(as_json: bool) -> None:
    """Where the cache is and what it holds, per kind and encoder fingerprint.

    Example: jftzoo cache info --json
    """
    from rich.table import Table

    from jftzoo.cache import DiskCache, cache_dir

    items = _namespaces()
    if as_json:
        click.echo(json.dumps({"path": str(DiskCache().root), "root": str(cache_dir()), "namespaces": [
            {"kind": kind, "encoder": i.encoder, "fingerprint": i.fingerprint, "entries": i.entries, "bytes": i.bytes}
            for kind, i in items]}, indent=2))
        return
    out, _ = consoles()
    out.print(f"cache: {cache_dir()}", highlight=False)
    table = Table("kind", "encoder", "fingerprint", "entries", "size")
    for kind, i in items:
        table.add_row(kind, i.encoder, i.fingerprint[:16], str(i.entries), f"{i.bytes / 2**20:.1f} MiB")
    out.print(table)
    total = sum(i.bytes for _, i in items)
    out.print(f"{sum(i.entries for _, i in items)} entries, {total / 2**20:.1f} MiB", highlight=False)


@cache_group.command("verify")
@click.option("--keep", is_flag=True, help="Only report: leave corrupt entries in place (runs refuse them anyway).")
@click.option("--json", "as_json", is_flag=True)
def cache_verify_cmd(keep: bool, as_json: bool) -> None:
    """Check every cached entry's checksum; delete the corrupt ones (recomputed when next needed) and the
    temporary files of interrupted writes. Exits 1 when it found a corrupt entry.

    Example: jftzoo cache verify
    """
    from jftzoo.cache import KINDS, DiskCache, cache_dir
    from jftzoo.cache_shards import ShardedCache

    report: dict[str, tuple[int, list[Any], list[Any]]] = {
        kind: DiskCache(kind=kind).verify(remove=not keep) for kind in KINDS}
    checked, damaged = ShardedCache().verify(remove=not keep)
    report["embeddings (shards)"] = (checked, damaged, [])
    bad = {kind: [str(p) for p in corrupt] for kind, (_, corrupt, _) in report.items()}
    if as_json:
        click.echo(json.dumps({"root": str(cache_dir()), "kinds": {
            kind: {"checked": n, "corrupt": bad[kind], "temporary_files": [str(p) for p in tmp]}
            for kind, (n, _, tmp) in report.items()}, "removed": not keep}, indent=2))
    else:
        out, _ = consoles()
        for kind, (n, corrupt, tmp) in report.items():
            out.print(f"{kind}: {n} entries checked, {len(corrupt)} corrupt, {len(tmp)} temporary file(s) of "
                      "interrupted writes", highlight=False)
            for path in corrupt:
                out.print(f"  corrupt: {path}" + ("" if keep else " (deleted; recomputed when next needed)"),
                          highlight=False)
            for path in tmp:  # never read as an entry, so not an error: only disk space to give back
                out.print(f"  temporary: {path}" + ("" if keep else " (deleted)"), highlight=False)
    if any(bad.values()):
        raise SystemExit(1)


@cache_group.command("clear")
@click.option("--encoder", help="Only this encoder's entries (its name or an alias).")
@click.option("--kind", type=click.Choice(["all", "embeddings", "decoded"]), default="all", show_default=True,
              help="Frozen embeddings, decoded images (--image-cache), or both.")
def cache_clear_cmd(encoder: str | None, kind: str) -> None:
    """Delete cached entries (they are recomputed when next needed).

    Example: jftzoo cache clear --encoder minilm
    """
    from jftzoo.cache import KINDS, DiskCache
    from jftzoo.cache_shards import ShardedCache

    if encoder is not None:
        encoder = _cached_name(encoder)
    entries = size = 0
    for each in KINDS if kind == "all" else (kind,):
        n, b = DiskCache(kind=each).clear(encoder)
        entries, size = entries + n, size + b
    if kind in ("all", "embeddings"):
        n, b = ShardedCache().clear(encoder)
        entries, size = entries + n, size + b
    _, err = consoles()
    err.print(f"removed {entries} entries ({size / 2**20:.1f} MiB)", highlight=False)


def _cached_name(name: str) -> str:
    """The name the cache files an encoder's entries under: an alias resolves to its encoder; a name neither
    registered nor in the cache is a usage error with the nearest names (a misspelt --encoder would otherwise
    remove nothing and say so quietly). A name only the cache knows (its plugin since removed) is kept."""
    from jftzoo.errors import JftzooError, suggest
    from jftzoo.registry import get_registry

    registry = get_registry()
    try:
        return registry.get(name).name
    except JftzooError:
        pass
    cached = {i.encoder for _, i in _namespaces()}
    if name in cached:
        return name
    close = suggest(name, [*registry.all_keys(), *sorted(cached)])
    raise UsageError(f"--encoder {name!r} is neither a known encoder nor in the cache"
                     + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "")
                     + " `jftzoo cache info` lists what the cache holds.")


@cache_group.command("prune")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Delete embeddings written longer ago than AGE: a number of days, or Nd / Nh / Nm.")
def cache_prune_cmd(older_than: str) -> None:
    """Delete cached embeddings older than AGE (both layouts; they are recomputed when next needed).

    Example: jftzoo cache prune --older-than 30d
    """

    from jftzoo.cache import DiskCache
    from jftzoo.cache_shards import ShardedCache

    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm]?)\s*", older_than)
    if found is None:
        raise UsageError(f"--older-than {older_than!r}: give a number of days, or Nd, Nh or Nm (e.g. 30d, 12h)")
    seconds = float(found.group(1)) * {"d": 86400, "": 86400, "h": 3600, "m": 60}[found.group(2)]
    removed = ShardedCache().prune(seconds) + DiskCache().prune(seconds)
    _, err = consoles()
    err.print(f"removed {removed} entries written more than {older_than} ago", highlight=False)


def register(cli: click.Group) -> None:
    cli.add_command(cache_group)
