"""Off a terminal (a log, CI, nohup) the bench prints plain progress lines on stderr, with a heartbeat;
--log-json writes every event as a JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_piped_bench_prints_progress_lines_and_a_heartbeat(tmp_path) -> None:
    log = tmp_path / "events.jsonl"
    env = {**os.environ, "JFTZOO_HEARTBEAT_S": "0.5"}
    proc = subprocess.run([sys.executable, "-m", "jftzoo", "bench", "--fusion", "concat", "--split", "8:1:1",
                           "--limit", "40", "--epochs", "2", "--out", str(tmp_path / "b"), "--log-json", str(log)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "] bench: " in line]
    assert any("plan: 4 task(s)" in line for line in lines), proc.stderr
    assert any("start minilm + efficientnet_lite0 / concat / frozen [test, seed 0]" in line for line in lines)
    assert sum(" done " in line for line in lines) == 4 and any("ETA" in line for line in lines)
    assert any("busy with " in line for line in lines)  # the heartbeat
    events = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"plan", "task", "record", "epoch"} <= kinds and all("time" in e for e in events)
