"""A plugin whose encoder factory raises at build time: the bench cells that use it fail alone, recorded
with the plugin named, and the rest of the grid runs; listing still works."""

from __future__ import annotations

import json

from click.testing import CliRunner

from jftzoo import hookimpl
from jftzoo.cli import cli
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
