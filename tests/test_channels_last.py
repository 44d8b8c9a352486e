"""CNN vision encoders run in the channels_last memory format; same outputs, weights and fingerprint."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import jftzoo
from jftzoo.encoders.base import Encoder
from jftzoo.features import encoder_fingerprint

CL = torch.channels_last


def images() -> list[Image.Image]:
    return [Image.new("RGB", (200 + 40 * i, 240), (70 * i, 140, 220 - 60 * i)) for i in range(3)]


def conv_weights(enc: Encoder) -> list[torch.Tensor]:
    return [p for p in enc.parameters() if p.ndim == 4]


def first_conv_input_layout(enc: Encoder, batch: dict[str, torch.Tensor]) -> bool:
    """Whether the first convolution saw a channels_last input."""
    conv = next(m for m in enc.modules() if isinstance(m, torch.nn.Conv2d))
    seen: list[bool] = []
    handle = conv.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous(memory_format=CL)))
    try:
        with torch.no_grad():
            enc(batch)
    finally:
        handle.remove()
    return seen[0]


@pytest.fixture(scope="module", params=["efficientnet_lite0", "resnet18"])
def encoder(request: pytest.FixtureRequest) -> Encoder:
    name = request.param
    torch.manual_seed(0)
    return jftzoo.get_encoder(name, pretrained=name == "efficientnet_lite0")  # real weights where packaged


def test_convolutional_encoders_default_to_channels_last(encoder: Encoder):
    assert encoder.memory_format == "channels_last"
    weights = conv_weights(encoder)
    assert weights and all(w.is_contiguous(memory_format=CL) for w in weights)
    batch = encoder.preprocess(images())
    assert batch["pixel_values"].is_contiguous()  # preprocessing is untouched; forward converts
    assert first_conv_input_layout(encoder, batch)


def test_channels_last_gives_the_contiguous_outputs(encoder: Encoder):
    batch = encoder.preprocess(images())
    fingerprint, config = encoder_fingerprint(encoder), encoder.preprocess_config()
    with torch.no_grad():
        fast = encoder(batch)
        fast_split = encoder.top_forward(encoder.prefix_forward(batch, 2), 2)
    assert encoder.prefix_forward(batch, 2)["features"].is_contiguous(memory_format=CL)
    try:
        encoder.set_memory_format("contiguous")
        assert encoder.memory_format == "contiguous"
        assert all(w.is_contiguous() for w in conv_weights(encoder))
        assert not first_conv_input_layout(encoder, batch)
        with torch.no_grad():
            plain = encoder(batch)
        assert encoder_fingerprint(encoder) == fingerprint and encoder.preprocess_config() == config
    finally:
        encoder.set_memory_format("channels_last")
    assert encoder_fingerprint(encoder) == fingerprint
    for out in (fast, fast_split):
        torch.testing.assert_close(out.pooled, plain.pooled, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.tokens, plain.tokens, atol=1e-4, rtol=1e-4)
        assert torch.equal(out.mask, plain.mask)
    assert fast.tokens.shape == plain.tokens.shape and fast.tokens.shape[1] == 49  # 7 x 7 positions


def test_moving_the_encoder_keeps_channels_last(encoder: Encoder):
    """Module.to keeps each tensor's memory format (dtype here; devices too, checked on a GPU when present)."""
    moves = [torch.float64, torch.float32]
    if torch.cuda.is_available():
        moves += [torch.device("cuda"), torch.device("cpu")]
    try:
        for where in moves:
            encoder.to(where)
            assert all(w.is_contiguous(memory_format=CL) for w in conv_weights(encoder)), where
    finally:
        encoder.to(torch.device("cpu"), torch.float32)


def test_token_models_stay_contiguous():
    enc = jftzoo.get_encoder("vit", pretrained=False)
    assert not enc.convolutional and enc.memory_format == "contiguous"
    with pytest.raises(ValueError, match="not a convolutional"):
        enc.set_memory_format("channels_last")
    with pytest.raises(ValueError, match="memory format must be"):
        jftzoo.get_encoder("resnet18", pretrained=False).set_memory_format("nhwc")
    text = jftzoo.get_encoder("minilm", pretrained=False)
    text.set_memory_format("contiguous")  # every encoder accepts its one format
    with pytest.raises(ValueError, match="only runs"):
        text.set_memory_format("channels_last")
