"""The embedding cache in shards: one LMDB environment per (encoder, fingerprint) instead of one file per item.

Layout: `<root>/shards/<encoder>/<fingerprint>/{data.mdb,lock.mdb,meta.json}`. Why LMDB (the `lmdb` package, a
binding of the C library OpenLDAP uses): a million entries are two files, not a million; reads are memory-mapped
B+tree lookups (no open/close per item); writers in several processes on one machine are serialised by LMDB's
own lock, and a transaction is committed whole or not at all, so a killed writer never leaves a torn entry. Each
value carries the SHA-256 of its sizes and float32 payload, so a damaged page is detected and never served (a
fixed binary header rather than the per-file safetensors bytes: decoding is then a hash and a copy). LMDB needs
a local filesystem (its lock lives in shared memory): on a cluster each machine keeps its own cache directory
(see docs/scale.md).

Entries of the old per-file layout (`jftzoo.cache.DiskCache`) are read when a shard misses them and moved in,
so an existing cache is migrated as it is used, never silently lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from jftzoo.cache import DiskCache, NamespaceInfo, cache_dir, namespace, remove_namespaces
from jftzoo.features import Entry

MAP_SIZE = 1 << 40  # address space reserved per shard (1 TiB, sparse: disk is used only as entries are written)
BATCH = 256  # entries per write transaction: one commit (and fsync) per batch, not per item
_ENVS: dict[tuple[str, int], Any] = {}  # (path, pid) -> open environment: LMDB allows one per process


MAGIC = b"JFZ1"  # a jftzoo embedding entry, format 1
_HEAD = struct.Struct("<4sIIId32s")  # magic, D, token rows (NO_TOKENS: none), Dt, written (unix s), sha256
NO_TOKENS = 0xFFFFFFFF


def encode_entry(entry: Entry) -> bytes:
    """A fixed header (sizes, when it was written, the SHA-256 of sizes and payload) and the float32 payload:
    decoding is a hash and a copy, with no parsing (a shard read is dominated by it)."""
    pooled = entry.pooled.detach().to(torch.float32).contiguous()  # (D,)
    tokens = None if entry.tokens is None else entry.tokens.detach().to(torch.float32).contiguous()  # (n, Dt)
    rows, width = (NO_TOKENS, 0) if tokens is None else (tokens.shape[0], tokens.shape[1])
    payload = pooled.numpy().tobytes() + (b"" if tokens is None else tokens.numpy().tobytes())
    sizes = struct.pack("<III", pooled.shape[0], rows, width)
    return _HEAD.pack(MAGIC, pooled.shape[0], rows, width, time.time(), hashlib.sha256(sizes + payload).digest()) \
        + payload


def written_at(data: bytes) -> float | None:
    """When the entry was written (unix seconds), from its header; None when the header is damaged."""
    if len(data) < _HEAD.size or data[:4] != MAGIC:
        return None
    return float(_HEAD.unpack_from(data)[4])


def decode_entry(data: bytes) -> Entry | None:
    """The entry in `data` when its sizes and payload match its checksum; None when anything is damaged."""
    if len(data) < _HEAD.size or data[:4] != MAGIC:
        return None
    _, dim, rows, width, _, digest = _HEAD.unpack_from(data)
    payload = data[_HEAD.size :]
    n_tokens = 0 if rows == NO_TOKENS else rows * width
    if len(payload) != 4 * (dim + n_tokens) or hashlib.sha256(struct.pack("<III", dim, rows, width) + payload
                                                              ).digest() != digest:
        return None
    values = torch.frombuffer(bytearray(payload), dtype=torch.float32)  # one copy, owned by the tensors
    return Entry(values[:dim], None if rows == NO_TOKENS else values[dim:].view(rows, width))


class ShardedCache:
    """An `EntryCache` in LMDB shards; `corrupt` counts entries found damaged (deleted, then recomputed)."""

    def __init__(self, root: Path | None = None) -> None:
        self.base = root or cache_dir()
        self.root = self.base / "shards"
        self.legacy = DiskCache(self.base)  # the per-file layout, read and migrated on a miss
        self.corrupt: Counter[str] = Counter()
        self.migrated = 0
        self._pending: dict[str, dict[bytes, bytes]] = {}

    # -- the EntryCache protocol ---------------------------------------------------------------------------
    def namespace(self, encoder_name: str, fingerprint: str) -> str:
        return namespace(encoder_name, fingerprint)

    def describe(self, ns: str, meta: dict[str, Any]) -> None:
        path = self.root / ns / "meta.json"
        if not path.exists():
            from jftzoo.atomic import atomic_write

            atomic_write(path, (json.dumps(meta, indent=2, default=str) + "\n").encode())

    def get(self, ns: str, key: str, tokens: bool) -> Entry | None:
        raw = self._pending.get(ns, {}).get(key.encode())
        if raw is None:
            env = self._env(ns, create=False)
            if env is not None:
                with env.begin(buffers=True) as txn:
                    found = txn.get(key.encode())
                    raw = bytes(found) if found is not None else None
        if raw is None:
            return self._migrate(ns, key, tokens)
        entry = decode_entry(raw)
        if entry is None:  # damaged: never served; deleted so the caller's recomputed entry replaces it
            self.corrupt[ns.split("/", 1)[0]] += 1
            self._delete(ns, [key])
            return None
        if tokens and entry.tokens is None:
            return None
        return entry

    def put(self, ns: str, key: str, entry: Entry) -> None:
        pending = self._pending.setdefault(ns, {})
        pending[key.encode()] = encode_entry(entry)
        if len(pending) >= BATCH:
            self.flush(ns)

    def flush(self, ns: str | None = None) -> None:
        """Commit buffered entries (all namespaces, or one): whole transactions, so a kill loses at most the
        uncommitted batch, which is recomputed, never a torn entry."""
        import errno
        import shutil

        import lmdb

        from jftzoo.atomic import disk_full_is_clear
        from jftzoo.errors import JftzooError

        for name in [ns] if ns is not None else list(self._pending):
            batch = self._pending.pop(name, {})
            if not batch:
                continue
            env = self._env(name, create=True)
            path = self.root / name / "data.mdb"
            try:
                with env.begin(write=True) as txn:
                    for k, v in batch.items():
                        txn.put(k, v)
            except lmdb.Error as exc:  # the transaction was aborted whole: nothing partial is in the shard
                _ENVS.pop((str(self.root / name), os.getpid()), None)  # LMDB wants a fresh handle after this
                if shutil.disk_usage(path.parent).free < 2 * sum(map(len, batch.values())) + (1 << 20):
                    with disk_full_is_clear(path, "cache entries"):  # LMDB reports a full disk as EIO
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from exc
                raise JftzooError(f"cannot write the embedding cache shard {path}: {exc}. Nothing partial was kept; "
                                  "check the disk, or set JFTZOO_CACHE_LAYOUT=files (one file per entry), and run "
                                  "the same command again") from exc

    def __del__(self) -> None:  # entries still buffered when the store is dropped
        with contextlib.suppress(Exception):  # interpreter shutdown, a full disk: recomputed next time
            self.flush()

    # -- maintenance: info, verify, prune, clear ------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in self.root.glob("*/*/data.mdb"))

    def info(self) -> list[NamespaceInfo]:
        out = []
        for ns in self.namespaces():
            folder = self.root / ns
            try:
                meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {}
            env = self._env(ns, create=False)
            entries = env.stat()["entries"] if env is not None else 0
            size = sum(f.stat().st_blocks * 512 for f in folder.iterdir() if f.is_file())  # sparse: real usage
            out.append(NamespaceInfo(meta.get("encoder", ns.split("/")[0]), meta.get("fingerprint", ns.split("/")[1]),
                                     entries, size, folder))
        return out

    def _select(self, doomed: Callable[[bytes], bool], remove: bool) -> tuple[int, list[str]]:
        """Scan every entry of every shard: (entries seen, 'namespace/key' of those `doomed(value)` picks, deleted
        with `remove`)."""
        seen, picked = 0, []
        for ns in self.namespaces():
            env = self._env(ns, create=False)
            if env is None:
                continue
            with env.begin(buffers=True) as txn:
                keys = []
                for key, value in txn.cursor():
                    seen += 1
                    if doomed(bytes(value)):
                        keys.append(bytes(key).decode())
            picked += [f"{ns}/{k}" for k in keys]
            if remove:
                self._delete(ns, keys)
        return seen, picked

    def verify(self, remove: bool = True) -> tuple[int, list[str]]:
        """Check every entry's checksum: (entries checked, 'namespace/key' of the damaged ones, deleted
        with `remove`)."""
        return self._select(lambda value: decode_entry(value) is None, remove)

    def prune(self, older_than_s: float) -> int:
        """Delete entries written more than `older_than_s` seconds ago (or with a damaged header); returns how
        many."""
        cutoff = time.time() - older_than_s

        def old(value: bytes) -> bool:
            written = written_at(value[: _HEAD.size])
            return written is None or written < cutoff

        return len(self._select(old, remove=True)[1])

    def clear(self, encoder: str | None = None) -> tuple[int, int]:
        """Delete every shard (or one encoder's); returns (entries, bytes) removed."""
        removed = [i for i in self.info() if encoder is None or i.encoder == encoder]
        for item in removed:
            env = _ENVS.pop((str(item.path), os.getpid()), None)
            if env is not None:
                env.close()
        return remove_namespaces(removed)

    # -- internals ---------------------------------------------------------------------------------------------
    def _env(self, ns: str, create: bool) -> Any:
        handle = (str(self.root / ns), os.getpid())  # an environment must not cross fork(): reopen in a child
        env = _ENVS.get(handle)
        if env is None:
            import lmdb

            path = self.root / ns
            if not create and not (path / "data.mdb").exists():
                return None
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(str(path), map_size=MAP_SIZE, max_readers=1024, metasync=False, readahead=False)
            _ENVS[handle] = env
        return env

    def _delete(self, ns: str, keys: list[str]) -> None:
        if not keys:
            return
        env = self._env(ns, create=False)
        if env is None:
            return
        with env.begin(write=True) as txn:
            for key in keys:
                txn.delete(key.encode())

    def _migrate(self, ns: str, key: str, tokens: bool) -> Entry | None:
        """A miss in the shard: take the entry from the old per-file layout if it is there and whole."""
        entry = self.legacy.get(ns, key, tokens=False)  # checksum-checked; a damaged file is counted and deleted
        self.corrupt.update(self.legacy.corrupt)
        self.legacy.corrupt.clear()
        if entry is None:
            return None
        self.put(ns, key, entry)
        self.flush(ns)  # committed before the file goes: never lost in between
        self.legacy._path(ns, key).unlink(missing_ok=True)
        self.migrated += 1
        return None if tokens and entry.tokens is None else entry
