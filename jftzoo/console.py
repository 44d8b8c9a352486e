"""rich output helpers: the only place outside the CLI that draws on the terminal, and only on request."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def stderr_console() -> Console:
    return Console(stderr=True)


class _EmbedProgress:
    def __init__(self, name: str, total: int) -> None:
        self._progress = Progress(
            TextColumn(f"embedding with {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr_console(),
            transient=True,
            disable=not sys.stderr.isatty(),
        )
        self._task = self._progress.add_task("embed", total=total)
        self._progress.start()

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        self._progress.stop()


def embed_progress(name: str, total: int) -> _EmbedProgress:
    """A progress bar on stderr for `Encoder.embed(show_progress=True)`; silent when not on a TTY."""
    return _EmbedProgress(name, total)
