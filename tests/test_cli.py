"""The CLI: output formats, exit codes (0 ok, 2 usage, 1 runtime), messages instead of tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from jftzoo import __version__
from jftzoo.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_version_and_help():
    assert invoke("--version").output.strip() == f"jftzoo, version {__version__}"
    res = invoke("-h")
    assert res.exit_code == 0 and "list-encoders" in res.output and "embed" in res.output


def test_list_encoders_json_schema():
    res = invoke("list-encoders", "--json")
    assert res.exit_code == 0
    rows = json.loads(res.output)
    assert len(rows) >= 12
    for row in rows:
        assert {"name", "modality", "dim", "source", "offline", "params", "license"} <= set(row)
        assert isinstance(row["offline"], bool) and isinstance(row["dim"], int)
    by_name = {r["name"]: r for r in rows}
    assert by_name["minilm"]["offline"] is True and by_name["minilm"]["weights_from"] == "packaged"
    assert by_name["efficientnet_lite0"]["offline"] is True


def test_list_encoders_table_filters():
    res = invoke("list-encoders", "--modality", "vision")
    assert res.exit_code == 0
    assert "resnet50" in res.output and "distilbert" not in res.output
    assert "resnet50.tv_in1k" in res.output and "yes (packaged)" in res.output
    rows = json.loads(invoke("list-encoders", "clip*", "--json").output)
    assert [r["name"] for r in rows] == ["clip-text", "clip-vision"]


def test_unknown_names_exit_2_with_suggestion():
    res = invoke("list-encoders", "convnxt")
    assert res.exit_code == 2 and "Did you mean 'convnext'" in res.output
    res = invoke("embed", "distilbrt", "--text", "hi")
    assert res.exit_code == 2 and "distilbert" in res.output
    assert invoke("list-encoders", "--modality", "audio").exit_code == 2
    assert invoke("no-such-command").exit_code == 2


def test_a_library_usage_error_points_at_the_running_commands_help(tmp_path: Path):
    """The library raises without knowing the command; the message names the one that ran, nested or not."""
    res = invoke("results", "show", "--results", str(tmp_path / "nothing"))
    assert res.exit_code == 2 and "no results store" in res.output
    assert " results show [OPTIONS]" in res.output and " results show --help'" in res.output
    res = invoke("bench", "--split", "8:1", "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and " bench --help'" in res.output


def test_embed_usage_errors_exit_2():
    assert invoke("embed", "minilm").exit_code == 2
    res = invoke("embed", "minilm", "--image", "x.jpg")
    assert res.exit_code == 2 and "text encoder" in res.output
    assert invoke("embed", "minilm", "--text", "a", "--random-init", "--weights", "w").exit_code == 2


def test_embed_text_json_with_packaged_weights():
    res = invoke("embed", "minilm", "--text", "I love this", "--text", "so sad", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["input"] for r in rows] == ["I love this", "so sad"]
    assert all(r["weights"] == "pretrained" and len(r["embedding"]) == 384 for r in rows)


def test_embed_random_init_is_labelled_random(tmp_path: Path):
    img = tmp_path / "red.png"
    Image.new("RGB", (64, 64), "red").save(img)
    res = invoke("embed", "resnet18", "--random-init", "--image", str(img))
    assert res.exit_code == 0, res.output
    assert "random (not pretrained)" in res.output
    rows = json.loads(invoke("embed", "resnet18", "--random-init", "--image", str(img), "--json").output)
    assert rows[0]["weights"] == "random" and rows[0]["dim"] == 512


def test_bad_image_is_reported_with_its_file(tmp_path: Path):
    fake = tmp_path / "not-an-image.jpg"
    fake.write_text("hello")
    res = invoke("embed", "resnet18", "--random-init", "--image", str(fake))
    assert res.exit_code == 1
    assert "not-an-image.jpg" in res.output and "not an image" in res.output
    assert "Traceback" not in res.output
    truncated = tmp_path / "cut.jpg"
    Image.new("RGB", (256, 256), "blue").save(tmp_path / "full.jpg")
    truncated.write_bytes((tmp_path / "full.jpg").read_bytes()[:400])
    res = invoke("embed", "resnet18", "--random-init", "--image", str(truncated))
    assert res.exit_code == 1 and "cut.jpg" in res.output and "truncated" in res.output


def test_missing_weights_exit_1_with_the_ways_to_get_them(tmp_path: Path):
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "JFTZOO_LOAD_PLUGINS": ""}
    res = subprocess.run(
        [sys.executable, "-m", "jftzoo", "embed", "convnext", "--image", "x.jpg"],
        capture_output=True, text=True, env=env,
    )
    assert res.returncode == 1
    assert "no pre-trained weights for encoder 'convnext'" in res.stderr
    assert "convnext_tiny.fb_in1k" in res.stderr and "--random-init" in res.stderr
    assert "Traceback" not in res.stderr
