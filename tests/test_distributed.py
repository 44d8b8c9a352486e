"""The trainer as 2 CPU processes (torchrun + Hugging Face Accelerate, gloo) matches one process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from jftzoo.datasets import load_dataset
from jftzoo.train.classifier import FusionClassifier


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_training_matches_one_process(tmp_path: Path):
    demo = load_dataset("emoji-sentiment")
    (tmp_path / "img").mkdir()
    lines = []
    for label in demo.labels:
        for r in [r for r in demo.records if r.label == label][:10]:
            shutil.copy(r.image, tmp_path / "img")
            lines.append(json.dumps({"id": r.id, "text": r.text, "image": f"img/{r.image.name}", "label": r.label}))
    (tmp_path / "posts.jsonl").write_text("\n".join(lines) + "\n")
    data = f"jsonl:{tmp_path / 'posts.jsonl'}"
    args = ["train", "--fusion", "concat", "--mode", "frozen", "--data", data, "--split", "6:2:2", "--epochs", "2",
            "--min-epochs", "2", "--batch-size", "8", "--dropout", "0", "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JFTZOO_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "jftzoo", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), "-m", "jftzoo", *args, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # only the first process prints
    for key in ("auc", "accuracy", "f1_macro", "f1_weighted", "best_epoch"):
        assert abs(a[key] - b[key]) < 1e-4, (key, a[key], b[key])
    records = load_dataset(data).records
    p1 = FusionClassifier.load(tmp_path / "one").predict_proba(records)
    p2 = FusionClassifier.load(tmp_path / "two").predict_proba(records)
    np.testing.assert_allclose(p1, p2, atol=1e-4)
