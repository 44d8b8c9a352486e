"""The decoded-image cache: each image decoded once, the same pixels bit for bit, corrupt entries redone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from test_pipeline import model, records

import jftzoo
from jftzoo.decoded import DecodedImageCache
from jftzoo.encoders.timm_vision import split_transform
from jftzoo.train.trainer import RUNTIME_ONLY, TrainConfig, config_identity, fit


def _images(tmp_path: Path, n: int = 3) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = tmp_path / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (300 + 40 * i, 260, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def test_cached_pixels_equal_the_uncached_transform_bit_for_bit(tmp_path):
    enc = jftzoo.get_encoder("efficientnet_lite0")
    paths = _images(tmp_path)
    plain = enc.preprocess(paths)["pixel_values"]
    cache = DecodedImageCache(tmp_path / "cache")
    enc.decoded_cache = cache
    first = enc.preprocess(paths)["pixel_values"]
    again = enc.preprocess(paths)["pixel_values"]
    assert (cache.misses, cache.hits) == (3, 3)  # decoded once, then read
    assert torch.equal(plain, first) and torch.equal(plain, again)
    stored = list((tmp_path / "cache" / "decoded").rglob("*.safetensors"))
    assert len(stored) == 3
    size = enc.data_config["input_size"]
    from safetensors.torch import load_file

    pixels = load_file(stored[0])["pixels"]
    assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == tuple(size)  # uint8 at the input size


def test_a_corrupt_entry_is_decoded_again_not_served(tmp_path):
    enc = jftzoo.get_encoder("efficientnet_lite0")
    paths = _images(tmp_path, 1)
    cache = DecodedImageCache(tmp_path / "cache")
    enc.decoded_cache = cache
    good = enc.preprocess(paths)["pixel_values"]
    (entry,) = (tmp_path / "cache" / "decoded").rglob("*.safetensors")
    data = bytearray(entry.read_bytes())
    data[-10] ^= 0xFF  # one pixel byte flipped
    entry.write_bytes(bytes(data))
    again = enc.preprocess(paths)["pixel_values"]
    assert sum(cache.corrupt.values()) == 1 and cache.misses == 2
    assert torch.equal(good, again)


def test_a_changed_file_or_transform_is_a_different_entry(tmp_path):
    enc = jftzoo.get_encoder("efficientnet_lite0")
    (path,) = _images(tmp_path, 1)
    cache = DecodedImageCache(tmp_path / "cache")
    enc.decoded_cache = cache
    enc.preprocess([path])
    Image.new("RGB", (64, 64), (10, 200, 30)).save(path)  # new content under the same name
    fresh = enc.preprocess([path])["pixel_values"]
    assert cache.misses == 2
    enc.decoded_cache = None
    assert torch.equal(fresh, enc.preprocess([path])["pixel_values"])


def test_only_geometry_then_normalise_transforms_are_split():
    from torchvision import transforms as T

    geometry, tail = split_transform(T.Compose([T.Resize(8), T.CenterCrop(8), T.ToTensor(), T.Normalize([0.5], [0.5])]))
    assert geometry is not None and tail is not None
    assert split_transform(T.Compose([T.ToTensor(), T.RandomErasing()])) == (None, None)  # not a pure tensor tail
    assert split_transform(lambda x: x) == (None, None)


def test_fit_with_the_image_cache_gives_the_same_losses_and_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("JFTZOO_CACHE_DIR", str(tmp_path))
    recs, labels = records()
    train, val = list(recs[::2]), list(recs[1::2])
    histories = []
    for image_cache in (False, True):
        m = model()
        cfg = TrainConfig(mode="joint", min_epochs=2, max_epochs=2, batch_size=4, workers=0, image_cache=image_cache)
        histories.append(fit(m, train, labels, cfg, validation=val).history)
        assert m.vision.decoded_cache is None  # lent for the fit only
    assert histories[0] == histories[1]
    images = {r.image for r in train + val}
    assert len(list((tmp_path / "decoded").rglob("*.safetensors"))) == len(images)  # the fit did use it
    assert "image_cache" in RUNTIME_ONLY
    assert config_identity(TrainConfig(image_cache=True)) == config_identity(TrainConfig())
