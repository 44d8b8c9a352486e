"""Which embedding cache a run opens: `$JFTZOO_CACHE_LAYOUT` picks the LMDB shards or one file per entry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jftzoo.cache import DiskCache

LAYOUTS = ("shards", "files")  # the embedding cache: LMDB shards (jftzoo.cache_shards), or one file per entry
LAYOUT_ENV = "JFTZOO_CACHE_LAYOUT"


def cache_layout() -> str:
    """`$JFTZOO_CACHE_LAYOUT`: `shards` (default; local disks) or `files` (one file per entry, written by atomic
    rename, which a shared filesystem such as NFS handles where LMDB's lock does not)."""
    from jftzoo.errors import UsageError

    layout = os.environ.get(LAYOUT_ENV, "shards").strip().lower()
    if layout not in LAYOUTS:
        raise UsageError(f"{LAYOUT_ENV}={layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout


def embedding_cache(root: Path | None = None, layout: str | None = None) -> Any:
    """The embedding cache in the configured layout (`shards` also reads, and moves in, what `files` left)."""
    if (layout or cache_layout()) == "shards":
        from jftzoo.cache_shards import ShardedCache  # lmdb is imported only when a shard opens

        return ShardedCache(root)
    return DiskCache(root)


def cache_location(cache: Any) -> tuple[str, str]:
    """(layout, root folder) of an open embedding cache, so another process (a Ray worker) opens the same one
    with `embedding_cache(Path(root), layout)`."""
    if isinstance(cache, DiskCache):
        return "files", str(cache.root.parent)  # DiskCache's root is <root>/embeddings
    return "shards", str(cache.base)
