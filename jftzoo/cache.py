"""The on-disk embedding cache: frozen encoder outputs shared by every run on this machine.

Layout: `<root>/embeddings/<encoder>/<fingerprint>/<key[:2]>/<key>.safetensors`, where the
fingerprint names the encoder's weights and preprocessing and the key names the item's content
(`jftzoo.features`). Each file carries a SHA-256 of its tensors, so a corrupt or truncated entry
is detected, deleted and recomputed instead of poisoning a result. Writes go to a temporary file
renamed into place, so a killed run never leaves a half-written entry under a real name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jftzoo.atomic import atomic_write
from jftzoo.digests import hash_tensors
from jftzoo.features import Entry

FORMAT = "jftzoo-embedding/1"


def cache_dir() -> Path:
    """`$JFTZOO_CACHE_DIR`, else the user cache directory (e.g. ~/.cache/jftzoo on Linux)."""
    env = os.environ.get("JFTZOO_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("jftzoo", appauthor=False))


def namespace(encoder_name: str, fingerprint: str) -> str:
    """`<encoder>/<fingerprint[:24]>`: one folder per encoder and what it computes, for every cache kind."""
    return f"{_safe(encoder_name)}/{fingerprint[:24]}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


@dataclass
class NamespaceInfo:
    encoder: str
    fingerprint: str
    entries: int
    bytes: int
    path: Path


def remove_namespaces(removed: list[NamespaceInfo]) -> tuple[int, int]:
    """Delete these namespace folders (and an encoder folder left empty); returns (entries, bytes) removed."""
    for item in removed:
        shutil.rmtree(item.path, ignore_errors=True)
        parent = item.path.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    return sum(i.entries for i in removed), sum(i.bytes for i in removed)


KINDS = ("embeddings", "decoded")  # frozen encoder outputs; decoded images (jftzoo.decoded), same layout


def read_checked(path: Path) -> tuple[dict[str, str], dict[str, Any]] | None:
    """(metadata, tensors) of a cache file whose tensors match the SHA-256 in its metadata; None when it is
    truncated, unreadable or altered. Every cache kind writes that checksum, so one check serves them all."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception:  # truncated or foreign bytes: safetensors raises several types
        return None
    if not tensors or meta.get("sha256") != hash_tensors(sorted(tensors.items())):
        return None
    return meta, tensors


class DiskCache:
    """An `EntryCache` on disk; `corrupt` counts entries found broken (and recomputed).

    `kind="decoded"` opens the decoded-image cache's folder, for `info` and `clear` only."""

    def __init__(self, root: Path | None = None, kind: str = "embeddings") -> None:
        self.root = (root or cache_dir()) / kind
        self.corrupt: Counter[str] = Counter()
        self._described: set[str] = set()

    def namespace(self, encoder_name: str, fingerprint: str) -> str:
        return namespace(encoder_name, fingerprint)

    def _path(self, namespace: str, key: str) -> Path:
        return self.root / namespace / key[:2] / f"{key}.safetensors"

    def describe(self, namespace: str, meta: dict[str, Any]) -> None:
        """Write the namespace's meta.json once, so `jftzoo cache info` can name what is stored."""
        if namespace in self._described:
            return
        path = self.root / namespace / "meta.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._atomic_write(path, (json.dumps(meta, indent=2, default=str) + "\n").encode())
        self._described.add(namespace)

    def get(self, namespace: str, key: str, tokens: bool) -> Entry | None:
        path = self._path(namespace, key)
        if not path.exists():
            return None
        checked = read_checked(path)
        if checked is None or checked[0].get("format") != FORMAT or "pooled" not in checked[1]:
            self.corrupt[namespace.split("/", 1)[0]] += 1  # truncated, corrupt, or another format: recompute
            path.unlink(missing_ok=True)
            return None
        tensors = checked[1]
        if tokens and "tokens" not in tensors:
            return None  # stored without tokens; the caller recomputes and stores both
        return Entry(tensors["pooled"], tensors.get("tokens"))

    def put(self, namespace: str, key: str, entry: Entry) -> None:
        from safetensors.torch import save

        tensors = {"pooled": entry.pooled.contiguous()}
        if entry.tokens is not None:
            tensors["tokens"] = entry.tokens.contiguous()
        data = save(tensors, metadata={"format": FORMAT, "sha256": hash_tensors(sorted(tensors.items()))})
        path = self._path(namespace, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(path, data)

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        atomic_write(path, data, durable=False)  # entries carry a checksum: a torn one is recomputed

    # -- jftzoo cache info | clear -----------------------------------------------------------------
    def info(self) -> list[NamespaceInfo]:
        out = []
        if not self.root.is_dir():
            return out
        for enc_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for ns in sorted(p for p in enc_dir.iterdir() if p.is_dir()):
                files = list(ns.glob("*/*.safetensors"))
                meta_path = ns / "meta.json"
                try:
                    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
                except ValueError:
                    meta = {}
                out.append(NamespaceInfo(meta.get("encoder", enc_dir.name), meta.get("fingerprint", ns.name),
                                         len(files), sum(f.stat().st_size for f in files), ns))
        return out

    def verify(self, remove: bool = True) -> tuple[int, list[Path], list[Path]]:
        """Check every entry's SHA-256 against its tensors: (entries checked, corrupt entries, leftover
        temporary files of interrupted writes). With `remove`, both are deleted: a corrupt entry is
        recomputed when next needed, never served (`get` would refuse it too)."""
        checked, corrupt = 0, []
        if not self.root.is_dir():
            return 0, [], []
        for path in sorted(self.root.glob("*/*/*/*.safetensors")):
            if path.name.startswith(".tmp-"):
                continue
            checked += 1
            if read_checked(path) is None:
                corrupt.append(path)
        leftovers = sorted(self.root.glob("*/*/*/.tmp-*"))
        if remove:
            for path in corrupt + leftovers:
                path.unlink(missing_ok=True)
        return checked, corrupt, leftovers

    def prune(self, older_than_s: float) -> int:
        """Delete entries last written more than `older_than_s` seconds ago; returns how many."""
        import time

        cutoff, removed = time.time() - older_than_s, 0
        for path in self.root.glob("*/*/*/*.safetensors") if self.root.is_dir() else []:
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def clear(self, encoder: str | None = None) -> tuple[int, int]:
        """Delete every entry (or one encoder's); returns (entries, bytes) removed."""
        return remove_namespaces([i for i in self.info() if encoder is None or i.encoder == encoder])
