"""`jftzoo bench --executor ray` (issue 17): the same records as the local executor, resume after the driver
is killed, crashed tasks retried then recorded as failed, and clear usage errors.

Ray is the `ray` extra; CI installs it, so there these tests fail (never skip) when it is missing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jftzoo.bench.predictions import read_predictions
from jftzoo.cli import cli

GRID = ["--fusion", "concat,svm", "--folds", "2", "--limit", "60", "--epochs", "3"]


def _need_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs the ray extra (pip install -e '.[ray]'); Ray is missing")
        pytest.skip("Ray is not installed (pip install 'jftzoo[ray]')")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _by_key(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in _records(out)}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "JFTZOO_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", **extra}


def test_ray_gives_the_local_executors_records(tmp_path, monkeypatch) -> None:
    """Same keys, metrics and every stored probability bit for bit, when the torch thread counts agree (a Ray
    task runs --cpus-per-cell threads; with other counts probabilities differ by ~1e-7, docs/scale.md)."""
    _need_ray()
    import torch

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray task with --cpus-per-cell 1
    try:
        local = CliRunner().invoke(cli, ["bench", *GRID, "--out", str(tmp_path / "local")])
    finally:
        torch.set_num_threads(threads)
    assert local.exit_code == 0, local.output
    # A fresh cache, so the Ray run's frozen passes run on the workers (Ray tasks), not read what local left.
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache_ray"))
    res = CliRunner().invoke(cli, ["bench", *GRID, "--executor", "ray", "--out", str(tmp_path / "ray")])
    assert res.exit_code == 0, res.output
    a, b = _by_key(tmp_path / "local"), _by_key(tmp_path / "ray")
    assert len(a) == 2 * 5 and set(a) == set(b)  # majority, svm, concat, text-only, image-only; 2 folds
    for key, rec in a.items():
        assert b[key]["metrics"] == rec["metrics"], (rec["fusion"], rec["fold"])
        assert b[key]["val_metrics"] == rec["val_metrics"], (rec["fusion"], rec["fold"])
        assert b[key]["executor"].startswith("ray") and "executor" not in rec
        mine, theirs = read_predictions(tmp_path / "local", rec), read_predictions(tmp_path / "ray", b[key])
        assert mine.ids == theirs.ids and np.array_equal(mine.probs, theirs.probs)  # every probability, bit for bit
    assert len({r["worker"] for r in b.values()}) >= 1
    assert "encoder passes: efficientnet_lite0 1, minilm 1" in res.output  # once per encoder, on the workers


def test_resume_after_the_driver_is_killed(tmp_path) -> None:
    _need_ray()
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "jftzoo", "bench", *GRID, "--executor", "ray", "--out", str(out)]
    driver = subprocess.Popen(cmd, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None:
            if (out / "results.jsonl").exists() and _records(out):
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the grid finished before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, mid-grid
        driver.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # what the dead driver's local Ray left behind
    first = len(_records(out))
    assert 1 <= first < 10
    done = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = [r["key"] for r in _records(out)]
    assert len(keys) == 10 and len(set(keys)) == 10  # finished, nothing twice
    assert f"{10 - first} new record(s), {first} already" in done.stderr


CRASHY = '''
import hashlib
import os

import torch
from torch import nn

from jftzoo import hookimpl
from jftzoo.encoders.base import Encoder, EncoderOutput
from jftzoo.registry import EncoderSpec


class Crashy(Encoder):
    """Kills its own process while encoding: always, or only the first time (a flaky machine)."""

    modality, embed_dim, token_dim = "vision", 8, 8

    def __init__(self, name):
        super().__init__(name)
        self.proj = nn.Linear(8, 8)

    def preprocess(self, items):
        self.first_item = hashlib.sha256(str(items[0]).encode()).hexdigest()[:12]  # names the batch
        return {"x": torch.ones(len(items), 8)}

    def forward(self, batch):
        log = os.path.join(os.environ["CRASHY_DIR"], f"{self.name}-{self.first_item}")
        first = not os.path.exists(log)
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        if self.name == "crash-always" or first:
            os._exit(1)
        pooled = self.proj(batch["x"])
        return EncoderOutput(pooled, pooled[:, None], torch.ones(pooled.shape[0], 1, dtype=torch.bool))

    def layer_groups(self):
        return [[self.proj]]


@hookimpl
def register_encoders(register):
    for name in ("crash-once", "crash-always"):
        register(EncoderSpec(name=name, modality="vision", dim=8, source="fake/crashy",
                             factory=lambda spec, pretrained=True, weights=None: Crashy(spec.name)))
'''


def test_a_crashed_task_is_retried_then_recorded_as_failed(tmp_path) -> None:
    """Workers that die (os._exit in a plugin encoder) are retried: once-only crashes finish, a task that
    always crashes fails its cells with the reason after --retries, and the rest of the grid runs."""
    _need_ray()
    site = tmp_path / "site"
    dist = site / "fakecrashy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakecrashy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[jftzoo]\ncrashy = fakecrashy_plugin\n")
    (site / "fakecrashy_plugin.py").write_text(CRASHY)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = _env(tmp_path, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               CRASHY_DIR=str(logs))
    out = tmp_path / "b"
    done = subprocess.run([sys.executable, "-m", "jftzoo", "bench", "--fusion", "concat", "--vision",
                           "crash-once,crash-always", "--folds", "2", "--limit", "40", "--epochs", "2",
                           "--executor", "ray", "--retries", "1", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]  # a failed cell: exit 1, after the whole grid ran
    assert "Traceback" not in done.stderr
    once, always = sorted(logs.glob("crash-once-*")), sorted(logs.glob("crash-always-*"))
    assert once and always  # one log per batch that was tried (several slices of a pass may run at once)
    for log in once:  # crashed, then retried in a new worker, which encoded that batch and went on
        assert len(set(log.read_text().split())) == 2, log.read_text()
    for log in always:  # died at that batch in every one of its 1 + --retries 1 tries
        assert len(log.read_text().split()) == 2, log.read_text()
    rows = _records(out)
    visions = {r["vision"] for r in rows}
    assert "crash-once" in visions and "crash-always" not in visions
    assert {r["fusion"] for r in rows if r["vision"] == "crash-once"} == {"concat", "image-only"}
    failed = [line for line in done.stderr.splitlines() if line.startswith("Failed:")]
    assert failed and all("crash-always" in line and "after 1 retry" in line for line in failed)


def test_executor_options_are_checked_before_any_work(tmp_path, monkeypatch) -> None:
    res = CliRunner().invoke(cli, ["bench", "--address", "auto", "--retries", "3", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "--address, --retries only apply to --executor ray" in res.output
    res = CliRunner().invoke(cli, ["bench", "--executor", "ray", "--gpus-per-cell", "1", "--out", str(tmp_path / "b")])
    if "needs Ray" not in res.output:  # with Ray installed: a GPU per task asked for, but the tasks run on the CPU
        assert res.exit_code == 2 and "add --device cuda" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    res = CliRunner().invoke(cli, ["bench", "--executor", "ray", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2, res.output
    assert "pip install 'jftzoo[ray]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "b").exists()  # nothing started


def test_a_tasks_result_does_not_depend_on_what_its_process_built_before(tmp_path, monkeypatch) -> None:
    """A Ray worker may meet an encoder first inside a task (the local executor builds every encoder while
    planning): building draws random numbers, which must not shift the head's seeded initialisation."""
    import numpy as np

    from jftzoo.bench.cells import Encoders, train_and_validate
    from jftzoo.bench.grid import BenchConfig, Cell
    from jftzoo.bench.runner import load_bench_dataset, make_split
    from jftzoo.datasets.splits import folds_of
    from jftzoo.features import FeatureStore

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    config = BenchConfig(fusion=["concat"], folds=2, limit=40, epochs=2)
    ds = load_bench_dataset(config.data[0], config)
    _, train_ids, _, _ = folds_of(make_split(ds, config, 0))[0]
    by_id = ds.by_id()
    train = [by_id[i] for i in train_ids]
    train, val = train[:-6], train[-6:]
    cell = Cell(config.data[0], None, "efficientnet_lite0", "image-only", "frozen")
    probs = []
    for prebuilt in (False, True):
        encoders = Encoders(config, FeatureStore())
        if prebuilt:
            encoders.get("efficientnet_lite0")
        _, _, val_probs = train_and_validate(cell, config, encoders, encoders.features, list(ds.labels), train, val,
                                             0, lambda event: None)
        probs.append(np.asarray(val_probs))
    assert np.array_equal(probs[0], probs[1])


def test_encoders_are_built_the_same_in_every_process(tmp_path, monkeypatch) -> None:
    """Random-init weights come from a seed named by the encoder, not from the process's generator: a Ray
    worker's copy has the fingerprint the driver recorded, and the global generator is left as it was."""
    import torch

    from jftzoo.bench.cells import Encoders
    from jftzoo.bench.grid import BenchConfig

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    prints = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        expected = torch.rand(3)
        torch.manual_seed(seed)
        encoders = Encoders(BenchConfig(random_init=True))
        prints.append(encoders.identity("resnet50"))
        assert encoders.weights["resnet50"] == "random"
        assert torch.equal(torch.rand(3), expected)  # building drew nothing from the global generator
    assert prints[0] == prints[1]


def test_a_task_no_node_can_hold_is_an_error_not_a_hang(tmp_path, monkeypatch) -> None:
    _need_ray()
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    res = CliRunner().invoke(cli, ["bench", *GRID, "--executor", "ray", "--cpus-per-cell", "64",
                                   "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "--cpus-per-cell 64: no node of the Ray cluster has that many" in res.output
    assert "Traceback" not in res.output
