"""`jftzoo predict --data ... --output FILE` writes predictions chunk by chunk (.csv or .jsonl), the same
as the printed ones, whatever the chunk size."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from test_fusion_training import subset, write_posts

from jftzoo.cli import cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from jftzoo.train.classifier import FusionClassifier

    records, _ = subset()
    out = tmp_path_factory.mktemp("m")
    FusionClassifier(fusion="concat", max_epochs=1, min_epochs=1, batch_size=8, workers=0).fit(list(records)).save(out)
    return out


def test_output_files_match_the_printed_predictions(model_dir, tmp_path, monkeypatch) -> None:
    records, _ = subset()
    data = write_posts(tmp_path, records)
    printed = json.loads(CliRunner().invoke(cli, ["predict", str(model_dir), "--data", data, "--json"]).output)
    res = CliRunner().invoke(cli, ["predict", str(model_dir), "--data", data, "--output", str(tmp_path / "p.jsonl"),
                                   "--chunk", "5"])
    assert res.exit_code == 0 and "18 prediction(s) written" in res.output, res.output
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in printed] and [r["label"] for r in rows] == [
        r["label"] for r in printed]
    for got, want in zip(rows, printed, strict=True):
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-5)
    import jftzoo.train.classifier as classifier

    sizes: list[int] = []
    real = classifier.FusionClassifier.predict_proba
    monkeypatch.setattr(classifier.FusionClassifier, "predict_proba",
                        lambda self, X, *a, **k: sizes.append(len(X)) or real(self, X, *a, **k))
    res = CliRunner().invoke(cli, ["predict", str(model_dir), "--data", data, "--output", str(tmp_path / "p.csv"),
                                   "--chunk", "7"])
    assert res.exit_code == 0, res.output
    assert sizes == [7, 7, 4]  # never more than a chunk in memory
    with open(tmp_path / "p.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["id"] for r in table] == [r["id"] for r in printed]
    assert set(table[0]) == {"id", "label", "p_negative", "p_neutral", "p_positive"}
    res = CliRunner().invoke(cli, ["predict", str(model_dir), "--data", data, "--output", str(tmp_path / "p.txt")])
    assert res.exit_code == 2 and ".csv or .jsonl" in res.output


def test_a_run_stopped_mid_file_never_leaves_the_final_name(model_dir, tmp_path, monkeypatch) -> None:
    """Only a finished file takes the name asked for: a failure (or a full disk) after the first chunk leaves
    nothing under it and removes the partial rows; Ctrl-C keeps them, clearly named FILE.partial."""
    import jftzoo.train.classifier as classifier

    records, _ = subset()
    data = write_posts(tmp_path, records)
    real = classifier.FusionClassifier.predict_proba
    calls = {"n": 0}

    def fails_on_the_second_chunk(self, items, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise stop
        return real(self, items, *args, **kwargs)

    monkeypatch.setattr(classifier.FusionClassifier, "predict_proba", fails_on_the_second_chunk)
    out = tmp_path / "p.csv"
    for stop in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        calls["n"] = 0
        res = CliRunner().invoke(cli, ["predict", str(model_dir), "--data", data, "--output", str(out),
                                       "--chunk", "5"])
        assert res.exit_code != 0 and not out.exists()
        if isinstance(stop, OSError):
            assert "no space left" in res.output and not (tmp_path / "p.csv.partial").exists()
    rows = (tmp_path / "p.csv.partial").read_text().splitlines()
    assert len(rows) == 1 + 5  # the header and the first chunk's whole rows
