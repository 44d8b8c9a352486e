"""The decoded-image cache: each JPEG decoded and resized once per machine, not once per epoch.

A vision encoder's eval transform is a deterministic geometry part (decode, resize, crop) followed
by a cheap tensor part (scale to [0, 1], normalise). The cache keeps the geometry part's output as
uint8 tensors (3, H, W) at the encoder's input size, keyed like the embedding cache by the image
file's content and a fingerprint of the geometry transform, so the tensor part rebuilds exactly the
pixels an uncached run feeds the encoder (same bytes, bit for bit). On a CPU this saves the ~1-2 %
of a training step that decoding costs; on a GPU, where decoding is what starves the device, it
is what keeps it fed.

Layout: `<cache_dir>/decoded/<namespace>/<key[:2]>/<key>.safetensors`, each file carrying a
SHA-256 of its pixels: a corrupt entry is deleted and decoded again, never served. Entries are
written atomically, so DataLoader workers writing the same entry at once cannot tear it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

from jftzoo.atomic import atomic_write

FORMAT = "jftzoo-decoded/1"


def geometry_namespace(encoder_name: str, geometry: str) -> str:
    """Names the entries of one encoder's geometry transform (its repr: sizes, crop, interpolation)."""
    from jftzoo.cache import namespace

    return namespace(encoder_name, hashlib.sha256(f"{FORMAT}\0{geometry}".encode()).hexdigest())


def _pixels_sha(pixels: torch.Tensor) -> str:
    from jftzoo.digests import hash_tensors

    return hash_tensors([("pixels", pixels)])  # the embedding cache's own checksum


class DecodedImageCache:
    """uint8 (3, H, W) tensors on disk; `hits`, `misses` and `corrupt` count lookups (per process)."""

    def __init__(self, root: Path | None = None) -> None:
        from jftzoo.cache import DiskCache

        self.root = DiskCache(root, kind="decoded").root  # one layout, so `jftzoo cache info/clear` see it
        self.hits = 0
        self.misses = 0
        self.corrupt: Counter[str] = Counter()

    def path(self, namespace: str, image: Path) -> Path:
        from jftzoo.digests import item_digest

        key = item_digest(Path(image))  # the file's content, memoised per process
        return self.root / namespace / key[:2] / f"{key}.safetensors"

    def pixels(self, namespace: str, image: Path, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached uint8 pixels of `image`, or `make()`'s, stored for next time."""
        path = self.path(namespace, image)
        cached = self._read(path, namespace)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        pixels = make()  # (3, H, W) uint8
        if pixels.dtype != torch.uint8:
            raise TypeError(f"decoded pixels must be uint8, got {pixels.dtype}")
        from safetensors.torch import save

        data = save({"pixels": pixels.contiguous()}, metadata={"format": FORMAT, "sha256": _pixels_sha(pixels)})
        atomic_write(path, data, durable=False)  # a lost entry is decoded again, never trusted
        return pixels

    def _read(self, path: Path, namespace: str) -> torch.Tensor | None:
        if not path.exists():
            return None
        from jftzoo.cache import read_checked

        checked = read_checked(path)  # the checksum every cache kind writes (`_pixels_sha` here)
        if checked is not None and checked[0].get("format") == FORMAT:
            pixels = checked[1].get("pixels")
            if pixels is not None and pixels.dtype == torch.uint8:
                return pixels
        self.corrupt[namespace] += 1
        path.unlink(missing_ok=True)
        return None
