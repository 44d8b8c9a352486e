"""`jftzoo bench`: grid expansion and validation, the embedding cache's pass counting, resume after
kill -9, the paper's Table 1 layout, the JSON schema, the heatmap and the results commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from jftzoo import EncoderSpec, hookimpl
from jftzoo.bench.grid import BenchConfig, Cell, expand
from jftzoo.bench.runner import run_bench
from jftzoo.cli import cli
from jftzoo.encoders.base import Encoder, EncoderOutput
from jftzoo.errors import UsageError
from jftzoo.images import load_image

ROWS_KEYS = {"dataset", "text", "vision", "fusion", "mode", "weights", "auc_mean", "auc_std", "accuracy_mean",
             "f1_macro_mean", "folds"}


# -- grid expansion and validation -----------------------------------------------------------------------------
def test_the_grid_is_the_product_with_equal_computations_collapsed():
    config = BenchConfig(data=["emoji-sentiment"], text=["minilm", "distilbert"], vision=["resnet50", "vit"],
                         fusion=["concat", "text-only", "svm", "clip"], mode=["frozen", "joint"])
    cells = expand(config)
    d = "emoji-sentiment"
    concat = {c for c in cells if c.fusion == "concat"}
    assert concat == {Cell(d, t, v, "concat", m) for t in ("minilm", "distilbert") for v in ("resnet50", "vit")
                      for m in ("frozen", "joint")}
    text_only = {Cell(d, t, None, "text-only", m) for t in ("minilm", "distilbert") for m in ("frozen", "joint")}
    assert {c for c in cells if c.fusion == "text-only"} == text_only
    assert {c.mode for c in cells if c.fusion == "svm"} == {"frozen"} and sum(c.fusion == "svm" for c in cells) == 4
    assert {(c.text, c.vision, c.mode) for c in cells if c.fusion == "clip"} == {
        ("clip-text", "clip-vision", "frozen"), ("clip-text", "clip-vision", "joint")}
    assert len(cells) == len(set(cells)) == 8 + 4 + 4 + 2


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("text", ["minilmm"], "Did you mean 'minilm'"),
    ("vision", ["convnxt"], "Did you mean 'convnext'"),
    ("text", ["resnet50"], "is a vision encoder"),
    ("fusion", ["concta"], "Did you mean 'concat'"),
    ("mode", ["frozne"], "Did you mean 'frozen'"),
    ("data", ["mvsa-singel:/x"], "Did you mean 'mvsa-single'"),
])
def test_unknown_names_are_usage_errors_with_suggestions(field, value, hint):
    with pytest.raises(UsageError, match=hint):
        expand(BenchConfig(**{field: value}))


def test_cli_rejects_unknown_names_with_exit_2_before_any_work(tmp_path):
    res = CliRunner().invoke(cli, ["bench", "--text", "minilm,distilbrt", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "Did you mean 'distilbert'" in res.output
    assert not (tmp_path / "r").exists()
    res = CliRunner().invoke(cli, ["bench", "--folds", "3", "--split", "8:1:1", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "not both" in res.output


# -- counting encoders: N + M passes, then 0 -------------------------------------------------------------------
CALLS: Counter[str] = Counter()  # items each fake encoder's forward has seen


class CountingText(Encoder):
    modality, embed_dim, token_dim = "text", 8, 8

    def __init__(self, name: str) -> None:
        super().__init__(name)
        with torch.random.fork_rng():  # fixed weights per name, as a pre-trained encoder's would be
            torch.manual_seed(sum(map(ord, name)))
            self.proj = nn.Linear(8, 8)

    def preprocess(self, items):
        codes = [[(ord(c) % 29) / 29 for c in (t + " " * 8)[:8]] for t in items]
        return {"x": torch.tensor(codes, dtype=torch.float32).reshape(len(items), 8)}

    def forward(self, batch):
        CALLS[self.name] += batch["x"].shape[0]
        pooled = self.proj(batch["x"])  # (B, 8)
        return EncoderOutput(pooled, pooled[:, None], torch.ones(pooled.shape[0], 1, dtype=torch.bool))

    def layer_groups(self):
        return [[self.proj]]


class CountingVision(CountingText):
    modality = "vision"

    def preprocess(self, items):
        pixels = [torch.tensor(list(load_image(p, i).resize((2, 2)).getdata()), dtype=torch.float32).flatten()[:8]
                  for i, p in enumerate(items)]
        return {"x": torch.stack(pixels) / 255 if pixels else torch.zeros(0, 8)}


class CountingPlugin:
    @hookimpl
    def register_encoders(self, register):
        for name in ("count-t1", "count-t2"):
            register(EncoderSpec(name, "text", 8, "fake",
                                 lambda spec, pretrained=True, weights=None: CountingText(spec.name)))
        for name in ("count-v1", "count-v2"):
            register(EncoderSpec(name, "vision", 8, "fake",
                                 lambda spec, pretrained=True, weights=None: CountingVision(spec.name)))


def test_a_frozen_grid_runs_n_plus_m_encoder_passes_then_none(register_plugin, tmp_path):
    from jftzoo.cache import DiskCache

    register_plugin(CountingPlugin(), "counting-encoders")
    config = BenchConfig(text=["count-t1", "count-t2"], vision=["count-v1", "count-v2"], fusion=["concat", "svm"],
                         folds=2, epochs=1, limit=30)
    CALLS.clear()
    first = run_bench(config, tmp_path / "run1", cache=DiskCache(tmp_path / "cache"))
    assert first.encoder_passes == {"count-t1": 1, "count-t2": 1, "count-v1": 1, "count-v2": 1}  # N + M, not N x M
    assert first.items_encoded == dict.fromkeys(first.encoder_passes, 30) and dict(CALLS) == first.items_encoded
    assert first.new_records == 2 * 2 * 2 * 2, first.failed  # 4 pairs x 2 heads x 2 folds
    CALLS.clear()
    second = run_bench(config, tmp_path / "run2", cache=DiskCache(tmp_path / "cache"))  # retrains, reads the cache
    assert second.new_records == 16 and second.encoder_passes == {} and sum(CALLS.values()) == 0
    again = run_bench(config, tmp_path / "run2", cache=DiskCache(tmp_path / "cache"))  # same store: all finished
    assert again.new_records == 0 and again.skipped_records == 16 and len(again.records) == 16


def test_a_corrupt_cache_entry_is_recomputed_in_a_bench_run(register_plugin, tmp_path):
    from jftzoo.cache import DiskCache

    register_plugin(CountingPlugin(), "counting-encoders")
    config = BenchConfig(text=["count-t1"], vision=["count-v1"], fusion=["concat"], folds=2, epochs=1, limit=20)
    run_bench(config, tmp_path / "a", cache=DiskCache(tmp_path / "cache"))
    victim = sorted((tmp_path / "cache").glob("embeddings/count-v1/*/*/*.safetensors"))[3]
    victim.write_bytes(victim.read_bytes()[:30])
    CALLS.clear()
    cache = DiskCache(tmp_path / "cache")
    report = run_bench(config, tmp_path / "b", cache=cache)
    assert cache.corrupt == {"count-v1": 1} and dict(CALLS) == {"count-v1": 1} and report.new_records == 2


# -- resume after kill -9 --------------------------------------------------------------------------------------
def _bench_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "jftzoo", "bench", "--fusion", "text-only,image-only,concat,late,gated",
            "--limit", "60", "--folds", "3", "--epochs", "3", "--out", str(out), "--json"]


def test_a_run_killed_with_sigkill_resumes_without_losing_or_duplicating_records(tmp_path):
    env = {**os.environ, "JFTZOO_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "store"
    results = out / "results.jsonl"
    proc = subprocess.Popen(_bench_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [line for line in results.read_bytes().splitlines(keepends=True) if line.endswith(b"\n")]
    assert len(before) >= 3
    with results.open("ab") as f:  # and a record cut in the middle of its write, as a kill mid-write leaves it
        f.write(b'{"key": "half-written", "metr')
    done = subprocess.run(_bench_cmd(out), env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    after = results.read_bytes().splitlines(keepends=True)
    assert after[: len(before)] == before  # nothing finished was lost or rewritten
    keys = [json.loads(line)["key"] for line in after]
    assert len(keys) == len(set(keys)) == 5 * 3  # every (cell, fold) once: no duplicate, none missing
    rows = json.loads(done.stdout)
    assert {r["fusion"] for r in rows} == {"text-only", "image-only", "concat", "late", "gated"}
    assert all(r["folds"] == 3 for r in rows)


# -- the paper protocol, JSON schema, heatmap, results commands ------------------------------------------------
def test_paper_protocol_prints_table_1_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "paper"
    res = CliRunner().invoke(cli, ["bench", "--protocol", "paper", "--text", "minilm", "--vision", "efficientnet_lite0",
                                   "--limit", "36", "--folds", "2", "--epochs", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = (out / "table1.md").read_text().splitlines()
    assert table[0] == "| Method | emoji-sentiment |"
    labels = [line.split("|")[1].strip() for line in table[2:8]]
    assert labels == ["SVM (concatenation)", "efficientnet_lite0 only", "minilm only", "efficientnet_lite0+minilm",
                      "CLIP", "Joint fine-tuning (ours)"]
    cells = [line.split("|")[2].strip() for line in table[2:8]]
    assert all("±" in c for i, c in enumerate(cells) if i != 4)  # AUC mean ± std over the 2 folds
    assert cells[4] == "unavailable"  # CLIP's weights are hub-only and --random-init was not given
    assert "inner validation split" in (out / "table1.md").read_text() and "Table 1" in res.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["fusion"], r["mode"]) for r in records} == {
        ("svm", "frozen"), ("image-only", "joint"), ("text-only", "joint"), ("concat", "joint"),
        ("attention-paper", "joint")}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    env_before = os.environ.get("JFTZOO_CACHE_DIR")
    os.environ["JFTZOO_CACHE_DIR"] = str(tmp / "cache")
    try:
        res = CliRunner().invoke(cli, ["bench", "--fusion", "svm,concat,gated", "--text", "minilm",
                                       "--limit", "40", "--folds", "2", "--seeds", "0,1", "--out", str(tmp / "store"),
                                       "--json"])
    finally:
        if env_before is None:
            os.environ.pop("JFTZOO_CACHE_DIR")
        else:
            os.environ["JFTZOO_CACHE_DIR"] = env_before
    return res, tmp


def test_json_rows_follow_the_schema(small_run):
    res, _ = small_run
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["fusion"] for r in rows] == ["svm", "concat", "gated"]
    for r in rows:
        assert set(r) >= ROWS_KEYS
        assert r["weights"] == "pretrained" and r["dataset"] == "emoji-sentiment" and r["mode"] == "frozen"
        assert (r["text"], r["vision"]) == ("minilm", "efficientnet_lite0")
        assert 0.0 <= r["auc_mean"] <= 1.0 and r["auc_std"] >= 0.0 and 0.0 <= r["f1_macro_mean"] <= 1.0
        assert r["folds"] == 4 and r["seeds"] == [0, 1]  # 2 folds x 2 seeds


def test_store_records_carry_config_split_cost_and_versions(small_run):
    _, tmp = small_run
    records = [json.loads(line) for line in (tmp / "store" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 12 and len({r["key"] for r in records}) == 12
    r = records[0]
    assert {"config_hash", "protocol", "split", "metrics", "wall_s", "samples_per_s", "peak_rss_mb", "device",
            "versions", "fold", "seed"} <= set(r)
    assert len(r["split"]["checksum"]) == 64 and r["versions"]["torch"] == torch.__version__
    gated = [x for x in records if x["fusion"] == "gated"]
    assert all(abs(sum(x["gate_weights_test_mean"]) - 1) < 1e-5 for x in gated)  # how much each modality counted


def test_heatmap_is_a_png_with_one_panel_per_head(small_run):
    _, tmp = small_run
    png = tmp / "store" / "heatmap.png"
    with Image.open(png) as img:
        assert img.format == "PNG"
        panels = json.loads(img.text["jftzoo-panels"])
    assert panels == [["emoji-sentiment", "svm", "frozen"], ["emoji-sentiment", "concat", "frozen"],
                      ["emoji-sentiment", "gated", "frozen"]]


def test_results_show_and_export(small_run, tmp_path):
    _, tmp = small_run
    store = str(tmp / "store")
    shown = CliRunner().invoke(cli, ["results", "show", "--results", store, "--json"])
    assert shown.exit_code == 0 and len(json.loads(shown.stdout)) == 3
    res = CliRunner().invoke(cli, ["results", "export", "--results", store, "--format", "csv", "--format", "md",
                                   "--format", "json", "--out", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    csv_lines = (tmp_path / "x" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("dataset,text,vision,fusion,mode,weights,auc_mean") and len(csv_lines) == 4
    assert "| minilm | efficientnet_lite0 | gated | frozen |" in (tmp_path / "x" / "results.md").read_text()
    assert len(json.loads((tmp_path / "x" / "results.json").read_text())) == 3
    missing = CliRunner().invoke(cli, ["results", "show", "--results", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no results store" in missing.output


def test_cache_info_and_clear_commands(tmp_path, monkeypatch):
    from jftzoo.cache import DiskCache
    from jftzoo.features import Entry

    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path))
    cache = DiskCache()
    assert cache.root == tmp_path / "embeddings"
    for enc, fp in (("minilm", "a" * 64), ("resnet50", "b" * 64)):
        ns = cache.namespace(enc, fp)
        cache.describe(ns, {"encoder": enc, "fingerprint": fp})
        for i in range(3):
            cache.put(ns, f"{i:02d}" + "c" * 62, Entry(torch.ones(4) * i, None))
    info = CliRunner().invoke(cli, ["cache", "info", "--json"])
    assert info.exit_code == 0
    got = json.loads(info.stdout)
    assert got["path"] == str(tmp_path / "embeddings")
    assert [(n["encoder"], n["entries"]) for n in got["namespaces"]] == [("minilm", 3), ("resnet50", 3)]
    cleared = CliRunner().invoke(cli, ["cache", "clear", "--encoder", "minilm"])
    assert cleared.exit_code == 0 and "removed 3 entries" in cleared.output
    assert [i.encoder for i in DiskCache().info()] == ["resnet50"]


def test_tables_label_each_encoders_weights_on_its_own():
    from jftzoo.bench.report import summarize, to_markdown

    def record(fold: str, auc: float) -> dict:
        return {"dataset": "d", "text": "minilm", "vision": "resnet18", "fusion": "concat", "mode": "frozen",
                "weights": "random", "text_weights": "pretrained", "vision_weights": "random", "seed": 0,
                "fold": fold, "wall_s": 1.0, "samples_per_s": 10.0,
                "metrics": {"auc": auc, "accuracy": 0.5, "f1_macro": 0.4, "f1_weighted": 0.45}}

    rows = summarize([record("fold0", 0.6), record("fold1", 0.8)])
    assert rows[0]["weights"] == "random" and rows[0]["folds"] == 2 and abs(rows[0]["auc_mean"] - 0.7) < 1e-12
    assert "| minilm | resnet18 (random) | concat | frozen | **0.700 ± 0.100** |" in to_markdown(rows)


def test_each_dataset_is_read_once_for_all_seeds(register_plugin, tmp_path, monkeypatch):
    from jftzoo.datasets import registry as dataset_registry

    register_plugin(CountingPlugin(), "counting-encoders")
    reads = []
    real = dataset_registry.load_dataset
    monkeypatch.setattr(dataset_registry, "load_dataset", lambda *a, **k: reads.append(a) or real(*a, **k))
    config = BenchConfig(text=["count-t1"], vision=["count-v1"], fusion=["concat"], folds=2, epochs=1, limit=20,
                         seeds=(0, 1))
    report = run_bench(config, tmp_path / "r")
    assert len(reads) == 1 and report.new_records == 2 * 2
    assert len({r["split"]["checksum"] for r in report.records}) == 2  # each seed draws its own subsample
