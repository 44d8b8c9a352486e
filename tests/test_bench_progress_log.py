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


def test_the_plan_lists_cells_with_estimates_and_learns_from_the_store(tmp_path) -> None:
    """Before anything trains, the plan says what is stored, what is left and about how long it takes;
    a second run over the same store reads its measured times instead of the reference rates."""
    out = tmp_path / "b"
    args = [sys.executable, "-m", "jftzoo", "bench", "--fusion", "majority,concat", "--split", "8:1:1", "--limit",
            "40", "--epochs", "2", "--out", str(out)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    plan = [line for line in first.stderr.splitlines() if "bench: plan:" in line or "bench:   " in line]
    assert "0 already in the store, 4 to run" in plan[0] and "reference rates of a 2-core CPU" in plan[0], plan
    assert any("minilm + efficientnet_lite0 / concat / frozen: 1 to run, about " in line for line in plan), plan
    second = subprocess.run([*args[:-2], "--seeds", "0,1", "--out", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    head = next(line for line in second.stderr.splitlines() if "bench: plan:" in line)
    assert "4 already in the store, 4 to run" in head and "finished runs of the same configuration" in head, head
    assert any("concat / frozen: 1 to run, about" in line and "(1 stored)" in line
               for line in second.stderr.splitlines())


def test_estimates_come_from_the_store_when_it_has_them() -> None:
    from jftzoo.bench.estimate import DEFAULT_RATES, Estimator, describe
    from jftzoo.bench.grid import Cell

    cell = Cell("d", "minilm", "efficientnet_lite0", "concat", "top-k")
    stored = [{"config_hash": "abc", "train_s": 100.0, "n_train": 50, "epochs_run": 4, "mode": "top-k",
               "fusion": "concat", "text": "minilm", "vision": "efficientnet_lite0"}]
    est = Estimator(stored)
    assert (est.task(cell, "abc", 100, 8).seconds, est.task(cell, "abc", 100, 8).source) == (200.0, "measured")
    similar = est.task(cell, "other", 100, 8)  # 0.5 s per record-epoch, for 100 records x 8 epochs
    assert similar.source == "similar" and similar.seconds == 400.0
    fresh = Estimator([]).task(cell, "abc", 100, 8)
    assert fresh.source == "default" and fresh.seconds == DEFAULT_RATES["top-k"] * 2 * 800  # k=2 groups
    assert describe(30) == "about 30 s" and describe(4800) == "about 1 h 20 min"


def test_runs_on_another_kind_of_device_do_not_estimate_this_one() -> None:
    """An H100's joint runs once promised a CPU bench "about 3 min" for what takes hours."""
    from jftzoo.bench.estimate import DEFAULT_RATES, Estimator
    from jftzoo.bench.grid import Cell

    cell = Cell("d", "minilm", "efficientnet_lite0", "concat", "joint")
    gpu = [{"config_hash": "abc", "train_s": 10.0, "n_train": 100, "epochs_run": 5, "mode": "joint",
            "fusion": "concat", "text": "minilm", "vision": "efficientnet_lite0", "device": "cuda"}]
    on_cpu = Estimator(gpu, "cpu").task(cell, "abc", 100, 8)
    assert on_cpu.source == "default" and on_cpu.seconds == DEFAULT_RATES["joint"] * 800
    on_gpu = Estimator(gpu, "cuda:0").task(cell, "abc", 100, 8)
    assert on_gpu.source == "measured" and on_gpu.seconds == 10.0
    cpu = [{**gpu[0], "device": None, "train_s": 400.0}]  # older records name no device: they ran on a CPU
    assert Estimator(cpu).task(cell, "abc", 100, 8).seconds == 400.0
