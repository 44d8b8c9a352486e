"""Finding bad records: every problem is reported with the record id, the file and the reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from jftzoo.datasets.records import BadDataError, Dataset, Problem, Record
from jftzoo.images import decode

ON_BAD = ("error", "skip")
ON_MISSING = ("keep", "skip", "error")  # posts without text or without an image: data (keep) by default


def resolve_inside(
    root: Path, relative: str, record_id: str | None, file: str
) -> tuple[Path | None, Problem | None]:
    """A path under `root`, or a problem if it is absolute or escapes the dataset root."""
    if not relative:
        return None, Problem(record_id, file, "empty image path")
    if "://" in relative:
        return None, Problem(record_id, file, f"image path {relative!r} is a URL; jftzoo reads local files only "
                             "(download the images and name them relative to the data root)")
    if "\x00" in relative:
        return None, Problem(record_id, file, f"image path {relative!r} contains a NUL byte")
    if Path(relative).is_absolute():
        return None, Problem(record_id, file, f"image path {relative!r} is absolute; use a path relative to {root}")
    try:
        path = (root / relative).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a symlink loop, a name the OS refuses
        return None, Problem(record_id, file, f"image path {relative!r} cannot be resolved ({exc})")
    if not path.is_relative_to(root.resolve()):
        return None, Problem(record_id, file, f"image path {relative!r} escapes the dataset root {root}")
    return path, None


def check_records(records: Iterable[Record], labels: tuple[str, ...], verify_images: bool = True,
                  taken: Iterable[str] = ()) -> list[Problem]:
    """Problems of read records; `taken`: ids of rows the reader already rejected, which a record may not reuse."""
    records = list(records)
    problems: list[Problem] = []
    ids = Counter(r.id for r in records)
    counts = ids + Counter(taken)
    for dup, n in counts.items():
        if n > 1 and dup in ids:
            problems.append(Problem(dup, "-", f"duplicate id: {n} records share it"))
    for r in records:
        if not r.has_text and not r.has_image:
            problems.append(Problem(r.id, r.origin or "-", "no text and no image: nothing to classify"))
        if r.label not in labels:
            expected = ", ".join(labels)
            problems.append(Problem(r.id, r.origin or "-", f"unknown label {r.label!r}; expected one of {expected}"))
        if verify_images and r.image is not None:
            _, reason = decode(r.image)
            if reason:
                problems.append(Problem(r.id, str(r.image), reason))
    return problems


MAX_TEXT_CHARS = 20_000  # far past any encoder's max_length; a megabyte "text" is truncated here, with a count


def clean_texts(dataset: Dataset) -> Dataset:
    """NUL bytes removed and texts cut at MAX_TEXT_CHARS, each counted in the dataset's notes: the post stays
    (tokenizers would truncate long texts anyway), but nobody should learn of it from a slow tokenizer."""
    from dataclasses import replace

    nul = long = 0
    records = []
    for r in dataset.records:
        text = r.text
        if "\x00" in text:
            text, nul = text.replace("\x00", ""), nul + 1
        if len(text) > MAX_TEXT_CHARS:
            text, long = text[:MAX_TEXT_CHARS], long + 1
        records.append(r if text is r.text else replace(r, text=text))
    dataset.records = records
    if nul:
        dataset.notes.append(f"texts with NUL bytes (removed): {nul}")
    if long:
        dataset.notes.append(f"texts longer than {MAX_TEXT_CHARS:,} characters (truncated to that): {long}")
    return dataset


def finalize(
    dataset: Dataset, problems: list[Problem], on_bad: str = "error", verify_images: bool = True
) -> Dataset:
    """Apply the bad-record policy: stop with the full list, or leave them out and say which."""
    if on_bad not in ON_BAD:
        from jftzoo.errors import UsageError

        raise UsageError(f"on_bad must be one of {', '.join(ON_BAD)}, got {on_bad!r}")
    dataset = clean_texts(dataset)
    rejected = [p.record_id for p in problems if p.record_id is not None]
    problems = problems + check_records(dataset.records, dataset.labels, verify_images, rejected)
    if not problems:
        return dataset
    if on_bad == "error":
        raise BadDataError(dataset.name, problems)
    bad = {p.record_id for p in problems}  # every copy of a duplicate id goes too
    dataset.records = [r for r in dataset.records if r.id not in bad]
    dataset.skipped = problems
    return dataset


class MissingModalityError(BadDataError):
    """Posts without text or image under `--on-missing error`; the message lists every one."""

    what = "post(s) without text or image"
    hint = ("A post without text or without an image is ordinary data for jftzoo: pass --on-missing keep (the "
            "default) to use it, or --on-missing skip to leave such posts out (they are listed in the report).")


def check_on_missing(policy: str) -> None:
    if policy not in ON_MISSING:
        from jftzoo.errors import UsageError, suggest

        hint = suggest(policy, ON_MISSING)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {policy!r}.{did}")


def apply_on_missing(dataset: Dataset, policy: str = "keep") -> Dataset:
    """The missing-modality policy, applied after a reader: keep posts without text or image (the model
    reads its learned "missing" embedding), leave them out and list them, or stop with the list."""
    check_on_missing(policy)
    if policy == "keep":
        return dataset
    found = [Problem(r.id, r.origin or (str(r.image) if r.image else "-"),
                     "no text" if not r.has_text else "no image")
             for r in dataset.records if not (r.has_text and r.has_image)]
    if not found:
        return dataset
    if policy == "error":
        raise MissingModalityError(dataset.name, found)
    gone = {p.record_id for p in found}
    dataset.records = [r for r in dataset.records if r.id not in gone]
    dataset.skipped = dataset.skipped + [Problem(p.record_id, p.file, f"{p.reason} (left out by --on-missing skip)")
                                         for p in found]
    return dataset
