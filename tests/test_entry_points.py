"""Third-party plugins found through real entry points (fake distributions on PYTHONPATH), run as the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = '''
from jftzoo import EncoderSpec, hookimpl

@hookimpl
def register_encoders(register):
    register(EncoderSpec(name="goodplug-text", modality="text", dim=16, source="acme/good",
                         factory="goodplug:build", license="mit"))
'''
RAISES = '''
from jftzoo import hookimpl

@hookimpl
def register_encoders(register):
    raise ValueError("raiseplug cannot count")
'''


def make_dist(root: Path, name: str, version: str, entry: str, module: str | None = None) -> None:
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[jftzoo]\n{entry}\n")
    if module is not None:
        (root / f"{name}.py").write_text(module)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    make_dist(tmp_path, "goodplug", "0.1", "good = goodplug", GOOD)
    make_dist(tmp_path, "badplug", "0.2", "bad = badplug_module_that_does_not_exist")
    make_dist(tmp_path, "raiseplug", "0.3", "raiser = raiseplug", RAISES)
    return tmp_path


def run(site: Path, *args: str, load: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JFTZOO_LOAD_PLUGINS"}
    env["PYTHONPATH"] = str(site)
    if load is not None:
        env["JFTZOO_LOAD_PLUGINS"] = load
    return subprocess.run([sys.executable, "-m", "jftzoo", *args], capture_output=True, text=True, env=env)


def test_entry_point_plugins_load_and_broken_ones_are_reported(site: Path):
    res = run(site, "list-encoders", "--json")
    assert res.returncode == 0, res.stderr
    names = {row["name"]: row for row in json.loads(res.stdout)}
    assert names["goodplug-text"]["provider"] == "good"
    assert "distilbert" in names  # built-ins survive a broken neighbour
    assert "badplug" in res.stderr and "failed to import" in res.stderr
    assert "badplug_module_that_does_not_exist" in res.stderr
    assert "raiser" in res.stderr and "raiseplug cannot count" in res.stderr
    assert "Traceback" not in res.stderr


def test_plugins_command_lists_versions_hooks_and_errors(site: Path):
    res = run(site, "plugins", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    good = next(p for p in data["plugins"] if p["name"] == "good")
    assert good["distribution"] == "goodplug" and good["version"] == "0.1"
    assert good["hooks"] == ["register_encoders"] and good["encoders"] == 1
    stages = {(e["distribution"], e["stage"]) for e in data["errors"]}
    assert ("badplug", "import") in stages and ("raiseplug", "register_encoders") in stages


def test_load_plugins_env_restricts_loading(site: Path):
    only_good = run(site, "list-encoders", "--json", load="goodplug")
    names = {row["name"] for row in json.loads(only_good.stdout)}
    assert "goodplug-text" in names
    assert "badplug" not in only_good.stderr and "raiseplug" not in only_good.stderr

    none = run(site, "list-encoders", "--json", load="")
    assert "goodplug-text" not in {row["name"] for row in json.loads(none.stdout)}
    assert none.stderr == ""

    missing = run(site, "list-encoders", "--json", load="goodplug,no-such-dist")
    assert missing.returncode == 0
    assert "no-such-dist" in missing.stderr and "not installed" in missing.stderr
