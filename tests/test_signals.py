"""SIGINT or SIGTERM during `jftzoo bench` stops it at once: finished records stay whole, the message says
how to resume (exit 130), the results folder is released, and the same command finishes the grid."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest


def foreground() -> None:
    """Ctrl-C reaches the child as in a terminal even when pytest itself runs in the background (`cmd &` in a
    script ignores SIGINT, and the child would inherit that and rightly keep running)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_bench_cleanly_and_it_resumes(tmp_path, sig) -> None:
    out = tmp_path / "b"
    args = [sys.executable, "-m", "jftzoo", "bench", "--fusion", "concat", "--limit", "60", "--folds", "3",
            "--epochs", "4", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=foreground)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (results.exists() and results.read_text().count("\n") >= 4):
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "stopped (interrupted)" in err and "Run the same command again to resume" in err
    assert "Traceback" not in err
    lines = results.read_text().splitlines()
    assert 4 <= len(lines) < 12 and all(json.loads(line)["key"] for line in lines)  # whole records only
    assert not (out / ".jftzoo.lock.json").exists()  # the folder is free again
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = [json.loads(line)["key"] for line in results.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 12  # (majority, text-only, image-only, concat) x 3 folds


def test_a_signal_while_the_tables_are_written_is_a_clean_stop_too(tmp_path, monkeypatch) -> None:
    """Ctrl-C after the last record, while the summary and heatmap are drawn: exit 130 with the resume
    message (the same command writes them again), not click's bare "Aborted!"."""
    from click.testing import CliRunner

    import jftzoo.bench.plot as plot
    from jftzoo.cli import cli

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(plot, "heatmap", interrupted)
    res = CliRunner().invoke(cli, ["bench", "--fusion", "majority", "--limit", "30", "--folds", "2",
                                   "--out", str(tmp_path / "b")])
    assert res.exit_code == 130 and "2 finished record(s) are kept whole" in res.output
    assert "Run the same command again" in res.output


def test_a_libraries_cleanup_error_caused_by_ctrl_c_is_a_clean_stop_not_an_internal_error(tmp_path, monkeypatch):
    """Ctrl-C inside numpy's savez (a predictions file being zipped) made zipfile's close raise ValueError, whose
    context is the KeyboardInterrupt: that is still the user's stop (exit 130), not "Internal error" (exit 1)."""
    from click.testing import CliRunner

    import jftzoo.bench.predictions as predictions
    from jftzoo.cli import cli

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    real, calls = predictions.write_predictions, []

    def cut_mid_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) < 2:
            return real(*args, **kwargs)
        try:
            raise KeyboardInterrupt
        finally:
            raise ValueError("Can't close the ZIP file while there is an open writing handle on it.")

    monkeypatch.setattr(predictions, "write_predictions", cut_mid_write)
    res = CliRunner().invoke(cli, ["bench", "--fusion", "majority", "--limit", "30", "--folds", "2",
                                   "--out", str(tmp_path / "b")])
    assert res.exit_code == 130 and "stopped (interrupted)" in res.output, res.output
    assert "1 finished record(s) are kept whole" in res.output and "Internal error" not in res.output
    monkeypatch.setattr(predictions, "write_predictions", real)
    res = CliRunner().invoke(cli, ["bench", "--fusion", "majority", "--limit", "30", "--folds", "2",
                                   "--out", str(tmp_path / "b")])
    assert res.exit_code == 0 and "1 already in the store" in " ".join(res.output.split()), res.output
