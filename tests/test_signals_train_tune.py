"""SIGTERM/SIGINT during `jftzoo train` and `jftzoo tune`: exit 130, no traceback, a message saying what is kept
and how to go on; tune's finished trials stay in the study and the same command resumes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_signals import foreground


def _wait_for(proc: subprocess.Popen, done, what: str, limit: float = 300) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + limit
    while not done():
        assert proc.poll() is None, f"ended before {what}: {proc.stderr.read()[-2000:]}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no {what} within {limit} s"
        time.sleep(0.2)


def test_ctrl_c_stops_train_and_says_nothing_is_saved(tmp_path: Path) -> None:
    """SIGINT here, SIGTERM in the tune test below: `interruptible` handles both (bench tests both)."""
    log = tmp_path / "stderr.log"
    env = {**os.environ, "JFTZOO_CACHE_DIR": str(tmp_path / "cache")}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "jftzoo", "train", "--fusion", "concat", "--epochs", "200",
                                 "--min-epochs", "200", "--out", str(tmp_path / "m")],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env, preexec_fn=foreground)
        _wait_for(proc, lambda: "epoch 1/200" in log.read_text(), "first epoch line")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    text = log.read_text()
    assert proc.returncode == 130, text[-2000:]
    assert "stopped (interrupted)" in text and "No model was written" in text and "Traceback" not in text
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_a_signal_stops_tune_keeping_finished_trials_and_it_resumes(tmp_path: Path) -> None:
    env = {**os.environ, "JFTZOO_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "store"
    args = [sys.executable, "-m", "jftzoo", "tune", "--data", "emoji-sentiment", "--fusion", "concat", "--mode",
            "frozen", "--limit", "40", "--epochs", "2", "--param", "lr_head=1e-4:3e-3:log", "--trials", "400",
            "--json", "--out", str(out)]

    def finished() -> int:  # trials COMPLETE or PRUNED in the study (what a resumed run counts)
        import optuna
        from optuna.trial import TrialState

        dbs = list((out / "tune").glob("*.db")) if (out / "tune").is_dir() else []
        if not dbs:
            return 0
        try:
            study = optuna.load_study(study_name=None, storage=f"sqlite:///{dbs[0]}")
        except Exception:  # the study is still being created
            return 0
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(proc, lambda: finished() >= 3, "three trials")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "stopped (interrupted)" in err and "Run the same command again to resume" in err and "Traceback" not in err
    kept = finished()
    assert kept >= 3
    again = subprocess.run([*args[:args.index("--trials") + 1], str(kept + 1), *args[args.index("--trials") + 2:]],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["study"] and finished() == kept + 1  # the study went on from the kept trials
