"""The `jftzoo` group: exit codes for jftzoo errors, and the consoles every command prints on."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console

from jftzoo.errors import JftzooError, UsageError
from jftzoo.version import __version__

CONTEXT = {"help_option_names": ["-h", "--help"]}


def stdout_console() -> Console:
    # Wide when piped, so tables are not cropped in files and CI logs.
    return Console(width=None if sys.stdout.isatty() else 200)


def stderr_console() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    stderr_console().print(f"[yellow]Warning:[/yellow] {message}", markup=True, highlight=False)


class JftzooGroup(click.Group):
    """Turns jftzoo's errors into exit codes: 2 for usage errors, 1 for runtime failures."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise click.UsageError(str(exc), ctx=_innermost(ctx, exc)) from exc
        except JftzooError as exc:
            stderr_console().print(f"[red]Error:[/red] {exc}", markup=True, highlight=False)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # `jftzoo ... | head`: the reader has all it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)
        except Exception as exc:
            if os.environ.get("JFTZOO_DEBUG"):
                raise
            from jftzoo.plugins import blame, describe

            culprit = blame(exc)
            whose = f"a bug in {describe(culprit)}, not in jftzoo" if culprit else "a bug in jftzoo or a plugin"
            stderr_console().print(
                f"[red]Internal error:[/red] {type(exc).__name__}: {exc}\n"
                f"This is {whose}; re-run with JFTZOO_DEBUG=1 for the traceback and report it.",
                markup=True,
                highlight=False,
            )
            ctx.exit(1)


def _innermost(ctx: click.Context, exc: BaseException) -> click.Context:
    """The context of the command that was running when `exc` was raised (`jftzoo results show`, not `jftzoo`),
    so a usage error raised by the library prints that command's usage line and points at its --help. Click has
    left those contexts by now; the traceback's frames still hold them (the deepest `ctx` is the command's)."""
    tb = exc.__traceback__
    while tb is not None:
        found = tb.tb_frame.f_locals.get("ctx")
        ctx = found if isinstance(found, click.Context) else ctx
        tb = tb.tb_next
    return ctx


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` was raised while an interrupt was being handled: a library's cleanup may fail because of
    it (zipfile's close, cut mid-write, raises ValueError with the KeyboardInterrupt as its context), and that
    is still the user's Ctrl-C, not a bug."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__  # type: ignore[assignment]
    return False


@contextlib.contextmanager
def interruptible(resume: Callable[[], str]) -> Iterator[None]:
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler, `kill`) stops the block at once: work finished so far is
    already on disk whole (records, predictions, trials), the task running is dropped, and the message
    says what is kept and how to go on (`resume()`); exit code 130."""
    import signal

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        before = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (e.g. inside a test runner's worker): Ctrl-C still works
        before = None
    try:
        yield
    except (KeyboardInterrupt, Exception) as exc:
        if not interrupted(exc):
            raise
        click.echo(f"\nstopped (interrupted). {resume()}", err=True)
        raise SystemExit(130) from None
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


@click.group(cls=JftzooGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="jftzoo")
def cli() -> None:
    """jftzoo: multimodal (image + text) sentiment classification by joint fine-tuning of two
    pre-trained encoders. Encoders come from plugins; `jftzoo list-encoders` shows them."""
    warnings.showwarning = _show_warning  # plugin problems: one clear line each on stderr
