"""Any image+text manifest (CSV or JSON Lines) with configurable columns; image paths are relative
to the manifest's folder and may not leave it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from jftzoo.datasets.checks import finalize, resolve_inside
from jftzoo.datasets.records import Dataset, Problem, Record
from jftzoo.errors import UsageError


def _rows(path: Path, fmt: str) -> list[tuple[int, dict[str, Any] | None, str]]:
    """(line number, row or None, parse error) for every data row."""
    out: list[tuple[int, dict[str, Any] | None, str]] = []
    if fmt == "csv":
        import io

        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise UsageError(f"{path}:{line} is not UTF-8 (byte 0x{raw[exc.start]:02x}); re-save the manifest as "
                             "UTF-8") from None
        with io.StringIO(text, newline="") as fh:
            for row in csv.DictReader(fh):
                extra = row.pop(None, None)  # type: ignore[call-overload]
                out.append((0, row, f"{len(extra)} more cells than the header" if extra else ""))
        # csv.DictReader's line_num counts physical lines; number data rows from 2 (after the header)
        return [(i + 2, r, e) for i, (_, r, e) in enumerate(out)]
    with open(path, "rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            try:
                line = raw_line.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                out.append((lineno, None, f"not UTF-8 (byte 0x{raw_line[exc.start]:02x} at column {exc.start + 1})"))
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                out.append((lineno, None, f"invalid JSON ({exc.msg})"))
                continue
            out.append((lineno, row, "" if isinstance(row, dict) else "a JSON line must be an object"))
    return out


def _check_columns(path: Path, rows: list[tuple[int, dict[str, Any] | None, str]], fields: dict[str, str]) -> None:
    """A column that no row has is a misnamed column, not a dataset of posts without text or images."""
    seen = {key for _, row, error in rows if isinstance(row, dict) and not error for key in row}
    if not seen:
        return
    for option, name in fields.items():
        if name not in seen:
            from jftzoo.errors import suggest

            hint = suggest(name, sorted(seen))
            did = f" Did you mean {hint[0]!r}?" if hint else ""
            raise UsageError(f"{path}: no row has a {name!r} column (columns: {', '.join(sorted(seen))}).{did} Name "
                             f"the column with --field {option.removesuffix('_field')}=COLUMN ({option}= in Python); "
                             "for posts without text or image, keep the column with empty cells.")


def read_manifest(
    path: Path,
    *,
    fmt: str,
    name: str,
    id_field: str = "id",
    text_field: str = "text",
    image_field: str = "image",
    label_field: str = "label",
    labels: tuple[str, ...] | None = None,
    label_names: dict[str, str] | None = None,
    on_bad: str = "error",
    verify_images: bool = True,
    split_field: str | None = None,
    image_root: str | Path | None = None,
) -> Dataset:
    """Records of a CSV or JSON Lines manifest; image paths resolve under `image_root` (default: the
    manifest's folder) and never escape it."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob(f"*.{fmt}"))
        if len(candidates) != 1:
            raise UsageError(f"{name}: {path} is a folder with {len(candidates)} .{fmt} files; name the manifest")
        path = candidates[0]
    if not path.is_file():
        raise UsageError(f"{name}: manifest {path} not found")
    root = Path(image_root).expanduser() if image_root else path.parent
    if not root.is_dir():
        raise UsageError(f"{name}: --image-root {root} is not a folder")
    records: list[Record] = []
    problems: list[Problem] = []
    splits: dict[str, list[str]] = {}
    rows = _rows(path, fmt)
    _check_columns(path, rows, {"text_field": text_field, "image_field": image_field, "label_field": label_field})
    for lineno, row, error in rows:
        where = f"{path.name}:{lineno}"
        if row is None or error:
            problems.append(Problem(None, where, error))
            continue
        # Without an id column, the line number names the record.
        rid = str(row[id_field]) if row.get(id_field) not in (None, "") else f"line{lineno}"
        if row.get(label_field) in (None, ""):
            problems.append(Problem(rid, where, f"missing field(s) {label_field}"))
            continue
        # An empty text or image cell is a post without that modality: data, kept (--on-missing decides).
        image: Path | None = None
        if row.get(image_field) not in (None, ""):
            image, problem = resolve_inside(root, str(row[image_field]), rid, where)
            if problem:
                problems.append(problem)
                continue
        raw_label = str(row[label_field])
        label = label_names.get(raw_label, raw_label) if label_names else raw_label
        text = row.get(text_field)
        records.append(Record(rid, "" if text is None else str(text), image, label, origin=where))
        if split_field:
            splits.setdefault(str(row.get(split_field)), []).append(rid)
    found = tuple(sorted({r.label for r in records}))
    dataset = Dataset(name, root, labels or found, records, splits=splits)
    return finalize(dataset, problems, on_bad, verify_images)


def read_csv(path: Path, **options: Any) -> Dataset:
    return read_manifest(path, fmt="csv", name="csv", **options)


def read_jsonl(path: Path, **options: Any) -> Dataset:
    return read_manifest(path, fmt="jsonl", name="jsonl", **options)
