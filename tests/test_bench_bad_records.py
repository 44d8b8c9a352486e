"""bench --on-bad: a corrupt image stops the bench with the list (default) or is left out and listed."""

from __future__ import annotations

import json

from click.testing import CliRunner
from test_fusion_training import subset, write_posts

from jftzoo.cli import cli


def _posts(tmp_path) -> str:
    records, _ = subset()
    data = write_posts(tmp_path, records, (json.dumps({"id": "broken-1", "text": "a post", "image": "img/broken.png",
                                                       "label": "positive"}),))
    (tmp_path / "posts" / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return data


def test_bench_skips_and_lists_a_corrupt_image(tmp_path) -> None:
    data = _posts(tmp_path)
    out = tmp_path / "bench"
    args = ["bench", "--data", data, "--fusion", "majority", "--folds", "2", "--out", str(out)]
    stopped = CliRunner().invoke(cli, args)
    assert stopped.exit_code == 1 and "broken-1" in stopped.output and "--on-bad skip" in stopped.output
    result = CliRunner().invoke(cli, [*args, "--on-bad", "skip"])
    assert result.exit_code == 0, result.output
    assert "1 bad record(s)" in result.output and "broken-1" in result.output
    listed = json.loads((out / "bad_records.json").read_text())
    (problems,) = listed.values()
    assert [p["id"] for p in problems] == ["broken-1"] and problems[0]["file"].endswith("broken.png")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert records and all(r["n_records"] == 18 for r in records)  # the 18 good posts, the bad one left out
