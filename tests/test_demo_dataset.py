"""The built-in demo dataset: ships with the package, loads offline, carries its licence, fixed content."""

from __future__ import annotations

from PIL import Image

from jftzoo.datasets import load_dataset, stratified_kfold
from jftzoo.datasets.emoji import CHECKSUM, ROOT, files_checksum
from jftzoo.images import load_image


def test_demo_dataset_loads_with_licence_and_fixed_checksum():
    ds = load_dataset("emoji-sentiment")
    assert files_checksum() == CHECKSUM == (ROOT / "checksum.txt").read_text().strip()
    assert len(ds) == 615 and not ds.skipped
    assert ds.class_counts() == {"negative": 78, "neutral": 107, "positive": 430}
    assert "CC BY-SA 4.0" in ds.license and "Apache 2.0" in ds.license
    assert "Kralj Novak" in (ROOT / "LICENSE.md").read_text()
    face = next(r for r in ds.records if r.id == "1f602")
    assert face.text == "face with tears of joy" and face.label == "positive"
    assert ds.checksum() == load_dataset("emoji-sentiment").checksum()  # stable across loads
    assert min(len(p) for p in stratified_kfold(ds, 5, seed=0).parts.values()) == 123


def test_transparent_glyphs_are_composited_on_white(tmp_path):
    glyph = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent black
    glyph.putpixel((0, 0), (255, 0, 0, 255))
    rgb = load_image(glyph, 0)
    assert rgb.getpixel((5, 5)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (255, 0, 0)
    emoji = load_image(ROOT / "images" / "1f602.png", 0)
    assert emoji.mode == "RGB" and emoji.getpixel((0, 0)) == (255, 255, 255)
