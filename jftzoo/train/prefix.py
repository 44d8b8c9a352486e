"""Top-k training with a cached frozen prefix: the lower layer groups run once per record.

In `top-k` mode only the top k layer groups of each encoder train; everything below is frozen
and in eval mode, so it maps a record to the same output every step. Those outputs (text hidden
states + mask, vision feature maps or tokens) are computed once, in batches, kept per record
(padding stripped) and re-padded per training batch, so each step runs only the top groups and
the head. Entries are keyed by the encoder's fingerprint as built (its pre-trained weights and
preprocessing), k and the item's content, so fits that start from the same encoder (several heads
or seeds of a benchmark) share them, and nothing trained is ever served from the cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from jftzoo.datasets.records import Record, is_absent
from jftzoo.encoders.base import PRESENT, Encoder
from jftzoo.features import encoder_fingerprint, item_digest

DTYPES = {"float32": torch.float32, "float16": torch.float16}


class PrefixStore:
    """Per-item prefix outputs in memory; `encoded` counts items each encoder's prefix ran on."""

    def __init__(self, dtype: str = "float32", batch_size: int = 32) -> None:
        if dtype not in DTYPES:
            from jftzoo.errors import UsageError

            raise UsageError(f"prefix_dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.dtype = DTYPES[dtype]
        self.batch_size = batch_size
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self._token_keys: dict[str, frozenset[str]] = {}  # namespace -> keys stored per token (padding stripped)
        self.encoded: Counter[str] = Counter()

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for entry in self._memory.values() for t in entry.values())

    def entries(self, encoder: Encoder, k: int, items: Sequence[Any], fingerprint: str) -> PrefixEntries:
        """Prefix outputs of `items`; an absent item (a post without this modality) is not run: its entry is None."""
        namespace = f"{encoder.name}/{fingerprint}/{k}/{self.dtype}"
        keys = [None if is_absent(x) else f"{namespace}/{item_digest(x)}" for x in items]
        missing = {key: item for key, item in zip(keys, items, strict=True)
                   if key is not None and key not in self._memory}
        if missing:
            self._encode(encoder, k, namespace, missing)
        return PrefixEntries([self._memory[key] if key is not None else None for key in keys],
                             self._token_keys.get(namespace, frozenset()))

    def _encode(self, encoder: Encoder, k: int, namespace: str, missing: dict[str, Any]) -> None:
        keys = sorted(missing, key=lambda key: -encoder.sort_key(missing[key]))  # length-sorted batches pad little
        # prefix_forward runs in eval mode and gives every module its own mode back (top-k mixes them)
        with torch.no_grad():  # not inference_mode: these tensors feed training steps that need autograd
            for start in range(0, len(keys), self.batch_size):
                chunk = keys[start : start + self.batch_size]
                batch = encoder.preprocess([missing[key] for key in chunk])
                out = encoder.prefix_forward({n: v.to(encoder.device) for n, v in batch.items()}, k)
                mask = out.get("mask")
                per_token = frozenset(n for n, t in out.items() if n != "mask" and mask is not None
                                      and t.dim() >= 2 and t.shape[:2] == mask.shape)
                self._token_keys[namespace] = per_token
                for i, key in enumerate(chunk):
                    entry = {}
                    for n, t in out.items():
                        if n == "mask":
                            continue
                        value = t[i][mask[i]] if n in per_token else t[i]  # (n_i, ...) real tokens only
                        entry[n] = value.detach().to("cpu", self.dtype if value.is_floating_point() else
                                                     value.dtype).clone()
                    self._memory[key] = entry
                self.encoded[encoder.name] += len(chunk)


class PrefixEntries:
    """One encoder's prefix outputs for a fixed list of items, batched on demand."""

    def __init__(self, entries: list[dict[str, torch.Tensor] | None], token_keys: frozenset[str]) -> None:
        self.entries = entries  # None for absent items
        self.token_keys = token_keys

    def batch(self, idx: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        """The prefix dict for items `idx`: per-token tensors zero-padded to the longest, with "mask".
        When some items are absent it holds the present ones only, and PRESENT (B,) says which they are."""
        present = [self.entries[i] is not None for i in idx]
        chosen: list[dict[str, torch.Tensor]] = [self.entries[i] for i in idx if self.entries[i] is not None]
        out: dict[str, torch.Tensor] = {}
        if not all(present):
            out[PRESENT] = torch.tensor(present)  # (B,) bool
        if not chosen:
            return {name: t.to(device) for name, t in out.items()}
        lengths = None
        for name in chosen[0]:
            values = [e[name].float() if e[name].is_floating_point() else e[name] for e in chosen]
            if name in self.token_keys:
                out[name] = torch.nn.utils.rnn.pad_sequence(values, batch_first=True)  # (B, N, ...)
                lengths = torch.tensor([v.shape[0] for v in values])
            else:
                out[name] = torch.stack(values)  # (B, ...)
        if lengths is not None:
            n = int(lengths.max())
            out["mask"] = torch.arange(n)[None, :] < lengths[:, None]  # (B, N)
        return {name: t.to(device) for name, t in out.items()}


def prefix_unavailable(model: Any, k_text: int, k_vision: int) -> str | None:
    """Why the cached-prefix path cannot run for this model (None: it can)."""
    for encoder, k in ((model.text, k_text), (model.vision, k_vision)):
        if encoder is None or not model.uses(encoder.modality):
            continue
        if not encoder.supports_prefix():
            return f"encoder {encoder.name!r} does not implement prefix_forward/top_forward"
        groups = len(encoder.layer_groups())
        if not 1 <= k < groups:
            return f"encoder {encoder.name!r}: top-k={k} of {groups} layer groups leaves no frozen prefix to cache"
    return None


class PrefixInputs:
    """The cached prefixes of a fit's training and validation records, for each encoder the head uses."""

    def __init__(self, model: Any, parts: dict[str, Sequence[Record]], k_text: int, k_vision: int,
                 store: PrefixStore) -> None:
        self.k = {"text": k_text, "vision": k_vision}
        self.parts: dict[str, dict[str, PrefixEntries]] = {name: {} for name in parts}
        self.sizes = {name: len(records) for name, records in parts.items()}
        for modality, encoder in (("text", model.text), ("vision", model.vision)):
            if encoder is None or not model.uses(modality):
                continue
            fingerprint = encoder_fingerprint(encoder)  # as built, before any training step
            for name, records in parts.items():
                items = [r.item(modality) for r in records]
                self.parts[name][modality] = store.entries(encoder, self.k[modality], items, fingerprint)

    def size(self, part: str) -> int:
        """How many records the part holds."""
        return self.sizes[part]

    def batch(self, part: str, idx: Sequence[int], device: torch.device) -> tuple[Any, Any]:
        got = self.parts[part]
        text = got["text"].batch(idx, device) if "text" in got else None
        vision = got["vision"].batch(idx, device) if "vision" in got else None
        return text, vision
