"""One writer per results folder: `jftzoo bench` holds an OS file lock (filelock) on `OUT/.jftzoo.lock`
while it runs, so two runs on one `--out` never interleave or duplicate records.

The lock is the operating system's (flock), so it dies with its process: a killed run never leaves a
stale lock behind. Beside it, `.jftzoo.lock.json` names the holder (pid, host, start, command) for the
message the second run prints; it is only read while the lock is really held.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jftzoo.errors import JftzooError

LOCK = ".jftzoo.lock"
HOLDER = ".jftzoo.lock.json"


class StoreBusyError(JftzooError):
    """Another run holds the results folder (exit 1); the message names it and what to do."""


def holder(out_dir: str | Path) -> dict[str, Any]:
    """Who holds the folder, as its holder wrote it ({} when unknown)."""
    try:
        return json.loads((Path(out_dir) / HOLDER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _describe(info: dict[str, Any]) -> str:
    if not info:
        return "another process (it did not say which)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid')} on host {info.get('host')} (since {since}: {info.get('command', '?')})"


@contextlib.contextmanager
def results_lock(out_dir: str | Path, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the results folder for the block. Held elsewhere: StoreBusyError naming the holder, or
    with `wait`, `on_wait(who)` and block until it is free."""
    from filelock import FileLock, Timeout

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = _describe(holder(out))
        if not wait:
            raise StoreBusyError(
                f"{out} is in use by another jftzoo bench: {who}. It writes there until it ends; pass --wait to "
                "run after it (wait=True in Python), or give another --out.") from None
        if on_wait is not None:
            on_wait(who)
        lock.acquire(timeout=-1)
    try:
        from jftzoo.atomic import atomic_write

        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:300]}
        atomic_write(out / HOLDER, (json.dumps(info) + "\n").encode(), durable=False)
        yield
    finally:
        (out / HOLDER).unlink(missing_ok=True)
        lock.release()
