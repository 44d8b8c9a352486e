"""Joining results stores: records made elsewhere (a lent GPU machine, a cluster node, a second bench
with its own --out while the first held the store) moved into one store, so that one table and the
paired comparisons read them together.

A record keeps its key, configuration hash and everything it says about where it was made (device,
machine, library versions); merging never edits one. What travels with a record is checked before
anything is written: its predictions file must match the digest the record names, and its split
manifest must hold the split the record names, in the source and, if already there, in the
destination (two different splits under one manifest name would make paired comparisons lie).
Records whose key the destination already holds are skipped, so merging twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jftzoo.bench.grid import KEY_SCHEME
from jftzoo.errors import JftzooError


@dataclass
class MergeReport:
    merged: list[str] = field(default_factory=list)  # keys appended to the destination
    already: int = 0  # records the destination held already (same key)
    manifests: list[str] = field(default_factory=list)  # split manifests copied (relative paths)
    predictions: int = 0  # prediction files copied
    legacy: int = 0  # merged records under an earlier key scheme (`jftzoo results migrate` re-keys them)


def _manifest_digest(path: Path, seen: dict[Path, str]) -> str:
    """The split a manifest holds (parsed once per merge: many records name the same manifest)."""
    from jftzoo.datasets.splits import read_split

    if path not in seen:
        seen[path] = read_split(path).digest()
    return seen[path]


def _check(source: Path, dest: Path, record: dict[str, Any], lineno: int,
           digests: dict[Path, str]) -> tuple[bytes | None, str | None]:
    """The record's predictions bytes (checked) and its manifest's relative path (checked), or a JftzooError
    naming the record, the file and what to do."""
    from jftzoo.bench.predictions import predictions_bytes

    where = f"{source / 'results.jsonl'} line {lineno} (record {str(record.get('key'))[:12]})"
    data = None
    if record.get("predictions"):
        try:
            data = predictions_bytes(source, record)
        except JftzooError as exc:
            raise JftzooError(f"{where}: {exc} (made on another machine: copy the whole source folder again, "
                              "predictions/ included, and merge again)") from exc
    manifest = (record.get("split") or {}).get("manifest")
    if manifest:
        digest = record["split"].get("digest")
        src = source / manifest
        if not src.is_file():
            raise JftzooError(f"{where}: its split manifest {src} is missing; copy the source's splits/ folder too")
        if _manifest_digest(src, digests) != digest:
            raise JftzooError(f"{where}: {src} does not hold the split the record names (digest {str(digest)[:16]})")
        there = dest / manifest
        if there.is_file() and _manifest_digest(there, digests) != digest:
            raise JftzooError(f"{where}: {there} in the destination holds another split than the record's "
                              f"{str(digest)[:16]}; these stores cannot be merged")
    return data, manifest


def merge_store(source: str | Path, dest: str | Path, wait: bool = False,
                on_wait: Callable[[str], None] | None = None) -> MergeReport:
    """Append `source`'s records that `dest` lacks, with their predictions and split manifests, under
    `dest`'s lock (a bench writing there: StoreBusyError, or with `wait` block until it ends). Every
    record to move is checked before the first is written, so a bad source changes nothing."""
    from jftzoo.atomic import atomic_write
    from jftzoo.bench.lock import results_lock
    from jftzoo.bench.store import FILENAME, ResultStore

    src, dst = Path(source), Path(dest)
    if src.resolve() == dst.resolve():
        raise JftzooError(f"{src} is the destination itself; give another store to merge from")
    store = ResultStore(src)
    if not store.path.is_file():
        raise JftzooError(f"no results store at {store.path}: point at a folder holding {FILENAME}")
    records = store.records()
    report = MergeReport()
    with results_lock(dst, wait=wait, on_wait=on_wait):
        target = ResultStore(dst).open()
        have = target.done()
        todo: list[tuple[dict[str, Any], bytes | None, str | None]] = []
        seen: set[str] = set()
        digests: dict[Path, str] = {}
        for lineno, record in enumerate(records, 1):
            key = record.get("key")
            if not key:
                raise JftzooError(f"{store.path} line {lineno} has no key: not a jftzoo bench record")
            if key in have or key in seen:
                report.already += key in have
                continue
            seen.add(key)
            data, manifest = _check(src, dst, record, lineno, digests)
            todo.append((record, data, manifest))
        for record, data, manifest in todo:  # manifest and predictions first: a record never names a missing file
            if manifest and not (dst / manifest).is_file():
                atomic_write(dst / manifest, (src / manifest).read_bytes())
                report.manifests.append(manifest)
            if data is not None:
                atomic_write(dst / record["predictions"]["file"], data)
                report.predictions += 1
            target.append(record)
            report.merged.append(record["key"])
            report.legacy += record.get("key_scheme", 1) < KEY_SCHEME
    return report
