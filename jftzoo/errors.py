"""Exceptions jftzoo raises on purpose, so callers (and the CLI) can tell user mistakes from bugs."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class JftzooError(Exception):
    """Base class: a failure the user can act on; the CLI prints its message, never a traceback."""

    exit_code = 1


class UsageError(JftzooError):
    """The request itself is wrong (a bad name or option): the CLI exits 2."""

    exit_code = 2


class UnknownEncoderError(UsageError, KeyError):
    """No registered encoder has that name or alias."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.suggestions = suggest(name, known)
        hint = f" Did you mean {' or '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        super().__init__(
            f"Unknown encoder {name!r}.{hint} Run `jftzoo list-encoders` to see every registered encoder."
        )

    def __str__(self) -> str:  # KeyError would quote the whole message otherwise
        return str(self.args[0])


class WeightsUnavailableError(JftzooError):
    """Pre-trained weights could not be found or fetched; the message lists every way to provide them."""


class WeightsIntegrityError(JftzooError):
    """A weight file does not have the checksum jftzoo expects: it is corrupt or not what it claims."""


class WeightsWarning(UserWarning):
    """Pre-trained weights were asked for but part of the model was not in the checkpoint: those parts are random."""


class TokenizerUnavailableError(JftzooError):
    """The encoder was built, but its tokenizer files are not available offline."""


class BadInputError(JftzooError):
    """An input item (text, image file) cannot be used; the message names the item and why."""


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Closest valid names, case-insensitively, for 'did you mean' hints."""
    known = list(dict.fromkeys(known))
    lowered = {k.lower(): k for k in known}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    prefixed = [k for k in lowered if k.startswith(name.lower()) and k not in matches]
    return [lowered[m] for m in (matches + prefixed)[:n]]
