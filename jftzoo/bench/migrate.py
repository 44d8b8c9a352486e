"""Re-keying a results store's records from key scheme 1 to the current one (`grid.KEY_SCHEME`).

Scheme 1 hashed each encoder's library versions (torch, transformers, timm, tokenizers, Pillow) into the
configuration, so a record made on a lent GPU machine, whose torch differs, could neither resume a CPU bench nor
join its row: one configuration's seeds became two rows. Scheme 2 names an encoder by its weights and
preprocessing only, and each record keeps the library versions it ran under (`libraries`).

A record is re-keyed only after two checks: its key must rebuild from its own fields (cell, protocol, jftzoo
version, fingerprints, training configuration, split, fold, seed), and each encoder fingerprint it names must be
this machine's encoder (the same weights and preprocessing) described under some library versions: this
machine's, the record's own, or ones the caller names (another machine's, e.g. `torch=2.11.0,tokenizers=0.23.2`).
A record that fails either check is left exactly as it was and reported; none is dropped. Two records that turn
out to be the same task (the same seed run on two machines) keep the earlier; the later moves, whole, to
`results.superseded.jsonl` beside the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jftzoo.bench.grid import KEY_SCHEME, Cell, config_hash, record_key
from jftzoo.errors import JftzooError, UsageError

SUPERSEDED = "results.superseded.jsonl"


@dataclass
class MigrateReport:
    migrated: int = 0  # records re-keyed
    current: int = 0  # records already under the current scheme
    superseded: list[str] = field(default_factory=list)  # old keys moved to SUPERSEDED (a task stored twice)
    unverified: list[tuple[str, str]] = field(default_factory=list)  # (old key, why it was left as it was)
    environments: dict[str, dict[str, str | None]] = field(default_factory=dict)  # old key -> versions that matched


def parse_environment(text: str) -> dict[str, str]:
    """`torch=2.11.0,tokenizers=0.23.2` -> {"torch": "2.11.0", "tokenizers": "0.23.2"} (libraries checked)."""
    from jftzoo.features import PREPROCESSING_LIBRARIES

    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, version = part.partition("=")
        if not sep or not version:
            raise UsageError(f"--environment {text!r}: {part!r} is not NAME=VERSION (e.g. torch=2.11.0)")
        if name not in PREPROCESSING_LIBRARIES:
            import difflib

            near = difflib.get_close_matches(name, PREPROCESSING_LIBRARIES, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise UsageError(f"--environment {text!r}: {name!r} is not one of {', '.join(PREPROCESSING_LIBRARIES)}"
                             f"{hint}")
        out[name] = version
    return out


def _candidates(record: Mapping[str, Any], here: dict[str, str | None],
                environments: Iterable[Mapping[str, str]]) -> list[dict[str, str | None]]:
    """Library versions the record may have run under: this machine's, the record's own, and each given set
    laid over those (a record's `versions` hold torch as `torch.__version__`, metadata may lack the local tag)."""
    own = {k: v for k, v in (record.get("versions") or {}).items() if k in here}
    bases = [dict(here), {**here, **own}]
    if own.get("torch") and "+" in own["torch"]:
        bases.append({**here, **own, "torch": own["torch"].split("+")[0]})
    if record.get("libraries"):
        bases.append(dict(record["libraries"]))
    out = list(bases)
    for env in environments:
        out += [{**base, **env} for base in bases]
    return out


class _Models:
    """This machine's encoders, each described once (building and hashing weights takes seconds)."""

    def __init__(self) -> None:
        from jftzoo.bench.cells import Encoders
        from jftzoo.bench.grid import BenchConfig

        self.encoders = Encoders(BenchConfig(random_init=True))
        self.described: dict[str, dict[str, Any] | str] = {}

    def describe(self, name: str) -> dict[str, Any] | str:
        """The encoder's `describe_model`, or why it cannot be built here."""
        from jftzoo.features import describe_model

        if name not in self.described:
            try:
                self.described[name] = describe_model(self.encoders.get(name))
            except JftzooError as exc:
                self.described[name] = f"encoder {name} cannot be built here ({str(exc).splitlines()[0]})"
        return self.described[name]


def _rekey(record: dict[str, Any], models: _Models, here: dict[str, str | None],
           environments: list[dict[str, str]]) -> tuple[dict[str, Any], dict[str, str | None]] | str:
    """The record under the current scheme and the library versions that matched, or why it cannot be."""
    from jftzoo.features import fingerprint_of

    try:
        cell = Cell(**{f.name: record[f.name] for f in fields(Cell)})
        old = {"jftzoo": record["jftzoo_version"], "encoders": record["fingerprints"], "train": record["train_config"]}
        split, protocol = record["split"], record["protocol"]
        rebuilt = record_key(cell, protocol, old, split["digest"], record["fold"], record["seed"])
    except (KeyError, TypeError) as exc:
        return f"it lacks a field its key is made of ({exc})"
    if rebuilt != record["key"] or config_hash(cell, protocol, old) != record.get("config_hash"):
        return "its key does not rebuild from its fields (edited by hand?)"
    if (record["train_config"] or {}).get("frozen_backend", "pytorch") != "pytorch":
        return "it read frozen features from another runtime; run its cell again"
    identities: dict[str, str] = {}
    matched: dict[str, str | None] = {}
    for name, fingerprint in sorted(record["fingerprints"].items()):
        model = models.describe(name)
        if isinstance(model, str):
            return model
        found = next((libs for libs in _candidates(record, here, environments)
                      if fingerprint_of({**model, "libraries": libs}) == fingerprint), None)
        if found is None:
            return (f"encoder {name}'s fingerprint {fingerprint[:12]} is not this machine's {name} under any library "
                    "versions tried (other weights or preprocessing, or name that machine's versions with "
                    "--environment)")
        identities[name] = fingerprint_of(model)
        matched = found
    new = {"jftzoo": record["jftzoo_version"], "encoders": identities, "train": record["train_config"]}
    out = {**record, "key": record_key(cell, protocol, new, split["digest"], record["fold"], record["seed"]),
           "config_hash": config_hash(cell, protocol, new), "fingerprints": identities, "key_scheme": KEY_SCHEME,
           "migrated_from": {"key": record["key"], "config_hash": record.get("config_hash"),
                             "fingerprints": record["fingerprints"]}}
    if matched:
        out["libraries"] = matched
    return out, matched


def migrate_store(results: str | Path, environments: Iterable[Mapping[str, str]] = (), dry_run: bool = False,
                  wait: bool = False) -> MigrateReport:
    """Re-key `results`' scheme-1 records (see the module docstring); `dry_run` checks and reports only."""
    from jftzoo.atomic import atomic_write
    from jftzoo.bench.lock import results_lock
    from jftzoo.bench.store import FILENAME, ResultStore
    from jftzoo.features import library_versions

    store = ResultStore(results)
    if not store.path.is_file():
        raise UsageError(f"no results store at {store.path}: point --results at a folder holding {FILENAME}")
    envs = [dict(e) for e in environments]
    report = MigrateReport()
    with results_lock(results, wait=wait):
        records = store.open().records()
        models: _Models | None = None
        here = library_versions()
        kept: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        keys: set[str] = {r["key"] for r in records if r.get("key_scheme", 1) >= KEY_SCHEME and "key" in r}
        for record in records:
            if record.get("key_scheme", 1) >= KEY_SCHEME:
                report.current += 1
                kept.append(record)
                continue
            models = models or _Models()
            outcome = _rekey(record, models, here, envs)
            if isinstance(outcome, str):
                report.unverified.append((str(record.get("key")), outcome))
                kept.append(record)
                continue
            new, matched = outcome
            report.environments[record["key"]] = matched
            if new["key"] in keys:
                report.superseded.append(record["key"])
                moved.append(record)
                continue
            keys.add(new["key"])
            report.migrated += 1
            kept.append(new)
        if dry_run or not (report.migrated or moved):
            return report
        if moved:  # first, so a crash between the two writes leaves a record in both files, never in neither
            side = store.dir / SUPERSEDED
            before = side.read_bytes() if side.is_file() else b""
            atomic_write(side, before + b"".join((json.dumps(r, sort_keys=True) + "\n").encode() for r in moved))
        atomic_write(store.path, b"".join((json.dumps(r, sort_keys=True, default=str) + "\n").encode()
                                          for r in kept))
    return report
