"""benchmarks/device_mvsa.sh, the script that ran the MVSA-Single rows on lent GPUs, run here on the demo data
(CPU, no pack install): its benches run side by side into copies of the store, are merged back, and exactly the
records this call added travel home in store.tar; a step that cannot start before the deadline adds nothing."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from jftzoo.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_mvsa.sh"
OPTS = "--mode frozen --text minilm --limit 40"


def keys(store: Path) -> list[str]:
    path = store / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_script(tmp: Path, name: str, store: Path, steps: str,
               deadline: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One call of the script as on a lent machine: PACK holds a (here empty) wheels folder, OUT receives
    store.tar, WORK is its scratch folder."""
    pack, out, work = tmp / f"{name}-pack", tmp / f"{name}-out", tmp / f"{name}-work"
    for folder in (pack, out, work):
        folder.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("wheels")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    (pack / "p0").write_bytes(buf.getvalue())
    env = {**os.environ, "PACK": str(pack), "OUT": str(out), "WORK": str(work), "STORE": str(store),
           "DATA": "emoji-sentiment", "DEVICE": "cpu", "NO_INSTALL": "1", "DEADLINE": str(deadline),
           "STEPS": steps, "WORKERS": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # python3: this one
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    unpacked = tmp / f"{name}-home"
    with tarfile.open(out / "store.tar") as tar:
        tar.extractall(unpacked, filter="data")
    return proc, unpacked / "new"


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash, timeout")
def test_device_script_brings_home_exactly_the_records_it_added(tmp_path, monkeypatch):
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))  # the subprocesses share the warm cache
    store = tmp_path / "store"
    res = CliRunner().invoke(cli, ["bench", "--data", "emoji-sentiment", "--split", "8:1:1", "--fusion", "late",
                                   *OPTS.split(), "--seeds", "0", "--out", str(store), "--json"])
    assert res.exit_code == 0, res.output
    original = tmp_path / "original"
    shutil.copytree(store, original)
    before = set(keys(store))

    # two steps at once: seed 0 of `late` is in the store already (skipped), seed 1 and a concat grid are new
    proc, new = run_script(tmp_path, "a", store, f"--fusion late {OPTS} --seeds 0,1;--fusion concat {OPTS} --seeds 1",
                           deadline=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = keys(store)
    assert len(after) == len(set(after)), "the two stores' shared baseline records were merged twice"
    added = set(after) - before
    assert before <= set(after) and added
    records = [json.loads(line) for line in (store / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(r["fusion"], r["seed"]) for r in records if r["key"] in added} >= {("late", 1), ("concat", 1)}
    assert not any(r["seed"] == 0 and r["fusion"] == "late" for r in records if r["key"] in added)

    assert set(keys(new)) == added  # the tarball carries this call's records and nothing older
    for record in (json.loads(line) for line in (new / "results.jsonl").read_text(encoding="utf-8").splitlines()):
        assert (new / record["predictions"]["file"]).is_file() and (new / record["split"]["manifest"]).is_file()

    # merged at home into the store as it was before the call, it gives the store the lent machine ended with
    merged = CliRunner().invoke(cli, ["results", "merge", str(new), "--into", str(original)])
    assert merged.exit_code == 0, merged.output
    assert sorted(keys(original)) == sorted(after)

    # a step with less than 30 s left is not started, and the call brings home nothing
    proc, new = run_script(tmp_path, "b", store, f"--fusion gated {OPTS} --seeds 2", deadline=5)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped (deadline)" in proc.stdout
    assert keys(new) == [] and sorted(keys(store)) == sorted(after)
