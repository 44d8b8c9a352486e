"""The input pipeline: planned batches (length bucketing) and DataLoader workers that change speed, not results."""

from __future__ import annotations

import functools
import os
import signal
import time

import numpy as np
import pytest
import torch

import jftzoo
from jftzoo.datasets import load_dataset
from jftzoo.fusion.heads import HeadConfig
from jftzoo.fusion.registry import build_head
from jftzoo.train.model import FusionModel
from jftzoo.train.pipeline import plan_batches
from jftzoo.train.trainer import TrainConfig, fit, predict_proba


def test_plain_plan_is_a_seeded_shuffle_in_fixed_size_batches():
    plan = plan_batches(10, 4, torch.Generator().manual_seed(3))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()
    assert plan == [order[0:4], order[4:8], order[8:10]]
    assert plan_batches(5, 2, None) == [[0, 1], [2, 3], [4]]


def test_length_bucketing_sees_every_record_once_in_batches_of_similar_length():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(1, 300, 2000)]
    bucketed = plan_batches(2000, 16, torch.Generator().manual_seed(0), lengths)
    plain = plan_batches(2000, 16, torch.Generator().manual_seed(0))
    assert sorted(i for b in bucketed for i in b) == list(range(2000))  # every record once per epoch
    assert max(len(b) for b in bucketed) == 16

    def padding(plan: list[list[int]]) -> int:  # tokens of padding if each batch pads to its longest
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in plan)

    assert padding(bucketed) < padding(plain) / 5
    again = plan_batches(2000, 16, torch.Generator().manual_seed(0), lengths)
    other = plan_batches(2000, 16, torch.Generator().manual_seed(1), lengths)
    assert bucketed == again and bucketed != other  # seeded, and the batch order is shuffled
    firsts = [lengths[b[0]] for b in bucketed[:40]]
    assert firsts != sorted(firsts)


@functools.cache
def records() -> tuple:
    ds = load_dataset("emoji-sentiment")
    by_label = {label: [r for r in ds.records if r.label == label][:4] for label in ds.labels}
    return tuple(r for rs in by_label.values() for r in rs), ds.labels


def model() -> FusionModel:
    torch.manual_seed(0)
    text, vision = jftzoo.get_encoder("minilm"), jftzoo.get_encoder("efficientnet_lite0")
    cfg = HeadConfig(3, text.embed_dim, vision.embed_dim, d=16, hidden=16, dropout=0.0)
    return FusionModel(text, vision, build_head("concat", cfg))


def test_two_workers_give_the_same_losses_and_predictions_as_in_process():
    recs, labels = records()
    train, val = list(recs[::2]) + list(recs[1::4]), list(recs[3::4])
    runs = []
    for workers in (0, 2):
        m = model()
        cfg = TrainConfig(mode="top-k", top_k=1, min_epochs=2, max_epochs=2, batch_size=4, lr_encoder=1e-4,
                          workers=workers, prefix_cache=False)
        result = fit(m, train, labels, cfg, validation=val)
        runs.append(([h["train_loss"] for h in result.history], [h["val_loss"] for h in result.history],
                     predict_proba(m, list(recs), 4, workers=workers)))
    (loss0, val0, p0), (loss2, val2, p2) = runs
    np.testing.assert_allclose(loss0, loss2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(val0, val2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(p0, p2, rtol=0, atol=1e-6)


def test_default_workers_leave_the_cores_to_the_step_on_a_cpu(monkeypatch):
    from jftzoo.train import pipeline

    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(pipeline.torch, "get_num_threads", lambda: 16)
    assert pipeline.default_workers("cpu") == 0  # every core runs the step's matmuls
    monkeypatch.setattr(pipeline.torch, "get_num_threads", lambda: 12)
    assert pipeline.default_workers("cpu") == 4  # the cores torch leaves free
    assert pipeline.default_workers("cuda") == 8  # the step runs on the device: feed it
    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 2)
    assert pipeline.default_workers("cuda") == 1


def _signals_itself(main: int, sig: int, texts: list[str], images: list[object]) -> dict:  # type: ignore[type-arg]
    if os.getpid() != main:  # in a worker: the signal `timeout`, a terminal or a scheduler sends the whole group
        os.kill(os.getpid(), sig)
        time.sleep(0.2)
    return {"text": {"n": torch.tensor([len(texts)])}}


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_workers_leave_stopping_to_the_main_process(sig: str) -> None:
    """A SIGTERM or SIGINT sent to every process of the job reached the DataLoader workers too; one that died of it
    made torch raise "DataLoader worker ... is killed by signal" in the main process, which could win the race with
    the main process's own clean stop (an internal error, exit 1, seen on a GPU run). Workers ignore both: the main
    process alone stops, and shuts its workers down."""
    from jftzoo.datasets.records import Record
    from jftzoo.train.pipeline import preprocessed

    records = [Record(id=f"r{i}", text="t", image=None, label="a") for i in range(8)]
    preprocess = functools.partial(_signals_itself, os.getpid(), getattr(signal, sig))
    out = list(preprocessed(preprocess, records, [[0, 1], [2, 3], [4, 5], [6, 7]], workers=2))
    assert [idx for idx, _, _ in out] == [[0, 1], [2, 3], [4, 5], [6, 7]]
