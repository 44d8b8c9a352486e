"""The sharded (LMDB) embedding cache: entries round-trip across processes, two writers on one shard leave every
entry correct, a damaged entry is detected and never served, old per-file entries are migrated, prune works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from jftzoo.cache import DiskCache
from jftzoo.cache_shards import ShardedCache, decode_entry, encode_entry
from jftzoo.features import Entry


def _entry(i: int, tokens: bool = True) -> Entry:
    g = torch.Generator().manual_seed(i)
    return Entry(torch.randn(384, generator=g), torch.randn(12, 384, generator=g) if tokens else None)


def _same(a: Entry | None, b: Entry) -> bool:
    return a is not None and torch.equal(a.pooled, b.pooled) and (
        (a.tokens is None and b.tokens is None) or torch.equal(a.tokens, b.tokens))  # type: ignore[arg-type]


def test_entries_round_trip_and_files_stay_few(tmp_path: Path) -> None:
    cache = ShardedCache(tmp_path)
    for i in range(600):
        cache.put("enc/fp", f"{i:05d}", _entry(i))
    cache.flush()
    again = ShardedCache(tmp_path)  # another store (as another run would open it)
    assert all(_same(again.get("enc/fp", f"{i:05d}", tokens=True), _entry(i)) for i in range(600))
    assert again.get("enc/fp", "nope", tokens=False) is None
    files = [p for p in (tmp_path / "shards").rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == ["data.mdb", "lock.mdb"]  # 600 entries, two files
    assert [i.entries for i in again.info()] == [600]


WRITER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from jftzoo.cache_shards import ShardedCache
    from jftzoo.features import Entry

    root, order = Path(sys.argv[1]), sys.argv[2]
    cache = ShardedCache(root)
    ids = list(range(400)) if order == "up" else list(reversed(range(400)))
    for i in ids:
        g = torch.Generator().manual_seed(i)
        cache.put("enc/fp", f"{i:05d}", Entry(torch.randn(384, generator=g), torch.randn(12, 384, generator=g)))
        if i % 50 == 0:
            cache.flush()
    cache.flush()
""")


def test_two_processes_writing_one_shard(tmp_path: Path) -> None:
    script = tmp_path / "w.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), order], stderr=subprocess.PIPE, text=True)
             for order in ("up", "down")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    cache = ShardedCache(tmp_path)
    assert all(_same(cache.get("enc/fp", f"{i:05d}", tokens=True), _entry(i)) for i in range(400))
    assert cache.verify(remove=False) == (400, [])


def test_a_damaged_entry_is_detected_and_never_served(tmp_path: Path) -> None:
    cache = ShardedCache(tmp_path)
    for i in range(20):
        cache.put("enc/fp", f"{i:05d}", _entry(i))
    cache.flush()
    data = tmp_path / "shards" / "enc" / "fp" / "data.mdb"
    raw = bytearray(data.read_bytes())
    victim = _entry(7).pooled.numpy().tobytes()[:64]  # a torn write: the entry's float bytes overwritten
    at = bytes(raw).find(victim)
    assert at > 0
    raw[at : at + 16] = b"\xff" * 16
    data.write_bytes(bytes(raw))
    fresh = ShardedCache(tmp_path)
    assert fresh.verify(remove=False) == (20, ["enc/fp/00007"])
    assert fresh.get("enc/fp", "00007", tokens=True) is None and sum(fresh.corrupt.values()) == 1  # not served
    assert _same(fresh.get("enc/fp", "00008", tokens=True), _entry(8))
    assert decode_entry(encode_entry(_entry(1))[:-3]) is None  # a truncated value is refused too


def test_per_file_entries_are_migrated_not_lost(tmp_path: Path) -> None:
    old = DiskCache(tmp_path)
    for i in range(5):
        old.put("enc/fp", f"{i:05d}", _entry(i, tokens=False))
    cache = ShardedCache(tmp_path)
    assert _same(cache.get("enc/fp", "00003", tokens=False), _entry(3, tokens=False))
    assert cache.migrated == 1 and not old._path("enc/fp", "00003").exists()  # moved into the shard
    assert _same(ShardedCache(tmp_path).get("enc/fp", "00003", tokens=False), _entry(3, tokens=False))
    assert old.get("enc/fp", "00004", tokens=False) is not None  # the others wait for their first use


def test_prune_removes_entries_older_than_asked(tmp_path: Path, monkeypatch) -> None:
    import jftzoo.cache_shards as shards

    cache = ShardedCache(tmp_path)
    monkeypatch.setattr(shards.time, "time", lambda: 1_000_000.0)
    cache.put("enc/fp", "old", _entry(1))
    cache.flush()
    monkeypatch.setattr(shards.time, "time", lambda: 1_000_000.0 + 10 * 86400)
    cache.put("enc/fp", "new", _entry(2))
    cache.flush()
    assert cache.prune(older_than_s=5 * 86400) == 1
    assert cache.get("enc/fp", "old", tokens=True) is None and cache.get("enc/fp", "new", tokens=True) is not None


def test_the_cli_runs_on_shards_and_maintains_them(tmp_path: Path, monkeypatch) -> None:
    import json

    from click.testing import CliRunner

    from jftzoo.cli import cli

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("JFTZOO_CACHE_LAYOUT", "shards")
    args = ["bench", "--fusion", "concat", "--limit", "30", "--folds", "2", "--epochs", "1"]
    first = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert not list((tmp_path / "cache" / "embeddings").rglob("*.safetensors"))  # nothing per file
    again = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "b")])
    assert "encoder passes: none" in again.output  # every embedding came back from the shards
    info = json.loads(CliRunner().invoke(cli, ["cache", "info", "--json"]).output)
    shards = [n for n in info["namespaces"] if n["kind"] == "embeddings (shards)"]
    assert sorted(n["entries"] for n in shards) == [30, 30]
    verify = CliRunner().invoke(cli, ["cache", "verify", "--json"])
    assert verify.exit_code == 0 and json.loads(verify.output)["kinds"]["embeddings (shards)"]["checked"] == 60
    pruned = CliRunner().invoke(cli, ["cache", "prune", "--older-than", "0"])
    assert pruned.exit_code == 0 and "removed 60 entries" in pruned.output
    bad = CliRunner().invoke(cli, ["cache", "prune", "--older-than", "a week"])
    assert bad.exit_code == 2 and "Nd, Nh or Nm" in bad.output
    monkeypatch.setenv("JFTZOO_CACHE_LAYOUT", "lmdb")
    wrong = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "c")])
    assert wrong.exit_code == 2 and "not one of shards, files" in wrong.output


def test_a_writer_killed_mid_batch_leaves_only_whole_entries(tmp_path: Path) -> None:
    import signal
    import time

    script = tmp_path / "w.py"
    script.write_text(WRITER.replace("range(400)", "range(100_000)"))  # far more than it can write before the kill
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), "up"], stderr=subprocess.PIPE, text=True)
    data = tmp_path / "shards" / "enc" / "fp" / "data.mdb"
    deadline = time.monotonic() + 120
    while (not data.exists() or data.stat().st_size < 2_000_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    cache = ShardedCache(tmp_path)
    checked, damaged = cache.verify(remove=False)
    assert checked >= 50 and damaged == []  # committed batches whole, the batch being written not there at all
    assert checked % 50 == 1 or checked % 50 == 0  # flushed every 50 ids (id 0 flushes alone): whole batches only
    assert all(_same(cache.get("enc/fp", f"{i:05d}", tokens=True), _entry(i)) for i in range(checked))
