"""A full disk (ENOSPC) while writing a record, a prediction file, a cache entry or a model is a clear
error naming the file, and leaves nothing partial that a later run would trust."""

from __future__ import annotations

import errno
import json
import os

import pytest
from click.testing import CliRunner

from jftzoo.atomic import DiskFullError, atomic_write
from jftzoo.bench.store import ResultStore
from jftzoo.cli import cli


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", _full)
    with pytest.raises(DiskFullError, match=r"no space left on the device holding .*f\.bin"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_a_record_line_torn_by_a_full_disk_is_cut_off_at_once(tmp_path, monkeypatch) -> None:
    store = ResultStore(tmp_path).open()
    store.append({"key": "a"})
    whole = (tmp_path / "results.jsonl").read_bytes()
    real_write = os.write

    def half(fd, data):  # the device fills mid-line
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half)
    with pytest.raises(DiskFullError, match=r"results\.jsonl while writing a result record"):
        store.append({"key": "b"})
    monkeypatch.setattr(os, "write", real_write)
    assert (tmp_path / "results.jsonl").read_bytes() == whole  # the part that fitted was cut off at once
    assert [r["key"] for r in ResultStore(tmp_path).open().records()] == ["a"]


def test_bench_on_a_full_disk_exits_1_naming_the_file_and_resumes(tmp_path, monkeypatch) -> None:
    import jftzoo.bench.predictions as predictions

    out = tmp_path / "b"
    args = ["bench", "--fusion", "majority", "--limit", "30", "--folds", "2", "--out", str(out)]
    real, real_fsync = predictions.atomic_write, os.fsync
    state = {"writes": 0, "full": False}
    monkeypatch.setattr(os, "fsync", lambda fd: _full() if state["full"] else real_fsync(fd))

    def second_fills_the_disk(path, data, durable=True):
        state["writes"] += 1
        state["full"] = state["writes"] == 2  # the device is full while the second prediction file is written
        try:
            real(path, data, durable)
        finally:
            state["full"] = False

    monkeypatch.setattr(predictions, "atomic_write", second_fills_the_disk)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "no space left" in res.output and "predictions" in res.output, res.output
    assert "Traceback" not in res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 1  # the finished record only; the failed one has no record naming a missing file
    monkeypatch.setattr(predictions, "atomic_write", real)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len({r["key"] for r in rows}) == 2


def test_saving_a_model_on_a_full_disk_leaves_no_partial_weights(tmp_path, monkeypatch) -> None:
    from test_fusion_training import subset

    from jftzoo.train.classifier import FusionClassifier

    records, _ = subset()
    clf = FusionClassifier(fusion="concat", max_epochs=1, min_epochs=1, batch_size=8, workers=0).fit(list(records))
    monkeypatch.setattr(os, "fsync", _full)
    with pytest.raises(DiskFullError, match=r"model\.safetensors"):
        clf.save(tmp_path / "m")
    assert not (tmp_path / "m" / "model.safetensors").exists()
