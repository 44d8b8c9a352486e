"""Two runs on one results folder: the second exits 1 naming the holder, or waits with --wait; nothing
interleaves. The lock is the OS's, so a killed holder leaves none behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from click.testing import CliRunner

from jftzoo.cli import cli

HOLD = """
import sys, time
from jftzoo.bench.lock import results_lock
with results_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(out, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _bench(out, *extra: str):
    return CliRunner().invoke(cli, ["bench", "--fusion", "majority", "--limit", "30", "--folds", "2", "--out",
                                    str(out), *extra])


def test_a_second_bench_on_a_held_folder_exits_1_naming_the_holder(tmp_path) -> None:
    out = tmp_path / "b"
    proc = _holder(out, 60)
    try:
        res = _bench(out)
        assert res.exit_code == 1, res.output
        assert f"pid {proc.pid}" in res.output and socket.gethostname() in res.output and "--wait" in res.output
        assert not (out / "results.jsonl").exists()  # it wrote nothing
    finally:
        proc.kill()
        proc.wait()
    res = _bench(out)  # a killed holder leaves no stale lock
    assert res.exit_code == 0, res.output
    assert not (out / ".jftzoo.lock.json").exists()  # the holder note goes with the lock


def test_wait_runs_after_the_holder_ends(tmp_path) -> None:
    out = tmp_path / "b"
    proc = _holder(out, 3)
    started = time.monotonic()
    res = _bench(out, "--wait")
    proc.wait()
    assert res.exit_code == 0, res.output
    assert time.monotonic() - started >= 2 and "waiting" in res.output and f"pid {proc.pid}" in res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len({r["key"] for r in rows}) == 2


def test_two_concurrent_benches_never_duplicate_records(tmp_path) -> None:
    out = tmp_path / "b"
    args = [sys.executable, "-m", "jftzoo", "bench", "--fusion", "majority,svm", "--limit", "40", "--folds", "2",
            "--out", str(out), "--wait"]
    env = {**os.environ, "JFTZOO_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    keys = [json.loads(line)["key"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 4  # (majority, svm) x 2 folds, each once: the second run skipped them
