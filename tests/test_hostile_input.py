"""Hostile input is reported, never a traceback: URLs, symlinks out of the data root, decompression bombs,
NUL bytes and megabyte texts, a model folder holding a pickle or a tampered config; and fuzzed manifests
(Hypothesis): every reader either reads a record or reports it, or stops with a jftzoo error."""

from __future__ import annotations

import json
import os
import pickle

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from jftzoo.cli import cli
from jftzoo.datasets import load_dataset
from jftzoo.errors import JftzooError


def _tree(tmp_path, rows: list[dict]) -> str:
    root = tmp_path / "set"
    (root / "img").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "img" / "ok.png")
    (root / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return f"jsonl:{root / 'posts.jsonl'}"


def _reasons(data: str) -> dict[str, str]:
    return {p.record_id: p.reason for p in load_dataset(data, on_bad="skip").skipped}


def test_urls_and_symlinks_out_of_the_root_are_bad_records(tmp_path) -> None:
    outside = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(outside)
    data = _tree(tmp_path, [{"id": "a", "text": "t", "image": "img/ok.png", "label": "p"},
                            {"id": "url", "text": "t", "image": "https://example.com/x.png", "label": "p"},
                            {"id": "link", "text": "t", "image": "img/link.png", "label": "p"}])
    os.symlink(outside, tmp_path / "set" / "img" / "link.png")
    reasons = _reasons(data)
    assert "is a URL" in reasons["url"] and "escapes the dataset root" in reasons["link"]


def test_a_decompression_bomb_is_a_clear_bad_record(tmp_path, monkeypatch) -> None:
    data = _tree(tmp_path, [{"id": "a", "text": "t", "image": "img/ok.png", "label": "p"},
                            {"id": "bomb", "text": "t", "image": "img/big.png", "label": "p"}])
    Image.new("RGB", (100, 100)).save(tmp_path / "set" / "img" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels: over twice the limit
    assert "too large to decode safely" in _reasons(data)["bomb"]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # over the limit, under twice it: Pillow only warns
    assert "too large to decode safely" in _reasons(data)["bomb"]
    res = CliRunner().invoke(cli, ["data", "check", "--data", data])
    assert res.exit_code == 1 and "bomb" in res.output and "Traceback" not in res.output


def test_nul_bytes_and_megabyte_texts_are_cleaned_and_counted(tmp_path) -> None:
    from jftzoo.datasets.checks import MAX_TEXT_CHARS

    data = _tree(tmp_path, [{"id": "nul", "text": "a\x00b", "image": "img/ok.png", "label": "p"},
                            {"id": "huge", "text": "x" * 2_000_000, "image": "img/ok.png", "label": "p"}])
    ds = load_dataset(data)
    by_id = ds.by_id()
    assert by_id["nul"].text == "ab" and len(by_id["huge"].text) == MAX_TEXT_CHARS
    assert "texts with NUL bytes (removed): 1" in ds.notes
    assert any("truncated to that): 1" in note for note in ds.notes)


def test_a_model_folder_with_a_pickle_or_a_tampered_config_is_refused(tmp_path) -> None:
    from test_fusion_training import subset

    from jftzoo.train.classifier import FusionClassifier

    records, _ = subset()
    model = FusionClassifier(fusion="concat", max_epochs=1, min_epochs=1, batch_size=8, workers=0)
    model.fit(list(records)).save(tmp_path / "m")
    (tmp_path / "m" / "model.pt").write_bytes(pickle.dumps({"evil": True}))  # never read: only safetensors + JSON
    assert CliRunner().invoke(cli, ["predict", str(tmp_path / "m"), "--text", "hi"]).exit_code == 0
    weights = (tmp_path / "m" / "model.safetensors").read_bytes()
    (tmp_path / "m" / "model.safetensors").write_bytes(pickle.dumps({"evil": True}))
    res = CliRunner().invoke(cli, ["predict", str(tmp_path / "m"), "--text", "hi"])
    assert res.exit_code == 1 and "model.safetensors" in res.output and "Traceback" not in res.output
    (tmp_path / "m" / "model.safetensors").write_bytes(weights)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["format"] = "something-else/9"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    res = CliRunner().invoke(cli, ["predict", str(tmp_path / "m"), "--text", "hi"])
    assert res.exit_code == 1 and "format" in res.output and "Traceback" not in res.output


cells = st.one_of(st.text(max_size=30), st.sampled_from(["img/ok.png", "../x.png", "/etc/passwd", "", "p", "n",
                                                          "img/", "http://a/b.png", "img/ok.png\x00"]))


def _accounted(ds) -> int:  # lines a dataset accounts for: each record, and each problem (a duplicate: every copy)
    import re

    n = len(ds.records)
    for p in ds.skipped:
        dup = re.search(r"duplicate id: (\d+) records", p.reason)
        n += int(dup.group(1)) if dup else 1
    return n


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({}, optional={"id": cells, "text": cells, "image": cells,
                                                         "label": cells}), max_size=6),
       junk=st.binary(max_size=40))
def test_fuzzed_jsonl_never_gives_a_traceback_and_loses_no_line(tmp_path, rows, junk) -> None:
    root = tmp_path / "fz"
    (root / "img").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(root / "img" / "ok.png")
    lines = [json.dumps(r).encode() for r in rows] + ([junk.replace(b"\n", b" ")] if junk else [])
    (root / "posts.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    try:
        ds = load_dataset(f"jsonl:{root / 'posts.jsonl'}", on_bad="skip")
    except JftzooError:
        return  # a clear error (e.g. a column no row has)
    counted = sum(1 for line in (root / "posts.jsonl").read_bytes().split(b"\n")
                  if line.decode("utf-8", "replace").strip())
    assert _accounted(ds) >= counted  # every line is a record or reported, none silently dropped
    assert len(ds.records) == len({r.id for r in ds.records})
    assert all(r.image is None or r.image.resolve().is_relative_to(root.resolve()) for r in ds.records)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200))
def test_fuzzed_csv_bytes_never_give_a_traceback(tmp_path, body) -> None:
    root = tmp_path / "fc"
    root.mkdir(exist_ok=True)
    (root / "m.csv").write_bytes(b"id,text,image,label\n" + body)
    try:
        ds = load_dataset(f"csv:{root / 'm.csv'}", on_bad="skip")
    except JftzooError:
        return
    assert all(r.image is None or r.image.resolve().is_relative_to(root.resolve()) for r in ds.records)


# -- the published layouts: MVSA (a TSV index and data/<id>.txt|jpg) and Hateful Memes (split files) ---------------
ids = st.one_of(st.text(max_size=8), st.sampled_from(["1", "2", "../labelResultAll", "data/1", "1\x00", " 1 ", ""]))
mvsa_cells = st.one_of(st.sampled_from(["positive,negative", "neutral,neutral", "positive,positive", "pos", "",
                                        "positive,neutral,negative", "Positive,positive"]), st.text(max_size=12))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(ids, st.lists(mvsa_cells, max_size=3)), max_size=6), junk=st.binary(max_size=40),
       texts=st.lists(st.binary(max_size=30), min_size=2, max_size=2))
def test_fuzzed_mvsa_layouts_never_give_a_traceback(tmp_path, rows, junk, texts) -> None:
    root = tmp_path / "mvsa"
    (root / "data").mkdir(parents=True, exist_ok=True)
    for rid, body in zip(("1", "2"), texts, strict=True):  # two posts on disk; the index may name others
        (root / "data" / f"{rid}.txt").write_bytes(body)
        Image.new("RGB", (4, 4)).save(root / "data" / f"{rid}.jpg")
    lines = [f"{rid}\t" + "\t".join(cells) for rid, cells in rows]
    body = ("ID\ttext,image\n" + "\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    (root / "labelResultAll.txt").write_bytes(body + junk)
    try:
        ds = load_dataset(f"mvsa-single:{root}", on_bad="skip")
    except JftzooError:
        return
    indexed = [line for line in (root / "labelResultAll.txt").read_text("utf-8", "replace").splitlines()[1:]
               if line.strip()]
    assert _accounted(ds) + sum(ds.dropped.values()) >= len(indexed)  # read, reported or dropped by the policy
    assert all(r.image is not None and r.image.resolve().parent == (root / "data").resolve() for r in ds.records)


memes = st.fixed_dictionaries({}, optional={"id": st.one_of(st.integers(-2, 3), cells), "img": cells,
                                            "label": st.one_of(st.sampled_from([0, 1, 2, "1", None]), cells),
                                            "text": st.one_of(cells, st.integers())})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.sampled_from(["train", "dev_seen", "test_unseen"]), st.lists(memes, max_size=4),
                             min_size=1),
       junk=st.binary(max_size=30))
def test_fuzzed_hateful_memes_layouts_never_give_a_traceback(tmp_path, files, junk) -> None:
    root = tmp_path / "hm"
    (root / "img").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(root / "img" / "ok.png")
    for old in root.glob("*.jsonl"):
        old.unlink()
    for split, rows in files.items():
        lines = [json.dumps(r).encode() for r in rows] + ([junk.replace(b"\n", b" ")] if junk else [])
        (root / f"{split}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    try:
        ds = load_dataset(f"hateful-memes:{root}", on_bad="skip")
    except JftzooError:
        return
    left_out = {n.split()[0] for n in ds.notes if "no labels" in n}
    lines = sum(1 for split in files if f"{split}.jsonl" not in left_out
                for line in (root / f"{split}.jsonl").read_bytes().split(b"\n")
                if line.decode("utf-8", "replace").strip())
    listed = sum(len(v) for v in ds.splits.values())  # a meme in two split files is one record, listed twice
    assert _accounted(ds) + (listed - len(ds.records)) >= lines  # every line: a listing or a report
    assert all(r.image is None or r.image.resolve().is_relative_to(root.resolve()) for r in ds.records)


def test_an_mvsa_id_that_is_a_path_is_a_bad_record(tmp_path) -> None:
    root = tmp_path / "mvsa"
    (root / "data").mkdir(parents=True)
    (root / "labelResultAll.txt").write_text("ID\ttext,image\n../labelResultAll\tpositive,positive\n"
                                             "1\tpositive,positive\n")
    (root / "data" / "1.txt").write_text("fine")
    Image.new("RGB", (4, 4)).save(root / "data" / "1.jpg")
    ds = load_dataset(f"mvsa-single:{root}", on_bad="skip")
    assert [r.id for r in ds.records] == ["1"]
    assert [p.reason for p in ds.skipped] == ["id '../labelResultAll' is not a plain file name under data/"]
