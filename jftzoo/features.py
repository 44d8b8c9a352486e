"""Frozen encoders' outputs, computed once per record and reused across epochs, heads and folds.

A frozen encoder (eval mode, no gradient) maps a record to the same output every time, so
training a head on it need not re-run the encoder each epoch. Entries are keyed by the encoder's
fingerprint (name, weights, preprocessing) and the item's content, never by record id, so two
datasets holding the same post share one entry and an edited post gets a new one.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import torch

from jftzoo.datasets.records import is_absent
from jftzoo.digests import hash_tensors, item_digest, weights_digest, weights_version  # noqa: F401 (re-exported)
from jftzoo.encoders.base import Encoder, EncoderOutput

ProgressCallback = Callable[[int, int], None]  # (items done, items total)


@dataclass
class Entry:
    """One item's frozen output."""

    pooled: torch.Tensor  # (D,)
    tokens: torch.Tensor | None  # (n, Dt) real tokens only (padding removed), or None if not computed


class EntryCache(Protocol):
    """A second level behind the in-memory store (`jftzoo.cache.DiskCache`)."""

    def namespace(self, encoder_name: str, fingerprint: str) -> str: ...

    def describe(self, namespace: str, meta: dict[str, Any]) -> None: ...

    def get(self, namespace: str, key: str, tokens: bool) -> Entry | None: ...

    def put(self, namespace: str, key: str, entry: Entry) -> None: ...


# Distributions whose releases can change an encoder's output for the same weights and inputs
# (kernels, tokenisation, image decoding and resizing).
PREPROCESSING_LIBRARIES = ("torch", "transformers", "timm", "tokenizers", "Pillow")


def library_versions() -> dict[str, str | None]:
    """Installed versions of PREPROCESSING_LIBRARIES, read from metadata (nothing imported); None if absent."""
    out: dict[str, str | None] = {}
    for name in PREPROCESSING_LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def describe_model(encoder: Encoder) -> dict[str, Any]:
    """What an encoder computes, wherever it runs: its name, class, weights checksum and preprocessing."""
    return {"name": encoder.name, "class": type(encoder).__qualname__,
            "preprocess": encoder.preprocess_config(), "weights": weights_digest(encoder)}


def describe_encoder(encoder: Encoder) -> dict[str, Any]:
    """`describe_model` plus the library versions it runs under: what a cached output depends on."""
    return {**describe_model(encoder), "libraries": library_versions()}


def fingerprint_of(description: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


def encoder_fingerprint(encoder: Encoder) -> str:
    """Names cached outputs: weights, preprocessing and library versions (a new torch may change the last digits)."""
    return fingerprint_of(describe_encoder(encoder))


@dataclass
class Features:
    """One encoder's frozen outputs for a list of items, in the order asked for."""

    pooled: torch.Tensor  # (N, D), zero rows for absent items
    tokens: list[torch.Tensor] | None  # N tensors (n_i, Dt) (0 rows when absent), or None when pooled was enough
    present: torch.Tensor | None = None  # (N,) bool, False for items without this modality; None: all present

    def __len__(self) -> int:
        return self.pooled.shape[0]

    def batch(self, idx: Sequence[int]) -> EncoderOutput:
        """An EncoderOutput for items `idx`, token sequences padded to the longest with a mask."""
        pooled = self.pooled[list(idx)]  # (B, D)
        present = self.present[list(idx)] if self.present is not None else None  # (B,)
        if self.tokens is None:
            empty = pooled.new_zeros(len(idx), 0, 0)
            return EncoderOutput(pooled, empty, torch.zeros(len(idx), 0, dtype=torch.bool), present)
        seqs = [self.tokens[i] for i in idx]
        tokens = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # (B, N, Dt)
        lengths = torch.tensor([s.shape[0] for s in seqs])
        mask = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (B, N)
        return EncoderOutput(pooled, tokens, mask, present)


class FeatureStore:
    """In-memory frozen outputs (optionally backed by an on-disk `EntryCache`).

    `encoded` counts the items each encoder actually ran on and `passes` the calls that ran it at
    all, so callers (and tests) can check that nothing is computed twice.
    """

    def __init__(self, cache: EntryCache | None = None, batch_size: int = 32, backend: str = "pytorch") -> None:
        """`backend`: who runs the frozen passes (jftzoo.backends: pytorch | openvino | auto)."""
        from jftzoo.backends import check_backend

        check_backend(backend)
        self.cache = cache
        self.batch_size = batch_size
        self.backend = backend
        self._memory: dict[str, Entry] = {}
        # encoder -> (param versions, preprocess, fp, identity); weak keys: a new encoder never inherits a dead one's
        self._fingerprints: weakref.WeakKeyDictionary[Encoder, tuple[int, str, str, str]] = weakref.WeakKeyDictionary()
        self.encoded: Counter[str] = Counter()
        self.passes: Counter[str] = Counter()

    def fingerprint(self, encoder: Encoder) -> str:
        """Names this encoder's cached outputs (`encoder_fingerprint`, plus the runtime when not PyTorch)."""
        return self._known(encoder)[2]

    def identity(self, encoder: Encoder) -> str:
        """Names the encoder in a bench configuration: `describe_model` (plus the runtime when not PyTorch), no
        library versions, so one configuration's seeds may run on several machines (each record keeps its versions)."""
        return self._known(encoder)[3]

    def _known(self, encoder: Encoder) -> tuple[int, str, str, str]:
        # Hashing the weights costs ~0.3 s for 100 MB; a frozen encoder's weights do not change
        # between calls, but guard on the parameters' version counters so a trained one is re-hashed,
        # and on the preprocessing config so e.g. a new `max_length` never serves stale outputs.
        version = weights_version(encoder)
        preprocess = json.dumps(encoder.preprocess_config(), sort_keys=True, default=str)
        known = self._fingerprints.get(encoder)
        if known is None or known[0] != version or known[1] != preprocess:
            from jftzoo.backends import backend_tag, resolve

            described = describe_encoder(encoder)
            tag = backend_tag(resolve(self.backend, encoder))
            if tag:  # another runtime's outputs differ in the last digits: never mixed with PyTorch's
                described["backend"] = tag
            fp = fingerprint_of(described)
            model = {k: v for k, v in described.items() if k != "libraries"}  # another runtime stays apart
            known = (version, preprocess, fp, fingerprint_of(model))
            self._fingerprints[encoder] = known
            if self.cache is not None:
                ns = self.cache.namespace(encoder.name, fp)
                self.cache.describe(ns, {"encoder": encoder.name, "fingerprint": fp, **described,
                                         "weight_source": str(encoder.weight_source)})
        return known

    def features(
        self,
        encoder: Encoder,
        items: Sequence[Any],
        tokens: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Features:
        """Outputs for `items` (texts or image paths), running the encoder only on unseen ones.

        An absent item (None, an empty text: a post without this modality) is never encoded: its row is
        zero and `Features.present` marks it, for the fusion head's "missing" embedding."""
        present = [not is_absent(x) for x in items]
        if not all(present):
            got = self.features(encoder, [x for x, p in zip(items, present, strict=True) if p], tokens, progress)
            where = torch.tensor(present)
            pooled = got.pooled.new_zeros(len(items), got.pooled.shape[1] if len(got) else encoder.embed_dim)
            pooled[where] = got.pooled
            toks: list[torch.Tensor] | None = None
            if tokens:
                it = iter(got.tokens or [])
                toks = [next(it) if p else torch.zeros(0, encoder.token_dim) for p in present]
            return Features(pooled, toks, where)
        ns, keys, missing = self._lookup(encoder, items, tokens)
        if missing:
            self._encode(encoder, ns, missing, tokens, progress)
        pooled = torch.stack([self._memory[k].pooled for k in keys]) if keys else torch.zeros(0, encoder.embed_dim)
        toks = [self._memory[k].tokens for k in keys] if tokens else None
        return Features(pooled, toks)  # type: ignore[arg-type]

    def _lookup(self, encoder: Encoder, items: Sequence[Any], tokens: bool, keep: bool = True
                ) -> tuple[str, list[str], dict[str, Any]]:
        """(namespace, each item's key, the items neither in memory nor in the cache by key); cache hits are
        kept in memory if `keep`."""
        fp = self.fingerprint(encoder)
        ns = self.cache.namespace(encoder.name, fp) if self.cache is not None else f"{encoder.name}/{fp}"
        keys = [f"{ns}/{item_digest(x)}" for x in items]
        missing: dict[str, Any] = {}
        for key, item in zip(keys, items, strict=True):
            entry = self._memory.get(key)
            if entry is None or (tokens and entry.tokens is None):
                entry = self.cache.get(ns, key.rsplit("/", 1)[1], tokens) if self.cache is not None else None
                if entry is None:
                    missing.setdefault(key, item)
                elif keep:
                    self._memory[key] = entry
        return ns, keys, missing

    def pending(self, encoder: Encoder, items: Sequence[Any], tokens: bool = False,
                planned: set[str] | None = None) -> list[tuple[str, Any]]:
        """(key, item) pairs a `features` call would encode, in its encoding order, leaving out keys in `planned`
        (and adding the rest to it): a pass split into slices at multiples of `batch_size` and encoded by
        several processes makes the same batches, hence the same floats, as one `features` call."""
        _, _, missing = self._lookup(encoder, [x for x in items if not is_absent(x)], tokens, keep=False)
        planned = set() if planned is None else planned
        order = [k for k in _encoding_order(encoder, missing) if k not in planned]
        planned.update(order)
        return [(k, missing[k]) for k in order]

    def _encode(self, encoder: Encoder, ns: str, missing: dict[str, Any], tokens: bool,
                progress: ProgressCallback | None) -> None:
        from jftzoo.backends import frozen_forward, resolve

        keys = _encoding_order(encoder, missing)  # length-sorted batches
        was_training = encoder.training
        encoder.eval()
        forward = frozen_forward(encoder, resolve(self.backend, encoder))
        self.passes[encoder.name] += 1
        try:
            with torch.inference_mode():
                for start in range(0, len(keys), self.batch_size):
                    chunk = keys[start : start + self.batch_size]
                    batch = encoder.preprocess([missing[k] for k in chunk])
                    out = forward({k: v.to(encoder.device) for k, v in batch.items()})
                    pooled, toks, mask = out.pooled.float().cpu(), out.tokens.float().cpu(), out.mask.cpu()
                    for i, key in enumerate(chunk):
                        entry = Entry(pooled[i].clone(), toks[i][mask[i]].clone() if tokens else None)
                        self._memory[key] = entry
                        if self.cache is not None:
                            self.cache.put(ns, key.rsplit("/", 1)[1], entry)
                    self.encoded[encoder.name] += len(chunk)
                    if progress is not None:
                        progress(min(start + self.batch_size, len(keys)), len(keys))
        finally:
            encoder.train(was_training)
            if self.cache is not None and hasattr(self.cache, "flush"):  # a cache that batches its writes
                self.cache.flush()


def _encoding_order(encoder: Encoder, missing: dict[str, Any]) -> list[str]:
    """Longest first (similar lengths share a batch); a stable sort, so a slice of this order sorts to itself."""
    return sorted(missing, key=lambda k: -encoder.sort_key(missing[k]))
