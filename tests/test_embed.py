"""`Encoder.embed`: length-sorted batches, input order restored, progress as a callback."""

from __future__ import annotations

import torch

import jftzoo


def test_text_batches_are_length_sorted_and_order_is_restored():
    enc = jftzoo.get_encoder("minilm", pretrained=False)
    texts = ["mid length text", "x", "the longest text of them all, by quite a margin", "short", "medium one"]
    seen: list[list[str]] = []
    original = enc.preprocess

    def spy(items):
        seen.append(list(items))
        return original(items)

    enc.preprocess = spy  # type: ignore[method-assign]
    calls: list[tuple[int, int]] = []
    out = enc.embed(texts, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    flat = [t for batch in seen for t in batch]
    assert flat == sorted(texts, key=len, reverse=True)  # longest first, so each batch pads little
    assert [len(b) for b in seen] == [2, 2, 1]
    assert calls == [(2, 5), (4, 5), (5, 5)]
    enc.preprocess = original  # type: ignore[method-assign]
    for i, text in enumerate(texts):
        torch.testing.assert_close(out[i], enc.embed([text])[0], atol=1e-5, rtol=1e-5)


def test_embed_restores_training_mode_and_needs_no_grad():
    enc = jftzoo.get_encoder("minilm", pretrained=False)
    enc.train()
    out = enc.embed(["a", "b"])
    assert enc.training and not out.requires_grad
