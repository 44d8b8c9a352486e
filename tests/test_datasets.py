"""Dataset readers on small fixture trees in their real layouts, one fixture per bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from jftzoo.cli import cli
from jftzoo.datasets import BadDataError, load_dataset, ratio_split, read_split, stratified_kfold, write_split
from jftzoo.datasets.text import decode_bytes
from jftzoo.errors import JftzooError, UsageError


def png(path: Path, colour: str = "red") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path)


def mvsa_tree(root: Path, rows: dict[str, str], texts: dict[str, bytes] | None = None) -> Path:
    (root / "data").mkdir(parents=True)
    header = "ID\ttext,image\n"
    (root / "labelResultAll.txt").write_text(header + "".join(f"{i}\t{lab}\n" for i, lab in rows.items()))
    for rid in rows:
        (root / "data" / f"{rid}.txt").write_bytes((texts or {}).get(rid, f"tweet number {rid}".encode()))
        png(root / "data" / f"{rid}.jpg")
    return root


# -- MVSA label policies ----------------------------------------------------------------------------
def test_mvsa_merge_policy_and_text_decoding(tmp_path: Path):
    rows = {"1": "positive,positive", "2": "neutral,negative", "3": "positive,negative", "4": "neutral,neutral",
            "5": "negative,neutral"}
    root = mvsa_tree(tmp_path / "mvsa", rows, {"4": "caf\xe9 \x93quoted\x94".encode("latin-1")})
    ds = load_dataset(f"mvsa-single:{root}")
    assert {r.id: r.label for r in ds.records} == {"1": "positive", "2": "negative", "4": "neutral",
                                                    "5": "negative"}
    assert ds.dropped == {"text and image labels disagree on polarity": 1}
    assert ds.by_id()["4"].text == "café “quoted”"  # Windows-1252 fallback
    assert {r.id: r.label for r in load_dataset(f"mvsa-single:{root}", label_policy="text").records}["3"] == "positive"
    assert {r.id: r.label for r in load_dataset(f"mvsa-single:{root}", label_policy="image").records}["2"] == "negative"


def test_decoding_never_fails():
    assert decode_bytes("naïve 😀".encode()) == ("naïve 😀", "utf-8-sig")
    assert decode_bytes(b"\x81\x8d") == ("\x81\x8d", "latin-1")  # bytes cp1252 leaves undefined


def test_mvsa_multiple_majority(tmp_path: Path):
    root = tmp_path / "multi"
    (root / "data").mkdir(parents=True)
    rows = {
        "1": ["positive,positive", "positive,neutral", "negative,negative"],  # 2 of 3 positive
        "2": ["positive,negative", "negative,positive", "neutral,neutral"],  # no majority
    }
    (root / "labelResultAll.txt").write_text(
        "ID\ttext,image\ttext,image\ttext,image\n" + "".join(f"{i}\t" + "\t".join(c) + "\n" for i, c in rows.items()))
    for rid in rows:
        (root / "data" / f"{rid}.txt").write_text("hello")
        png(root / "data" / f"{rid}.jpg")
    ds = load_dataset(f"mvsa-multiple:{root}", label_policy="majority")
    assert [(r.id, r.label) for r in ds.records] == [("1", "positive")]
    assert ds.dropped == {"no majority among annotators": 1}
    with pytest.raises(UsageError, match="several annotators"):
        load_dataset(f"mvsa-single:{mvsa_tree(tmp_path / 's', {'1': 'positive,positive'})}", label_policy="majority")


def test_balance_is_seeded_and_per_class(tmp_path: Path):
    labels = ["positive,positive", "negative,negative", "neutral,neutral"]
    rows = {str(i): labels[i % 3] for i in range(1, 31)}
    root = mvsa_tree(tmp_path / "m", rows)
    a = load_dataset(f"mvsa-single:{root}", balance=4, seed=1)
    b = load_dataset(f"mvsa-single:{root}", balance=4, seed=1)
    assert [r.id for r in a.records] == [r.id for r in b.records]
    assert a.class_counts() == {"negative": 4, "neutral": 4, "positive": 4}
    with pytest.raises(UsageError, match="fewer records"):
        load_dataset(f"mvsa-single:{root}", balance=11)


# -- bad input: one fixture per case, each with its exact report -----------------------------------
def manifest(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    root = tmp_path / "set"
    root.mkdir(exist_ok=True)
    png(root / "img" / "ok.png")
    path = root / "posts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def only_problem(tmp_path: Path, rows: list[dict[str, str]], **kw: object) -> str:
    with pytest.raises(BadDataError) as err:
        load_dataset(f"jsonl:{manifest(tmp_path, rows)}", **kw)
    assert len(err.value.problems) == 1, err.value.problems
    return str(err.value.problems[0])


def row(rid: str, image: str = "img/ok.png", text: str = "nice", label: str = "pos") -> dict[str, str]:
    return {"id": rid, "text": text, "image": image, "label": label}


def test_missing_image(tmp_path: Path):
    msg = only_problem(tmp_path, [row("a"), row("b", image="img/gone.png")])
    assert msg == f"record b: {tmp_path / 'set' / 'img' / 'gone.png'}: image file is missing"


def test_truncated_image(tmp_path: Path):
    path = manifest(tmp_path, [row("a"), row("b", image="img/cut.jpg")])
    Image.new("RGB", (200, 200), "blue").save(tmp_path / "set" / "img" / "full.jpg")
    (tmp_path / "set" / "img" / "cut.jpg").write_bytes((tmp_path / "set" / "img" / "full.jpg").read_bytes()[:300])
    with pytest.raises(BadDataError) as err:
        load_dataset(f"jsonl:{path}")
    (p,) = err.value.problems
    assert p.record_id == "b" and p.file.endswith("cut.jpg") and p.reason.startswith("image is truncated or corrupt")


def test_non_image_with_an_image_name(tmp_path: Path):
    path = manifest(tmp_path, [row("a"), row("b", image="img/fake.png")])
    (tmp_path / "set" / "img" / "fake.png").write_text("I am text")
    with pytest.raises(BadDataError) as err:
        load_dataset(f"jsonl:{path}")
    assert str(err.value.problems[0]).endswith("fake.png: not an image file (PIL cannot identify it)")


def test_empty_text_is_data_and_neither_text_nor_image_is_bad(tmp_path: Path):
    ds = load_dataset(f"jsonl:{manifest(tmp_path, [row('a'), row('b', text='  ')])}")
    assert [r.id for r in ds.records] == ["a", "b"] and ds.missing_counts() == {"text": 1, "image": 0}
    msg = only_problem(tmp_path, [row("a"), row("b", text="", image="")])
    assert msg == "record b: posts.jsonl:2: no text and no image: nothing to classify"


def test_unknown_label_against_a_fixed_label_set(tmp_path: Path):
    root = mvsa_tree(tmp_path / "m", {"1": "positive,positive", "2": "positive,happy"})
    with pytest.raises(BadDataError) as err:
        load_dataset(f"mvsa-single:{root}")
    assert str(err.value.problems[0]) == (
        "record 2: labelResultAll.txt:3: unknown label value(s) ['happy']; "
        "expected ('negative', 'neutral', 'positive')")


def test_duplicate_id(tmp_path: Path):
    assert only_problem(tmp_path, [row("a"), row("a", text="other")]) == "record a: -: duplicate id: 2 records share it"


def test_manifest_row_with_missing_fields(tmp_path: Path):
    msg = only_problem(tmp_path, [row("a"), {"id": "b", "text": "hi"}])
    assert msg == "record b: posts.jsonl:2: missing field(s) label"
    ds = load_dataset(f"jsonl:{manifest(tmp_path, [row('a'), {'id': 'b', 'text': 'hi', 'label': 'pos'}])}")
    assert ds.by_id()["b"].image is None  # a row without an image field: a post without an image


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd"])
def test_image_path_escaping_the_root(tmp_path: Path, bad: str):
    msg = only_problem(tmp_path, [row("a"), row("b", image=bad)])
    assert msg.startswith("record b: posts.jsonl:2: image path") and ("escapes" in msg or "absolute" in msg)


def test_skip_policy_keeps_the_good_and_lists_the_bad(tmp_path: Path):
    path = manifest(tmp_path, [row("a"), row("b", image="img/gone.png"), row("c", text="", image=""),
                               row("d", label="neg")])
    ds = load_dataset(f"jsonl:{path}", on_bad="skip")
    assert [r.id for r in ds.records] == ["a", "d"]
    assert sorted((p.record_id, p.reason) for p in ds.skipped) == [
        ("b", "image file is missing"), ("c", "no text and no image: nothing to classify")]
    assert ds.labels == ("neg", "pos")


def test_csv_manifest_with_custom_columns(tmp_path: Path):
    root = tmp_path / "c"
    png(root / "pics" / "1.png")
    png(root / "pics" / "2.png", "blue")
    (root / "m.csv").write_text("post,tweet,pic,mood\n1,so happy,pics/1.png,joy\n2,so sad,pics/2.png,sadness\n")
    ds = load_dataset(f"csv:{root / 'm.csv'}", id_field="post", text_field="tweet", image_field="pic",
                      label_field="mood")
    assert [(r.id, r.text, r.label) for r in ds.records] == [("1", "so happy", "joy"), ("2", "so sad", "sadness")]
    with pytest.raises(UsageError, match="does not take option"):
        load_dataset(f"mvsa-single:{root}", text_field="x")


# -- Hateful Memes ------------------------------------------------------------------------------------
def test_hateful_memes_layout_and_official_splits(tmp_path: Path):
    root = tmp_path / "hm"
    for i in range(1, 7):
        png(root / "img" / f"{i:05d}.png")
    def meme(i: int, label: int | None) -> str:
        d = {"id": i, "img": f"img/{i:05d}.png", "text": f"meme {i}"}
        if label is not None:
            d["label"] = label
        return json.dumps(d) + "\n"
    (root / "train.jsonl").write_text(meme(1, 0) + meme(2, 1) + meme(3, 0))
    (root / "dev_seen.jsonl").write_text(meme(4, 1) + meme(5, 0))
    (root / "dev_unseen.jsonl").write_text(meme(5, 0))  # repeats a dev_seen meme, as the real release does
    (root / "test_unseen.jsonl").write_text(meme(6, None))  # an unlabelled release
    ds = load_dataset(f"hateful-memes:{root}")
    assert len(ds) == 5 and ds.class_counts() == {"not-hateful": 3, "hateful": 2}
    assert ds.splits == {"train": ["1", "2", "3"], "dev_seen": ["4", "5"], "dev_unseen": ["5"]}
    assert any("test_unseen.jsonl has no labels" in n for n in ds.notes)
    assert any("test_seen.jsonl" in n for n in ds.notes)


# -- splits ------------------------------------------------------------------------------------------
def labelled_set(tmp_path: Path, n_pos: int, n_neg: int) -> str:
    rows = [row(f"p{i}") for i in range(n_pos)] + [row(f"n{i}", label="neg") for i in range(n_neg)]
    return f"jsonl:{manifest(tmp_path, rows)}"


def test_kfold_is_stratified_seeded_and_covers_everything(tmp_path: Path):
    ds = load_dataset(labelled_set(tmp_path, 30, 10))
    a, b = stratified_kfold(ds, 5, seed=3), stratified_kfold(ds, 5, seed=3)
    assert a.parts == b.parts and a.parts != stratified_kfold(ds, 5, seed=4).parts
    ids = [i for part in a.parts.values() for i in part]
    assert sorted(ids) == sorted(r.id for r in ds.records)
    assert all(sum(i.startswith("n") for i in part) == 2 for part in a.parts.values())


def test_too_small_class_for_the_folds_is_an_error(tmp_path: Path):
    ds = load_dataset(labelled_set(tmp_path, 30, 4))
    with pytest.raises(UsageError, match=r"classes \{'neg': 4\} have fewer members than the 5 folds"):
        stratified_kfold(ds, 5)


def test_ratio_split_and_manifest_roundtrip(tmp_path: Path):
    data = labelled_set(tmp_path, 40, 20)
    ds = load_dataset(data)
    split = ratio_split(ds, "8:1:1", seed=0)
    assert [len(split.parts[k]) for k in ("train", "val", "test")] == [48, 6, 6]
    write_split(split, tmp_path / "split.json")
    assert read_split(tmp_path / "split.json", ds).parts == split.parts
    (tmp_path / "set" / "img" / "ok.png").unlink()
    png(tmp_path / "set" / "img" / "ok.png", "green")  # same ids, different image content
    with pytest.raises(JftzooError, match="checksum"):
        read_split(tmp_path / "split.json", load_dataset(data))
    with pytest.raises(UsageError, match="8:1:1"):
        ratio_split(ds, "eighty:20")
    with pytest.raises(UsageError, match="98:1:1 split of 60 records gives the test part 1 record"):
        ratio_split(ds, "98:1:1")  # scikit-learn's bare ValueError, before: it named no dataset and no option


# -- CLI ---------------------------------------------------------------------------------------------
def test_datasets_and_data_check_cli(tmp_path: Path):
    res = CliRunner().invoke(cli, ["datasets", "--json"])
    assert res.exit_code == 0
    names = {d["name"] for d in json.loads(res.output)}
    assert {"mvsa-single", "mvsa-multiple", "hateful-memes", "csv", "jsonl"} <= names
    path = manifest(tmp_path, [row(f"p{i}") for i in range(3)] + [row("bad", image="img/gone.png")])
    res = CliRunner().invoke(cli, ["data", "check", "--data", f"jsonl:{path}", "--folds", "2"])
    assert res.exit_code == 1 and "record bad" in res.output and "image file is missing" in res.output
    res = CliRunner().invoke(cli, ["data", "check", "--data", f"jsonl:{path}", "--on-bad", "skip", "--folds", "2",
                                   "--json"])
    report = json.loads(res.output)
    assert res.exit_code == 0 and report["records"] == 3 and report["skipped"][0]["record_id"] == "bad"
    res = CliRunner().invoke(cli, ["data", "check", "--data", f"jsonl:{path}", "--on-bad", "skip", "--folds", "5"])
    assert res.exit_code == 1 and "fewer members than the 5 folds" in res.output
    res = CliRunner().invoke(cli, ["data", "check", "--data", "mvsa-singel:/x"])
    assert res.exit_code == 2 and "Did you mean 'mvsa-single'" in res.output


def test_a_plugin_can_register_a_dataset(register_plugin, tmp_path: Path):
    from jftzoo import hookimpl
    from jftzoo.datasets import Dataset, DatasetSpec, Record
    from jftzoo.datasets import registry as dataset_registry

    def reader(root: Path, on_bad: str = "error", verify_images: bool = True) -> Dataset:
        png(root / "x.png")
        return Dataset("tiny", root, ("a",), [Record("1", "hello", root / "x.png", "a")])

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec(name="tiny", reader=reader, labels=("a",)))
            register(DatasetSpec(name="csv", reader=reader))  # taken by the built-in: first wins

    register_plugin(Plugin(), "tiny-plugin")
    with pytest.warns(UserWarning, match=r"dataset 'csv' is registered by both"):
        specs = dataset_registry.dataset_specs()
    assert specs["tiny"].provider == "tiny-plugin"
    assert specs["csv"].provider == "jftzoo.default_plugins.datasets"
    assert [r.text for r in load_dataset(f"tiny:{tmp_path}").records] == ["hello"]


def test_a_good_row_reusing_a_bad_rows_id_is_reported_not_silently_dropped(tmp_path: Path):
    path = manifest(tmp_path, [{"id": "a", "text": "hi"}, row("a"), row("b")])  # the first row has no label
    ds = load_dataset(f"jsonl:{path}", on_bad="skip")
    assert [r.id for r in ds.records] == ["b"]
    assert sorted(p.reason for p in ds.skipped) == ["duplicate id: 2 records share it", "missing field(s) label"]
