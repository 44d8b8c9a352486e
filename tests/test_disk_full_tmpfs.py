"""A really full disk: a small tmpfs mounted for the test (root, as in CI; skipped where mounting is not allowed,
the injected-ENOSPC tests in test_disk_full.py cover the same writes). The bench's records, the embedding cache and
a saved model each stop with a clear error naming the path, leave nothing partial, and finish once space is back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from jftzoo.cli import cli

BENCH = ["bench", "--fusion", "concat", "--limit", "30", "--folds", "2", "--epochs", "1"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _grow(disk: Path, size: str = "8m") -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def _metrics(out: Path) -> dict[str, dict]:
    return {r["key"]: r["metrics"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_bench_records_on_a_full_disk(small_disk: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    reference = CliRunner().invoke(cli, [*BENCH, "--out", str(tmp_path / "ref")])
    assert reference.exit_code == 0, reference.output
    out = small_disk / "b"
    full = CliRunner().invoke(cli, [*BENCH, "--out", str(out)])
    assert full.exit_code == 1 and "Traceback" not in full.output
    assert "no space left on the device holding" in full.output and str(small_disk) in full.output
    assert not _leftovers(small_disk)
    partial = _metrics(out)  # every line that is there parses: a whole record or none
    assert len(partial) < 8
    _grow(small_disk)
    again = CliRunner().invoke(cli, [*BENCH, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert _metrics(out) == _metrics(tmp_path / "ref")  # nothing lost, duplicated or changed


@pytest.mark.parametrize("layout", ["files", "shards"])
def test_the_embedding_cache_on_a_full_disk(small_disk: Path, tmp_path: Path, monkeypatch, layout: str) -> None:
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(small_disk / "cache"))
    monkeypatch.setenv("JFTZOO_CACHE_LAYOUT", layout)
    full = CliRunner().invoke(cli, [*BENCH, "--out", str(tmp_path / "b")])
    assert full.exit_code == 1 and "Traceback" not in full.output
    assert "no space left" in full.output and str(small_disk / "cache") in full.output
    assert not _leftovers(small_disk)
    _grow(small_disk)
    again = CliRunner().invoke(cli, [*BENCH, "--out", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    verify = CliRunner().invoke(cli, ["cache", "verify", "--json"])
    kind = "embeddings" if layout == "files" else "embeddings (shards)"
    assert verify.exit_code == 0 and json.loads(verify.output)["kinds"][kind]["checked"] == 60


def test_saving_a_model_on_a_full_disk(small_disk: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    args = ["train", "--fusion", "concat", "--epochs", "1", "--min-epochs", "1", "--out", str(small_disk / "m")]
    full = CliRunner().invoke(cli, args)
    assert full.exit_code == 1 and "Traceback" not in full.output and "no space left" in full.output
    assert not (small_disk / "m" / "model.safetensors").exists() and not _leftovers(small_disk)
    _grow(small_disk, "512m")  # room for both encoders' weights
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert (small_disk / "m" / "model.safetensors").stat().st_size > 1_000_000
    # Saving over that model on a disk that fills mid-save: no folder pairing new weights with the old config.
    subprocess.run(["dd", "if=/dev/zero", f"of={small_disk / 'filler'}", "bs=1M"], capture_output=True)
    over = CliRunner().invoke(cli, [*args, "--seed", "1"])
    assert over.exit_code == 1 and "no space left" in over.output and not _leftovers(small_disk)
    assert not (small_disk / "m" / "config.json").exists()  # the commit point was never written
    refused = CliRunner().invoke(cli, ["predict", str(small_disk / "m"), "--text", "a cat"])
    assert refused.exit_code == 1 and "is not a jftzoo model folder" in refused.output
