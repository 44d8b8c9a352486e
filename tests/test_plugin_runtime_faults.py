"""A plugin whose encoder factory raises at build time: the bench cells that use it fail alone, recorded
with the plugin named, and the rest of the grid runs; listing still works."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner
from torch import nn

from jftzoo import hookimpl
from jftzoo.cli import cli
from jftzoo.encoders.base import Encoder, EncoderOutput
from jftzoo.registry import EncoderSpec


def _explodes(*_: object, **__: object) -> object:
    raise RuntimeError("boom in the factory")


class FaultyPlugin:
    @hookimpl
    def register_encoders(self, register):  # type: ignore[no-untyped-def]
        register(EncoderSpec(name="exploding", modality="vision", dim=8, source="fake/exploding",
                             factory=_explodes))


def test_a_factory_that_raises_fails_its_cells_alone(register_plugin, tmp_path) -> None:
    register_plugin(FaultyPlugin(), "faulty-plugin")
    listing = CliRunner().invoke(cli, ["list-encoders", "--json"])
    assert listing.exit_code == 0 and "exploding" in listing.output
    out = tmp_path / "b"
    res = CliRunner().invoke(cli, ["bench", "--fusion", "concat", "--vision", "efficientnet_lite0,exploding",
                                   "--limit", "30", "--folds", "2", "--epochs", "1", "--out", str(out)])
    assert res.exit_code == 1, res.output  # a failed cell makes the run's exit 1, after the whole grid ran
    assert "Traceback" not in res.output
    assert "exploding" in res.output and "faulty-plugin" in res.output and "boom in the factory" in res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    visions = {r["vision"] for r in rows}
    assert "exploding" not in visions and "efficientnet_lite0" in visions
    assert {r["fusion"] for r in rows if r["vision"] == "efficientnet_lite0"} == {"concat", "image-only"}
    assert len(rows) == 2 * 4  # majority, text-only, image-only, concat with the working encoder, 2 folds


# -- a plugin encoder that builds fine and raises while running -------------------------------------------------
class FlakyVision(Encoder):
    """Builds fine; its forward raises (always, or only while training), as a buggy plugin's might."""

    modality, embed_dim, token_dim = "vision", 8, 8

    def __init__(self, name: str, when: str) -> None:
        super().__init__(name)
        self.when = when
        self.proj = nn.Linear(8, 8)

    def preprocess(self, items):  # type: ignore[no-untyped-def]
        return {"x": torch.ones(len(items), 8)}

    def forward(self, batch):  # type: ignore[no-untyped-def]
        if self.when == "always" or torch.is_grad_enabled():
            raise RuntimeError("boom while running")
        pooled = self.proj(batch["x"])  # (B, 8)
        return EncoderOutput(pooled, pooled[:, None], torch.ones(pooled.shape[0], 1, dtype=torch.bool))

    def layer_groups(self):  # type: ignore[no-untyped-def]
        return [[self.proj]]


class FlakyPlugin:
    @hookimpl
    def register_encoders(self, register):  # type: ignore[no-untyped-def]
        for when in ("always", "training"):
            register(EncoderSpec(name=f"flaky-{when}", modality="vision", dim=8, source="fake/flaky",
                                 factory=lambda spec, pretrained=True, weights=None, _w=when: FlakyVision(spec.name,
                                                                                                          _w)))


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_an_encoder_raising_in_the_frozen_pass_fails_its_cells_alone(register_plugin, tmp_path) -> None:
    register_plugin(FlakyPlugin(), "flaky-plugin")
    out = tmp_path / "b"
    res = CliRunner().invoke(cli, ["bench", "--fusion", "concat", "--vision", "efficientnet_lite0,flaky-always",
                                   "--limit", "30", "--folds", "2", "--epochs", "1", "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and not isinstance(res.exception, RuntimeError)
    assert "flaky-plugin" in res.output and "boom while running" in res.output and "raised while running" in res.output
    rows = _rows(out)
    assert {r["vision"] for r in rows} == {None, "efficientnet_lite0"}  # majority/text-only, and the good pair
    assert len(rows) == 2 * 4


def test_an_encoder_raising_mid_training_fails_its_tasks_alone(register_plugin, tmp_path) -> None:
    register_plugin(FlakyPlugin(), "flaky-plugin")
    out = tmp_path / "b"
    res = CliRunner().invoke(cli, ["bench", "--fusion", "concat", "--mode", "joint", "--text", "minilm",
                                   "--vision", "flaky-training", "--limit", "30", "--folds", "2",
                                   "--epochs", "1", "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and not isinstance(res.exception, RuntimeError)
    assert "flaky-plugin" in res.output and "boom while running" in res.output
    rows = _rows(out)  # majority and text-only ran; image-only and concat (they train the flaky encoder) failed
    assert sorted(r["fusion"] for r in rows) == ["majority", "majority", "text-only", "text-only"]


def test_train_names_the_plugin_whose_code_raised(register_plugin, tmp_path) -> None:
    register_plugin(FlakyPlugin(), "flaky-plugin")
    res = CliRunner().invoke(cli, ["train", "--fusion", "concat", "--mode", "joint", "--vision", "flaky-training",
                                   "--epochs", "1", "--out", str(tmp_path / "m")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "a bug in plugin 'flaky-plugin', not in jftzoo" in res.output and "boom while running" in res.output


def test_a_jftzoo_bug_still_stops_the_run(register_plugin, tmp_path, monkeypatch) -> None:
    """Only a plugin's code is blamed: a bug of jftzoo's own would fail every cell alike, so it stops the run."""
    import jftzoo.bench.runner as runner

    register_plugin(FlakyPlugin(), "flaky-plugin")  # a plugin is loaded, but not the one that raises
    monkeypatch.setattr(runner, "run_task", None)  # calling it raises TypeError in jftzoo's own frame
    res = CliRunner().invoke(cli, ["bench", "--fusion", "concat", "--limit", "30", "--folds", "2", "--epochs", "1",
                                   "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "Internal error: TypeError" in res.output
    assert "a bug in jftzoo or a plugin" in res.output and "flaky-plugin" not in res.output
