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

ROWS_KEYS = {"dataset", "text", "vision", "fusion", "mode", "weights", "auc_mean", "auc_std", "auc_ci95",
             "accuracy_mean", "accuracy_ci95", "f1_macro_mean", "val_accuracy_mean", "n_splits", "n_seeds",
             "nan_folds", "config_hash", "groups"}
BASELINE_CELLS = 1 + 2  # majority + text-only + image-only, added to every one-pair grid


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
    # baselines beside every multimodal figure: the majority row, and image-only although not asked for
    assert {c for c in cells if c.fusion == "majority"} == {Cell(d, None, None, "majority", "frozen")}
    image_only = {Cell(d, None, v, "image-only", m) for v in ("resnet50", "vit") for m in ("frozen", "joint")}
    assert {c for c in cells if c.fusion == "image-only"} == image_only
    assert len(cells) == len(set(cells)) == 8 + 4 + 4 + 2 + 1 + 4


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
                         folds=2, epochs=1, limit=40)
    CALLS.clear()
    first = run_bench(config, tmp_path / "run1", cache=DiskCache(tmp_path / "cache"))
    assert first.encoder_passes == {"count-t1": 1, "count-t2": 1, "count-v1": 1, "count-v2": 1}  # N + M, not N x M
    assert first.items_encoded == dict.fromkeys(first.encoder_passes, 40) and dict(CALLS) == first.items_encoded
    # (4 pairs x 2 heads + majority + 2 text-only + 2 image-only) x 2 folds
    assert first.new_records == (2 * 2 * 2 + 1 + 2 + 2) * 2 == 26, first.failed
    CALLS.clear()
    second = run_bench(config, tmp_path / "run2", cache=DiskCache(tmp_path / "cache"))  # retrains, reads the cache
    assert second.new_records == 26 and second.encoder_passes == {} and sum(CALLS.values()) == 0
    again = run_bench(config, tmp_path / "run2", cache=DiskCache(tmp_path / "cache"))  # same store: all finished
    assert again.new_records == 0 and again.skipped_records == 26 and len(again.records) == 26


def test_the_svm_kernel_option_picks_the_estimator_and_names_it_in_the_configuration(register_plugin, tmp_path,
                                                                                       monkeypatch):
    from jftzoo.bench import baselines

    register_plugin(CountingPlugin(), "counting-encoders")
    fitted: list[str] = []
    real = baselines.svm_estimator
    monkeypatch.setattr(baselines, "svm_estimator",
                        lambda n, seed, kernel="auto": fitted.append(kernel) or real(n, seed, kernel))
    models, hashes = {}, {}
    for kernel in ("auto", "rbf", "linear"):
        config = BenchConfig(text=["count-t1"], vision=["count-v1"], fusion=["svm"], folds=2, epochs=1, limit=40,
                             svm_kernel=kernel)
        svm = [r for r in run_bench(config, tmp_path / kernel).records if r["fusion"] == "svm"]
        models[kernel] = {r["train_config"]["model"] for r in svm}
        hashes[kernel] = {r["config_hash"] for r in svm}
    assert fitted == ["auto", "auto", "rbf", "rbf", "linear", "linear"]  # 2 folds each
    assert models == {"auto": {baselines.SVM["model"]}, "rbf": {"SVC(rbf)"},
                      "linear": {f"LinearSVC(C={baselines.LINEAR_C})"}}
    assert len(set.union(*hashes.values())) == 3  # three configurations: none resumes another's rows


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
    assert cache.corrupt == {"count-v1": 1} and dict(CALLS) == {"count-v1": 1}
    assert report.new_records == (1 + BASELINE_CELLS) * 2


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
    assert len(keys) == len(set(keys)) == 6 * 3  # every (cell, fold) once, majority included: none missing
    rows = json.loads(done.stdout)
    assert {r["fusion"] for r in rows} == {"majority", "text-only", "image-only", "concat", "late", "gated"}
    assert all(r["n_splits"] == 3 for r in rows)


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
    labels = [line.split("|")[1].strip() for line in table[2:9]]
    assert labels == ["Majority class (not in the paper)", "SVM (concatenation)", "efficientnet_lite0 only",
                      "minilm only", "efficientnet_lite0+minilm", "CLIP", "Joint fine-tuning (ours)"]
    cells = [line.split("|")[2].strip() for line in table[2:9]]
    assert cells[0] == "0.500 ± 0.000"  # the majority class: constant priors
    assert all("±" in c for i, c in enumerate(cells) if i != 5)  # AUC mean ± sd over the 2 folds
    assert cells[5] == "unavailable"  # CLIP's weights are hub-only and --random-init was not given
    assert "inner validation split" in (out / "table1.md").read_text() and "Table 1" in res.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["fusion"], r["mode"]) for r in records} == {
        ("majority", "frozen"), ("svm", "frozen"), ("image-only", "joint"), ("text-only", "joint"),
        ("concat", "joint"), ("attention-paper", "joint")}


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
    assert [r["fusion"] for r in rows] == ["majority", "svm", "text-only", "image-only", "concat", "gated"]
    for r in rows:
        assert set(r) >= ROWS_KEYS
        assert r["dataset"] == "emoji-sentiment" and r["mode"] == "frozen" and r["groups"] == "near-duplicates"
        assert r["n_splits"] == 4 and r["seeds"] == [0, 1] and r["n_seeds"] == 2  # 2 folds x 2 seeds
        low, high = r["accuracy_ci95"]
        assert low < r["accuracy_mean"] < high or r["accuracy_std"] == 0
    pairs = {r["fusion"]: (r["text"], r["vision"], r["weights"]) for r in rows}
    assert pairs["majority"] == (None, None, "none") and pairs["text-only"] == ("minilm", None, "pretrained")
    assert pairs["concat"] == ("minilm", "efficientnet_lite0", "pretrained")
    majority = rows[0]
    assert majority["auc_mean"] == 0.5 and majority["auc_std"] == 0.0  # constant class priors: AUC 0.5 exactly


def test_store_records_carry_config_split_cost_and_versions(small_run):
    _, tmp = small_run
    records = [json.loads(line) for line in (tmp / "store" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 24 and len({r["key"] for r in records}) == 24  # 6 rows x 2 folds x 2 seeds
    r = records[0]
    assert {"config_hash", "protocol", "split", "metrics", "val_metrics", "wall_s", "samples_per_s", "peak_rss_mb",
            "device", "versions", "fold", "seed", "jftzoo_version", "fingerprints", "train_config",
            "predictions"} <= set(r)
    assert len(r["split"]["checksum"]) == 64 and r["versions"]["torch"] == torch.__version__
    gated = [x for x in records if x["fusion"] == "gated"]
    assert all(abs(sum(x["gate_weights_test_mean"]) - 1) < 1e-5 for x in gated)  # how much each modality counted


def test_one_pair_is_drawn_as_one_bar_chart(small_run):
    _, tmp = small_run
    png = tmp / "store" / "heatmap.png"
    with Image.open(png) as img:
        assert img.format == "PNG" and img.text["jftzoo-kind"] == "bars"
        panels = json.loads(img.text["jftzoo-panels"])
    labels = panels[0].pop("labels")  # every row on both folds: plain figures
    assert len(labels) == 5 and all(float(x) for x in labels)
    assert panels == [{"dataset": "emoji-sentiment", "protocol": "2-fold, groups near-duplicates", "mode": "frozen",
                       "pairs": ["minilm + efficientnet_lite0"],
                       "heads": ["svm", "text-only", "image-only", "concat", "gated"]}]


def test_several_pairs_are_a_heatmap_of_pairs_by_heads(tmp_path):
    from jftzoo.bench.plot import heatmap

    def row(text, vision, fusion, mode, auc):
        return {"dataset": "d", "text": text, "vision": vision, "fusion": fusion, "mode": mode, "auc_mean": auc,
                "auc_ci95": [auc - 0.01, auc + 0.01], "text_weights": "pretrained", "vision_weights": "pretrained"}

    rows = [row("minilm", None, "text-only", "joint", 0.7), row(None, "resnet18", "image-only", "joint", 0.6),
            row(None, "vit", "image-only", "joint", 0.65), row("minilm", "resnet18", "concat", "joint", 0.75),
            row("minilm", "vit", "concat", "joint", 0.8), row("minilm", "vit", "svm", "frozen", 0.72)]
    png = heatmap(rows, tmp_path / "h.png")
    with Image.open(png) as img:
        assert img.text["jftzoo-kind"] == "heatmap"
        (panel,) = json.loads(img.text["jftzoo-panels"])
    assert panel["mode"] == "joint" and panel["pairs"] == ["minilm + resnet18", "minilm + vit"]
    assert panel["heads"] == ["text-only", "image-only", "concat", "svm"]  # the SVM (frozen) as a reference


def test_each_split_protocol_gets_its_own_panel_and_each_configuration_its_own_bar(tmp_path):
    """A store holding random and group-aware splits once drew one bar per head, the last protocol's."""
    from jftzoo.bench.plot import heatmap

    def row(fusion, split, auc, config="c0", text="minilm", vision="vit"):
        return {"dataset": "d", "text": text, "vision": vision, "fusion": fusion, "mode": "top-k", "auc_mean": auc,
                "auc_ci95": [auc - 0.01, auc + 0.01], "split": split, "config_hash": config,
                "text_weights": "pretrained", "vision_weights": "pretrained"}

    rows = [row("concat", "8:1:1, groups none", 0.8), row("concat", "8:1:1, groups near-duplicates", 0.7),
            row("concat", "8:1:1, groups none", 0.75, config="c1abcdef99"),
            row("text-only", "8:1:1, groups none", 0.7, vision=None)]
    png = heatmap(rows, tmp_path / "h.png")
    with Image.open(png) as img:
        panels = json.loads(img.text["jftzoo-panels"])
    assert [(p["protocol"], p["heads"]) for p in panels] == [
        ("8:1:1, groups none", ["concat [c0]", "concat [c1abcdef]", "text-only"]),
        ("8:1:1, groups near-duplicates", ["concat"])]


def test_a_bar_with_fewer_splits_than_its_panel_says_how_many(tmp_path):
    """A one-seed bar has no interval; its label says it stands on 1 split of the panel's 5."""
    from jftzoo.bench.plot import heatmap

    def row(fusion, auc, n, vision="vit"):
        return {"dataset": "d", "text": "minilm", "vision": vision, "fusion": fusion, "mode": "joint", "auc_mean": auc,
                "auc_ci95": [auc - 0.01, auc + 0.01] if n > 1 else None, "split": "8:1:1", "config_hash": fusion,
                "n_splits": n, "text_weights": "pretrained", "vision_weights": "pretrained"}

    png = heatmap([row("concat", 0.849, 5), row("attention-paper", 0.798, 1), row("late", 0.8, 2),
                   row("text-only", 0.81, 5, vision=None)], tmp_path / "h.png")
    with Image.open(png) as img:
        (panel,) = json.loads(img.text["jftzoo-panels"])
    assert panel["labels"] == ["0.849", "0.798 (1 split of 5)", "0.800 (2 splits of 5)", "0.810"]


def test_unimodal_bars_stay_grey_when_two_configurations_carry_their_hash():
    from jftzoo.bench.plot import bar_colours

    grey, blue = bar_colours(["text-only"])[0], bar_colours(["concat"])[0]
    assert grey != blue
    assert bar_colours(["text-only [63d0bd6b]", "image-only [e4851fdc]", "svm", "concat [c0a296f0]"]) == \
        [grey, grey, grey, blue]


def test_results_show_and_export(small_run, tmp_path):
    _, tmp = small_run
    store = str(tmp / "store")
    shown = CliRunner().invoke(cli, ["results", "show", "--results", store, "--json"])
    assert shown.exit_code == 0 and len(json.loads(shown.stdout)) == 6
    res = CliRunner().invoke(cli, ["results", "export", "--results", store, "--format", "csv", "--format", "md",
                                   "--format", "json", "--out", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    csv_lines = (tmp_path / "x" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("dataset,text,vision,fusion,mode,weights,config_hash") and len(csv_lines) == 7
    assert "auc_ci95_low" in csv_lines[0] and "val_accuracy_mean" in csv_lines[0]
    md = (tmp_path / "x" / "results.md").read_text()
    assert "| minilm | efficientnet_lite0 | gated | frozen |" in md and "macro one-vs-rest" in md
    assert "Protocol: 2-fold, groups near-duplicates; seeds 0, 1." in md
    assert len(json.loads((tmp_path / "x" / "results.json").read_text())) == 6
    missing = CliRunner().invoke(cli, ["results", "show", "--results", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no results store" in missing.output


def test_a_bench_into_a_store_holding_other_grids_summarises_the_whole_store(small_run, tmp_path, monkeypatch):
    """summary.md and heatmap.png describe the store (as after `results merge`); the printed table is the grid's."""
    import shutil

    _, tmp = small_run
    store = tmp_path / "store"
    shutil.copytree(tmp / "store", store)
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp / "cache"))  # the first grid's embeddings: no encoder pass
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(cli, ["bench", "--fusion", "late", "--text", "minilm", "--limit", "40", "--folds", "2",
                                   "--seeds", "0,1", "--out", str(store), "--json"])
    assert res.exit_code == 0, res.output
    printed = {r["fusion"] for r in json.loads(res.stdout)}
    assert "late" in printed and not printed & {"concat", "gated", "svm"}  # this grid's rows only
    summary = (store / "summary.md").read_text(encoding="utf-8")
    for head in ("late", "concat", "gated", "svm"):  # the earlier grid's rows stay in the store's summary
        assert f"| {head} |" in summary, head


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
    from jftzoo.decoded import DecodedImageCache, geometry_namespace

    image = tmp_path / "img.bin"
    image.write_bytes(b"pixels")
    DecodedImageCache().pixels(geometry_namespace("minilm", "Resize(8)"), image, lambda: torch.zeros(3, 2, 2).byte())
    info = CliRunner().invoke(cli, ["cache", "info", "--json"])
    assert info.exit_code == 0
    got = json.loads(info.stdout)
    assert got["path"] == str(tmp_path / "embeddings") and got["root"] == str(tmp_path)
    assert [(n["kind"], n["encoder"], n["entries"]) for n in got["namespaces"]] == [
        ("embeddings", "minilm", 3), ("embeddings", "resnet50", 3), ("decoded", "minilm", 1)]
    cleared = CliRunner().invoke(cli, ["cache", "clear", "--encoder", "minilm", "--kind", "embeddings"])
    assert cleared.exit_code == 0 and "removed 3 entries" in cleared.output
    assert [i.encoder for i in DiskCache().info()] == ["resnet50"]
    assert [i.encoder for i in DiskCache(kind="decoded").info()] == ["minilm"]
    cleared = CliRunner().invoke(cli, ["cache", "clear", "--encoder", "minilm"])  # every kind
    assert "removed 1 entries" in cleared.output and not DiskCache(kind="decoded").info()
    # a misspelt name is a usage error with the nearest names, and removes nothing; a name only the cache
    # knows (an encoder whose plugin is gone) is cleared
    typo = CliRunner().invoke(cli, ["cache", "clear", "--encoder", "resnt50"])
    assert typo.exit_code == 2 and "did you mean 'resnet50'" in typo.output
    assert [i.encoder for i in DiskCache().info()] == ["resnet50"]
    alias = CliRunner().invoke(cli, ["cache", "clear", "--encoder", "resnet"])  # resnet50's alias
    assert alias.exit_code == 0 and "removed 3 entries" in alias.output and not DiskCache().info()
    ns = cache.namespace("gone-plugin-enc", "d" * 64)
    cache.describe(ns, {"encoder": "gone-plugin-enc", "fingerprint": "d" * 64})
    cache.put(ns, "e" * 64, Entry(torch.ones(4), None))
    gone = CliRunner().invoke(cli, ["cache", "clear", "--encoder", "gone-plugin-enc"])
    assert gone.exit_code == 0 and "removed 1 entries" in gone.output


def test_tables_label_each_encoders_weights_on_its_own():
    from jftzoo import __version__
    from jftzoo.bench.report import summarize, to_markdown

    def record(fold: str, auc: float) -> dict:
        return {"dataset": "d", "text": "minilm", "vision": "resnet18", "fusion": "concat", "mode": "frozen",
                "weights": "random", "text_weights": "pretrained", "vision_weights": "random", "seed": 0,
                "fold": fold, "wall_s": 1.0, "samples_per_s": 10.0, "config_hash": "c0ffee", "jftzoo_version":
                __version__, "metrics": {"auc": auc, "accuracy": 0.5, "f1_macro": 0.4, "f1_weighted": 0.45}}

    rows = summarize([record("fold0", 0.6), record("fold1", 0.8)])
    assert rows[0]["weights"] == "random" and rows[0]["n_splits"] == 2 and abs(rows[0]["auc_mean"] - 0.7) < 1e-12
    assert "| minilm | resnet18 (random) | concat | frozen | c0ffee | 2 |" in to_markdown(rows)


def test_each_dataset_is_read_once_for_all_seeds(register_plugin, tmp_path, monkeypatch):
    from jftzoo.datasets import registry as dataset_registry

    register_plugin(CountingPlugin(), "counting-encoders")
    reads = []
    real = dataset_registry.load_dataset
    monkeypatch.setattr(dataset_registry, "load_dataset", lambda *a, **k: reads.append(a) or real(*a, **k))
    config = BenchConfig(text=["count-t1"], vision=["count-v1"], fusion=["concat"], folds=2, epochs=1, limit=20,
                         seeds=(0, 1))
    report = run_bench(config, tmp_path / "r")
    assert len(reads) == 1 and report.new_records == (1 + BASELINE_CELLS) * 2 * 2
    assert len({r["split"]["checksum"] for r in report.records}) == 2  # each seed draws its own subsample


# -- protocol: manifests, record identity, leakage -------------------------------------------------------------
def test_every_record_names_its_written_manifest_and_predictions(small_run):
    from jftzoo.bench.predictions import read_predictions
    from jftzoo.datasets import read_split

    _, tmp = small_run
    store = tmp / "store"
    records = [json.loads(line) for line in (store / "results.jsonl").read_text().splitlines()]
    for r in records:
        split = read_split(store / r["split"]["manifest"])
        assert split.digest() == r["split"]["digest"] and split.seed == r["seed"] and split.groups == "near-duplicates"
        preds = read_predictions(store, r)
        assert preds.ids == sorted(split.parts[r["fold"]]) and len(preds.ids) == r["metrics"]["n"]
        assert preds.accuracy == pytest.approx(r["metrics"]["accuracy"])
        assert set(read_predictions(store, r, "val").ids).isdisjoint(preds.ids)
    assert len({r["split"]["digest"] for r in records}) == 2  # one manifest per seed


def test_two_runs_differing_in_one_train_option_give_two_rows(register_plugin, tmp_path):
    from jftzoo.bench.report import summarize

    register_plugin(CountingPlugin(), "counting-encoders")
    base = {"text": ["count-t1"], "vision": ["count-v1"], "fusion": ["concat"], "folds": 2, "epochs": 1, "limit": 20}
    first = run_bench(BenchConfig(**base), tmp_path / "r")
    second = run_bench(BenchConfig(**base, train={"lr_head": 1e-2}), tmp_path / "r")
    assert second.new_records == 6 and second.skipped_records == 2  # the trained heads changed, majority did not
    rows = [r for r in summarize(first.records + second.records) if r["fusion"] == "concat"]
    assert len(rows) == 2 and {r["n_splits"] for r in rows} == {2} and rows[0]["config_hash"] != rows[1]["config_hash"]
    lr = {r["config_hash"]: r["train_config"]["lr_head"] for r in first.records + second.records
          if r["fusion"] == "concat"}
    assert sorted(lr.values()) == [1e-3, 1e-2]


def test_validation_and_test_records_never_mix(register_plugin, tmp_path, monkeypatch):
    """What fit() trains and stops on is disjoint from the fold's test records, for k-fold and ratio splits."""
    from jftzoo.train import trainer

    register_plugin(CountingPlugin(), "counting-encoders")
    seen: list[tuple[set[str], set[str]]] = []
    real_fit = trainer.fit

    def spy(model, records, labels, config, **kwargs):
        seen.append(({r.id for r in records}, {r.id for r in kwargs["validation"]}))
        return real_fit(model, records, labels, config, **kwargs)

    monkeypatch.setattr(trainer, "fit", spy)
    for name, split in (("kfold", {"folds": 2}), ("ratio", {"folds": None, "split": "6:2:2"})):
        seen.clear()
        report = run_bench(BenchConfig(text=["count-t1"], vision=["count-v1"], fusion=["concat"], epochs=1,
                                       limit=30, **split), tmp_path / name)
        trained = [r for r in report.records if r["fusion"] != "majority"]
        assert len(seen) == len(trained) > 0
        for (train, val), record in zip(seen, trained, strict=True):
            test = set(json.loads((tmp_path / name / record["split"]["manifest"]).read_text())["parts"].get(
                record["fold"], [])) if name == "kfold" else set(
                json.loads((tmp_path / name / record["split"]["manifest"]).read_text())["parts"]["test"])
            assert val and not (val & test) and not (train & test) and not (train & val)
            if name == "ratio":
                manifest = json.loads((tmp_path / name / record["split"]["manifest"]).read_text())
                assert val == set(manifest["parts"]["val"])  # the split's own validation part, not a carve


def test_bench_reuses_a_split_file_and_refuses_one_for_other_data(tmp_path, monkeypatch):
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path / "cache"))
    manifest = tmp_path / "split.json"
    res = CliRunner().invoke(cli, ["data", "check", "--data", "emoji-sentiment", "--write-split", str(manifest),
                                   "--split", "8:1:1", "--seed", "7"])
    assert res.exit_code == 0, res.output
    from jftzoo.datasets import read_split

    digest = read_split(manifest).digest()
    out = tmp_path / "r"
    res = CliRunner().invoke(cli, ["bench", "--fusion", "text-only", "--split-file", str(manifest), "--seeds", "0,1",
                                   "--epochs", "1", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["split"]["digest"] for r in records} == {digest} and {r["seed"] for r in records} == {0, 1}
    other = tmp_path / "other.json"
    split = json.loads(manifest.read_text())
    split.pop("digest")
    split["checksum"] = "0" * 64
    other.write_text(json.dumps(split))
    res = CliRunner().invoke(cli, ["bench", "--fusion", "text-only", "--split-file", str(other), "--out",
                                   str(tmp_path / "r2")])
    assert res.exit_code == 2 and "none of --data matches" in res.output
    res = CliRunner().invoke(cli, ["bench", "--split-file", str(manifest), "--limit", "40", "--out",
                                   str(tmp_path / "r3")])
    assert res.exit_code == 2 and "--limit" in res.output


def test_ensemble_rows_average_the_heads_stored_probabilities(small_run):
    import numpy as np

    from jftzoo.bench.ensemble import ensemble_records
    from jftzoo.bench.predictions import read_predictions
    from jftzoo.bench.store import ResultStore
    from jftzoo.train.metrics import evaluate

    res, tmp = small_run
    assert res.exit_code == 0, res.output
    store = tmp / "store"
    records = ResultStore(store).records()
    derived = ensemble_records(records, store)
    assert len(derived) == 4 and {d["fusion"] for d in derived} == {"ensemble(concat+gated)"}  # 2 folds x 2 seeds
    by_key = {r["key"]: r for r in records}
    for d in derived:
        members = [by_key[k] for k in d["members"]]
        assert {m["fusion"] for m in members} == {"concat", "gated"} and d["ensemble"] is True
        assert {(m["fold"], m["seed"]) for m in members} == {(d["fold"], d["seed"])}
        stored = [read_predictions(store, m) for m in members]
        expected = evaluate(stored[0].true, np.mean([p.probs for p in stored], axis=0), stored[0].labels)
        for metric in ("accuracy", "auc", "f1_macro"):
            assert d["metrics"][metric] == pytest.approx(expected[metric])
        assert all(d["metrics"]["auc"] != pytest.approx(evaluate(p.true, p.probs, p.labels)["auc"]) for p in stored)
        assert d["wall_s_by_device"] == {"CPU": pytest.approx(sum(m["wall_s"] for m in members))}
    gpu = {"device": "cuda:0", "machine": "x86_64, NVIDIA H100 80GB HBM3"}  # had gated run on a GPU: two costs
    mixed = ensemble_records([{**r, **(gpu if r["fusion"] == "gated" else {})} for r in records], store)
    assert all(set(d["wall_s_by_device"]) == {"CPU", "H100"} for d in mixed)
    shown = CliRunner().invoke(cli, ["results", "show", "--results", str(store), "--json", "--ensemble"])
    rows = {r["fusion"]: r for r in json.loads(shown.stdout)}
    assert rows["ensemble(concat+gated)"]["n_splits"] == 4
    plain = CliRunner().invoke(cli, ["results", "show", "--results", str(store), "--json"])
    assert not any(r["fusion"].startswith("ensemble") for r in json.loads(plain.stdout))  # opt-in only


def test_bench_select_ensemble_adds_validations_pick_without_training(small_run):
    from jftzoo.bench.ensemble_select import select_ensembles
    from jftzoo.bench.store import ResultStore

    res, tmp = small_run
    assert res.exit_code == 0, res.output
    store = tmp / "store"
    before = ResultStore(store).records()
    again = CliRunner().invoke(cli, ["bench", "--fusion", "svm,concat,gated", "--text", "minilm", "--limit", "40",
                                     "--folds", "2", "--seeds", "0,1", "--out", str(store), "--json",
                                     "--select-ensemble", "3"])
    assert again.exit_code == 0, again.output
    assert len(ResultStore(store).records()) == len(before)  # derived rows are never stored or trained
    [choice] = select_ensembles(before, store, 3)
    assert f"validation picks {' + '.join(choice.members)}" in " ".join(again.stderr.split())
    fusions = {r["fusion"] for r in json.loads(again.stdout)}
    assert (f"ensemble({'+'.join(choice.members)})" in fusions) == (len(choice.members) > 1)


def test_records_of_the_same_data_under_another_data_string_are_named(tmp_path, monkeypatch):
    """Keys name the --data string as given: the same files spelled another way resume nothing, so the bench says
    where the earlier records are instead of silently starting new rows."""
    from tests.test_datasets import labelled_set

    absolute = labelled_set(tmp_path, 12, 8)
    kind, path = absolute.split(":", 1)
    monkeypatch.chdir(tmp_path)
    relative = f"{kind}:{os.path.relpath(path, tmp_path)}"
    options = {"fusion": ("majority",), "folds": 2, "groups": "none"}

    def notes_of(data: str) -> list[str]:
        notes: list[str] = []
        run_bench(BenchConfig(data=(data,), **options), tmp_path / "r",
                  progress=lambda e: notes.append(e["message"]) if e["event"] == "note" else None)
        return [n for n in notes if "same splits of the same data" in n]

    assert notes_of(absolute) == []  # an empty store
    assert notes_of(absolute) == []  # the same spelling: it resumes, nothing to say
    spelled = notes_of(relative)
    assert len(spelled) == 1 and "2 record(s)" in spelled[0] and f"run with --data {absolute}" in spelled[0]


def test_a_head_with_its_own_recipe_is_noted_when_its_baselines_train_with_other_values(tmp_path):
    """attention-paper's preset (lr 3e-5, exponential decay, raw tweets) is not what the unimodal rows beside it
    get: the bench says so, naming the fields, before it reads any data; options given to the bench apply to
    every cell, and then nothing differs and nothing is said."""
    from jftzoo.bench.cells import preset_notes
    from jftzoo.default_plugins.fusions import PAPER_RECIPE

    config = BenchConfig(data=["mvsa-single:nowhere"], fusion=["attention-paper", "concat"], mode=["joint"])
    notes = preset_notes(expand(config), config)
    assert len(notes) == 1 and "attention-paper / joint" in notes[0] and "text-only" in notes[0]
    assert "lr_encoder=3e-05" in notes[0] and "scheduler=exponential" in notes[0] and "concat" not in notes[0]
    alike = BenchConfig(data=["mvsa-single:nowhere"], fusion=["attention-paper"], mode=["joint"],
                        train=dict(PAPER_RECIPE))
    assert preset_notes(expand(alike), alike) == []
    plain = BenchConfig(data=["mvsa-single:nowhere"], fusion=["concat", "svm"], mode=["frozen"])
    assert preset_notes(expand(plain), plain) == []
    events: list[dict] = []
    with pytest.raises(Exception):  # noqa: B017  (the data is missing: the note comes before it is read)
        run_bench(config, tmp_path / "store", progress=events.append)
    assert [e["message"] for e in events if e.get("event") == "note"][:1] == notes
