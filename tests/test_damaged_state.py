"""Damaged state: a torn last line of results.jsonl is reported and repaired on resume; `jftzoo cache
verify` finds corrupt cache entries by their checksums and deletes them (recomputed when next needed)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from jftzoo.cli import cli


def test_a_torn_results_line_is_reported_and_its_task_runs_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "b"
    args = ["bench", "--fusion", "majority", "--limit", "30", "--folds", "2", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    path = out / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])  # power loss mid-line
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "cut an unfinished last line" in res.output and "runs again" in res.output
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2 and len({r["key"] for r in rows}) == 2


def test_cache_verify_finds_and_deletes_corrupt_entries(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("JFTZOO_CACHE_LAYOUT", "files")  # one file per entry (shards: tests/test_cache_shards.py)
    res = CliRunner().invoke(cli, ["bench", "--fusion", "concat", "--limit", "30", "--folds", "2", "--epochs", "1",
                                   "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    entries = sorted((tmp_path / "cache" / "embeddings").glob("*/*/*/*.safetensors"))
    assert len(entries) == 60  # 30 posts x 2 encoders
    clean = CliRunner().invoke(cli, ["cache", "verify", "--json"])
    assert clean.exit_code == 0 and json.loads(clean.output)["kinds"]["embeddings"]["checked"] == 60
    data = entries[0].read_bytes()
    flipped = bytearray(data)
    flipped[-3] ^= 0x40  # one flipped bit in the last float's exponent: same size, wrong tensors
    entries[0].write_bytes(bytes(flipped))
    entries[1].write_bytes(data[: len(data) // 3])  # truncated
    (entries[2].parent / ".tmp-abc.safetensors").write_bytes(b"half")  # an interrupted write
    kept = CliRunner().invoke(cli, ["cache", "verify", "--keep", "--json"])
    report = json.loads(kept.output)["kinds"]["embeddings"]
    assert kept.exit_code == 1 and sorted(report["corrupt"]) == sorted(str(p) for p in entries[:2])
    assert entries[0].exists() and len(report["temporary_files"]) == 1
    fixed = CliRunner().invoke(cli, ["cache", "verify"])
    assert fixed.exit_code == 1 and "2 corrupt" in fixed.output and not entries[0].exists()
    assert CliRunner().invoke(cli, ["cache", "verify"]).exit_code == 0  # clean again


def test_an_edited_split_manifest_is_reported_and_written_again(tmp_path, monkeypatch) -> None:
    from jftzoo.datasets.splits import read_split

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "b"
    args = ["bench", "--fusion", "majority", "--limit", "30", "--folds", "2", "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    (manifest,) = (out / "splits").glob("*.json")
    doc = json.loads(manifest.read_text())
    doc["parts"][next(iter(doc["parts"]))].pop()  # a record quietly taken out of a fold
    manifest.write_text(json.dumps(doc))
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and f"split manifest {manifest} was edited after it was written" in res.output
    assert "written again" in res.output
    assert read_split(manifest).digest() == json.loads(manifest.read_text())["digest"]  # true to its records again
