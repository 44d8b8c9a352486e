"""Content digests: of items (texts, image files, PIL images), tensors and module weights.

Its own module so the feature store, the disk caches and the runtime backends share them without
importing each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch


def item_digest(item: Any) -> str:
    """Content hash of a text (its UTF-8) or an image file (its bytes)."""
    if isinstance(item, str):
        return hashlib.sha256(b"text\0" + item.encode("utf-8")).hexdigest()
    if isinstance(item, Path):
        from jftzoo.datasets.records import file_digest

        return file_digest(item, salt=b"file\0")  # read once per process while the file is unchanged
    if hasattr(item, "tobytes"):  # a PIL image in memory
        head = f"pil\0{item.mode}\0{item.size}\0".encode()
        return hashlib.sha256(head + item.tobytes()).hexdigest()
    raise TypeError(f"cannot fingerprint an item of type {type(item).__name__}")


def hash_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of each tensor, in the order given."""
    digest = hashlib.sha256()
    for name, tensor in named:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """Names an encoder's weights: every tensor of its state dict."""
    return hash_tensors(module.state_dict().items())


def weights_version(module: torch.nn.Module) -> int:
    """Changes whenever any parameter is updated in place (torch's version counters): cheap staleness check."""
    return sum(p._version for p in module.parameters())  # type: ignore[attr-defined]
