"""Whole-or-nothing file writes: a temporary file in the same folder, fsync'd, renamed into place.

A reader (or a run after a crash) sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from jftzoo.errors import JftzooError

FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, disk quota exceeded


class DiskFullError(JftzooError):
    """A write ran out of space; the message names the file, and nothing partial was kept as valid."""


def _errno(exc: Exception) -> int | None:
    """An OSError's errno, or the one in a Rust library's message (tokenizers: "... (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.errno
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


@contextlib.contextmanager
def disk_full_is_clear(path: Path, what: str) -> Iterator[None]:
    """Turn ENOSPC / EDQUOT while writing `path` into a DiskFullError naming it and what to do."""
    try:
        yield
    except Exception as exc:
        code = _errno(exc)
        if code not in FULL:
            raise
        raise DiskFullError(
            f"no space left on the device holding {path} while writing {what} ({os.strerror(code)}). "
            "Nothing partial was kept: free some space (or point the output elsewhere) and run the same "
            "command again (a bench or a tune resumes from its finished work; a train starts over).") from None


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """`durable=False` skips the fsync: for many small entries that carry their own checksum (the
    embedding cache), where a lost entry after power loss is recomputed, not trusted. A full disk is a
    DiskFullError naming `path`; the temporary file is removed and `path` keeps its old content."""
    path = Path(path)
    with disk_full_is_clear(path, "a file"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_directory(path: Path, write: Callable[[Path], None]) -> None:
    """Write a folder whole or not at all: `write(tmp)` fills a temporary sibling, which then replaces `path`
    (for files a library writes itself, such as a tokenizer's). A full disk is a DiskFullError naming `path`."""
    import shutil

    path = Path(path)
    with disk_full_is_clear(path, "a folder"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-"))
        old = path.with_name(f".tmp-old-{path.name}-{os.getpid()}")
        try:
            write(tmp)
            if path.exists():
                os.replace(path, old)  # two renames: the window without `path` is one rename long
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
