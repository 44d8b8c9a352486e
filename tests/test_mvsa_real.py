"""The real MVSA-Single corpus in ../shared/data: skipped locally when absent, a failure under CI."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from jftzoo.datasets import load_dataset, ratio_split, stratified_kfold

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvsa_single"


@pytest.fixture(scope="module")
def mvsa_root() -> Path:
    if not (ROOT / "labelResultAll.txt").is_file():
        message = f"MVSA-Single not found at {ROOT} (see ../shared/data/README.md)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return ROOT


def test_raw_count_and_every_non_utf8_text_decoded(mvsa_root: Path):
    everything = load_dataset(f"mvsa-single:{mvsa_root}", label_policy="text", verify_images=False)
    assert len(everything) == 4869
    not_utf8 = 0
    for record in everything.records:
        raw = Path(record.origin).read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            not_utf8 += 1
            assert record.text  # decoded by the fallback, nothing lost
    assert not_utf8 == 1131
    decoded = dict(n.rsplit(": ", 1) for n in everything.notes)
    assert int(decoded["texts decoded as cp1252"]) + int(decoded["texts decoded as latin-1"]) == 1131


def test_merge_policy_counts(mvsa_root: Path):
    ds = load_dataset(f"mvsa-single:{mvsa_root}")  # verifies all 4,511 images too
    assert len(ds) == 4511 and not ds.skipped
    assert ds.class_counts() == {"negative": 1358, "neutral": 470, "positive": 2683}
    assert ds.dropped == {"text and image labels disagree on polarity": 358}


def test_folds_and_ratio_split_keep_class_ratios(mvsa_root: Path):
    ds = load_dataset(f"mvsa-single:{mvsa_root}", verify_images=False)
    labels = {r.id: r.label for r in ds.records}
    overall = {k: v / len(ds) for k, v in ds.class_counts().items()}
    parts = list(stratified_kfold(ds, 10, seed=0).parts.values()) + list(ratio_split(ds, "8:1:1", 0).parts.values())
    for part in parts:
        counts = Counter(labels[i] for i in part)
        for label, share in overall.items():
            assert abs(counts[label] / len(part) - share) < 0.01
