"""The results store: one JSON line per finished (cell, fold, seed), appended atomically.

Each record is written with a single `write` of one line followed by `fsync`, so after a crash
(even `kill -9`) the file holds every finished record whole, plus at most one unfinished tail
line. Opening the store cuts that tail off (it was never a finished record), so the next run
appends after the last whole line and neither loses nor duplicates a record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jftzoo.errors import JftzooError

FILENAME = "results.jsonl"


class ResultStore:
    def __init__(self, directory: str | Path, filename: str = FILENAME) -> None:
        self.dir = Path(directory)
        self.path = self.dir / filename
        self.repaired_bytes = 0  # size of an unfinished tail line cut off on open

    def open(self) -> ResultStore:
        """Create the folder and cut an unfinished last line left by a killed run."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                with self.path.open("r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
                self.repaired_bytes = len(data) - end
        return self

    def records(self) -> list[dict[str, Any]]:
        return list(self._iter())

    def _iter(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    return  # an unfinished tail (a run still writing, or killed): not a record
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise JftzooError(
                        f"{self.path}:{lineno} is not a JSON record ({exc}); the store was edited by hand? "
                        "Move the file away to start a fresh store, or delete that line to re-run its cell."
                    ) from exc

    def done(self) -> set[str]:
        """Keys (`record_key`) of the finished records."""
        return {r["key"] for r in self._iter() if "key" in r}

    def append(self, record: dict[str, Any]) -> None:
        """One whole line, fsync'd. A full disk is a DiskFullError naming the file, and the part of the line
        that fitted is cut off again (truncating needs no space); a line torn by a kill is no record (no
        newline) and is cut off when the store is next opened."""
        from jftzoo.atomic import disk_full_is_clear

        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
        with disk_full_is_clear(self.path, "a result record"):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                while written < len(line):  # a short write: finish it, the line must be whole
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size)
                raise
            finally:
                os.close(fd)


def write_manifest(out_dir: str | Path, split: Any, notes: list[str] | None = None) -> tuple[str, str]:
    """The split manifest in the results folder, content-addressed (never overwritten by another
    split); returns (path relative to the results folder, digest). A manifest there that no longer holds
    this split (edited, truncated) is written again, and `notes` says so: the records name it."""
    from jftzoo.datasets.splits import read_split, write_split
    from jftzoo.errors import JftzooError

    digest = split.digest()
    relative = f"splits/{digest[:16]}.json"
    path = Path(out_dir) / relative
    if path.exists():
        try:
            if read_split(path).digest() == digest:
                return relative, digest
            problem = "holds another split"
        except JftzooError as exc:
            problem = str(exc).split(": ", 1)[-1] if "edited" not in str(exc) else "was edited after it was written"
        if notes is not None:
            notes.append(f"split manifest {path} {problem}; written again from the split this run uses "
                         f"(digest {digest[:16]}...), which its records name")
    write_split(split, path)
    return relative, digest
