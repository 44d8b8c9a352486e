"""The built-in demo dataset `emoji-sentiment`, shipped inside the package (see docs/demo-dataset.md).

Text = an emoji's Unicode name, image = its Noto Emoji glyph, label from the Emoji Sentiment
Ranking's counts. Its files are checked against a fixed checksum before use, so a damaged install
is reported instead of silently changing every result that names this dataset.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from jftzoo.datasets.manifest import read_manifest
from jftzoo.datasets.records import Dataset
from jftzoo.errors import JftzooError

ROOT = Path(__file__).resolve().parent.parent / "data" / "emoji_sentiment"
LABELS = ("negative", "neutral", "positive")
# sha256(manifest.csv || every image's bytes in manifest order): the value scripts/build_emoji_dataset.py prints.
CHECKSUM = "605ac41999545ee002e5be834fe6718fc895a26d60d19135adc651eb1b7a21bb"
LICENSE_NOTICE = (
    "emoji-sentiment: labels and names from the Emoji Sentiment Ranking v1.0 (Kralj Novak et al., "
    "PLoS ONE 2015, CC BY-SA 4.0); images from Noto Emoji via emoji-datasource-google (Apache 2.0). "
    f"See {ROOT / 'LICENSE.md'}."
)


def files_checksum(root: Path = ROOT) -> str:
    manifest = (root / "manifest.csv").read_bytes()
    digest = hashlib.sha256(manifest)
    for row in csv.DictReader(io.StringIO(manifest.decode("utf-8"))):
        digest.update((root / row["image"]).read_bytes())
    return digest.hexdigest()


def read(*, on_bad: str = "error", verify_images: bool = True) -> Dataset:
    actual = files_checksum()
    if actual != CHECKSUM:
        raise JftzooError(
            f"the packaged emoji-sentiment files in {ROOT} have checksum {actual}, expected {CHECKSUM}: "
            "the install is damaged; reinstall jftzoo"
        )
    dataset = read_manifest(ROOT / "manifest.csv", fmt="csv", name="emoji-sentiment", labels=LABELS,
                            on_bad=on_bad, verify_images=verify_images)
    dataset.license = LICENSE_NOTICE
    dataset.notes.append(LICENSE_NOTICE)
    return dataset
