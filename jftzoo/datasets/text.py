"""Decoding text files whose encoding nobody recorded (MVSA's tweets mix UTF-8 with legacy 8-bit)."""

from __future__ import annotations

from pathlib import Path

# Tried in order; Latin-1 maps every byte, so decoding never fails and no record is lost.
FALLBACK_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def decode_bytes(data: bytes) -> tuple[str, str]:
    """(text, encoding used): UTF-8 first, then Windows-1252, then Latin-1."""
    for encoding in FALLBACK_ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def read_text(path: Path) -> tuple[str, str]:
    text, encoding = decode_bytes(path.read_bytes())
    return text.strip(), encoding
