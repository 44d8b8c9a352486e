"""Records, problems and loaded datasets: the data every reader returns."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jftzoo.errors import JftzooError

_DIGESTS: dict[tuple[str, int, int, bytes], str] = {}


def file_digest(path: Path, salt: bytes = b"") -> str:
    """SHA-256 of `salt` + a file's bytes, remembered while its size and mtime stay the same (a
    dataset's checksum, its duplicate groups and the feature and prefix caches' keys all need every
    image's digest, so each file is read once per process)."""
    st = path.stat()
    memo = (str(path), st.st_mtime_ns, st.st_size, salt)
    if memo not in _DIGESTS:
        _DIGESTS[memo] = hashlib.sha256(salt + path.read_bytes()).hexdigest()
    return _DIGESTS[memo]


MODALITIES = ("text", "vision")


def is_absent(item: Any) -> bool:
    """Whether an input item stands for "this post has none of that modality": None, or a text that is
    empty or only whitespace. Absent is data, not an error: the model reads it as its learned
    "missing" embedding (jftzoo.fusion.heads.FusionHead)."""
    return item is None or (isinstance(item, str) and not item.strip())


@dataclass(frozen=True)
class Record:
    """One post with its label; `text` may be empty and `image` None (a post without that modality)."""

    id: str
    text: str
    image: Path | None
    label: str
    origin: str = ""  # where the text came from (a file, or manifest:row), for reports

    @property
    def has_text(self) -> bool:
        return not is_absent(self.text)

    @property
    def has_image(self) -> bool:
        return self.image is not None

    def item(self, modality: str) -> Any:
        """What the `modality` ("text" or "vision") encoder reads for this post, or None when it has none."""
        if modality == "text":
            return self.text if self.has_text else None
        return self.image


@dataclass(frozen=True)
class Problem:
    """Why a record (or a manifest row) cannot be used."""

    record_id: str | None
    file: str
    reason: str

    def __str__(self) -> str:
        who = f"record {self.record_id}" if self.record_id is not None else "dataset"
        return f"{who}: {self.file}: {self.reason}"


class BadDataError(JftzooError):
    """Bad records were found under `--on-bad error`; the message lists every one."""

    what = "bad record(s)"
    hint = ("Fix them, or pass --on-bad skip (on_bad='skip') to leave them out; skipped records are listed in the "
            "report.")

    def __init__(self, dataset: str, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} {self.what} in {dataset}:\n{shown}{more}\n{self.hint}")


@dataclass
class Dataset:
    """A loaded dataset: usable records, plus everything that was left out and why."""

    name: str
    root: Path
    labels: tuple[str, ...]
    records: list[Record]
    skipped: list[Problem] = field(default_factory=list)  # bad records left out (--on-bad skip)
    dropped: dict[str, int] = field(default_factory=dict)  # left out by the label policy, by reason
    notes: list[str] = field(default_factory=list)  # e.g. how many texts needed a legacy decoding
    splits: dict[str, list[str]] = field(default_factory=dict)  # official splits: name -> ids
    license: str = ""

    def __len__(self) -> int:
        return len(self.records)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(r.label for r in self.records)
        return {label: counts.get(label, 0) for label in self.labels}

    def checksum(self) -> str:
        """SHA-256 over every record (id, label, text, image bytes) in id order: names the exact data."""
        digest = hashlib.sha256()
        for r in sorted(self.records, key=lambda r: r.id):
            image = file_digest(r.image) if r.image is not None else "-"
            text = hashlib.sha256(r.text.encode("utf-8")).hexdigest()
            digest.update(f"{r.id}\t{r.label}\t{text}\t{image}\n".encode())
        return digest.hexdigest()

    def subset(self, records: list[Record]) -> Dataset:
        """The same dataset (name, label set, licence) restricted to some of its records."""
        return replace(self, records=list(records))

    def missing_counts(self) -> dict[str, int]:
        """How many records have no text and how many no image (kept as data, `--on-missing keep`)."""
        return {"text": sum(not r.has_text for r in self.records),
                "image": sum(not r.has_image for r in self.records)}

    def by_id(self) -> dict[str, Record]:
        return {r.id: r for r in self.records}
