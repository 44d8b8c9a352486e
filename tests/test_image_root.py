"""--image-root: where a csv/jsonl manifest's images live; paths resolve under it and never escape it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from jftzoo.cli import cli
from jftzoo.datasets import load_dataset
from jftzoo.datasets.records import BadDataError
from jftzoo.errors import UsageError


def _layout(tmp_path, escape: bool = False):
    (tmp_path / "meta").mkdir()
    (tmp_path / "pics").mkdir()
    rows = ["id,text,image,label"]
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(tmp_path / "pics" / f"{i}.png")
        rows.append(f"{i},post {i},{i}.png,{'positive' if i % 2 else 'negative'}")
    if escape:
        Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
        rows.append("9,sneaky,../secret.png,positive")
    (tmp_path / "meta" / "posts.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{tmp_path / 'meta' / 'posts.csv'}"


def test_paths_resolve_under_the_image_root(tmp_path) -> None:
    data = _layout(tmp_path)
    ds = load_dataset(data, image_root=str(tmp_path / "pics"))
    assert [r.image for r in ds.records] == [(tmp_path / "pics" / f"{i}.png").resolve() for i in range(4)]
    with pytest.raises(BadDataError, match="4 bad record"):  # relative to the manifest, the images are missing
        load_dataset(data)


def test_an_escaping_path_is_a_bad_record(tmp_path) -> None:
    data = _layout(tmp_path, escape=True)
    with pytest.raises(BadDataError, match=r"'\.\./secret\.png' escapes the dataset root"):
        load_dataset(data, image_root=str(tmp_path / "pics"))
    ds = load_dataset(data, image_root=str(tmp_path / "pics"), on_bad="skip")
    assert [r.id for r in ds.records] == ["0", "1", "2", "3"] and ds.skipped[0].record_id == "9"


def test_data_check_takes_image_root_and_other_kinds_refuse_it(tmp_path) -> None:
    data = _layout(tmp_path)
    result = CliRunner().invoke(cli, ["data", "check", "--data", data, "--image-root", str(tmp_path / "pics"),
                                      "--folds", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    with pytest.raises(UsageError, match="does not take option"):
        load_dataset("emoji-sentiment", image_root=str(tmp_path))
