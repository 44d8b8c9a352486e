"""Frozen-pass backends: who runs an encoder's forward when nothing trains.

Measured on the 2-core CPU (benchmarks/frozen_backends.py, 256 MVSA-Single items, best of 3):
OpenVINO runs EfficientNet-Lite0's frozen pass 3.1x faster than PyTorch (ONNX Runtime 2.6x) with
embeddings at cosine 0.9999998; for MiniLM both give only 1.2x, under the 1.3x bar, so text
encoders always run PyTorch. `openvino` is therefore offered for timm vision encoders on a CPU, as
the `openvino` extra, chosen with `frozen_backend` (`--frozen-backend`): "pytorch" (default, the
reference), "openvino", or "auto" (OpenVINO where installed and it applies). The model is
converted with OpenVINO's own `convert_model` straight from the PyTorch module (no hand-written
exporter), once per encoder weights, and its outputs are keyed apart in the embedding cache
(they differ from PyTorch's in the last float digits).
"""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Callable

import torch

from jftzoo.encoders.base import Encoder, EncoderOutput
from jftzoo.errors import UsageError

BACKENDS = ("pytorch", "openvino", "auto")

Forward = Callable[[dict[str, torch.Tensor]], EncoderOutput]


def installed(backend: str) -> bool:
    return backend == "pytorch" or importlib.util.find_spec(backend) is not None


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        from jftzoo.errors import suggest

        hint = suggest(name, BACKENDS)
        did = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UsageError(f"frozen_backend must be one of {', '.join(BACKENDS)}, got {name!r}.{did}")
    if name == "openvino" and not installed("openvino"):
        raise UsageError("frozen_backend 'openvino' needs OpenVINO: pip install 'jftzoo[openvino]' "
                         "(or use --frozen-backend auto, which falls back to PyTorch)")


def applies(encoder: Encoder) -> bool:
    """OpenVINO runs timm vision encoders on a CPU (fixed-size pixel input); anything else stays PyTorch."""
    return "openvino" in getattr(encoder, "frozen_backends", ()) and encoder.device.type == "cpu"


def resolve(name: str, encoder: Encoder) -> str:
    """The backend that will run `encoder`'s frozen pass under the `name` setting."""
    check_backend(name)
    if name == "pytorch" or not applies(encoder):
        return "pytorch"
    if name == "auto" and not installed("openvino"):
        return "pytorch"
    return "openvino"


def backend_tag(backend: str) -> str:
    """What enters an embedding-cache fingerprint: the backend and its version ('' for PyTorch)."""
    if backend == "pytorch":
        return ""
    from importlib import metadata

    return f"{backend} {metadata.version(backend)}"


class _Outputs(torch.nn.Module):
    """The encoder's frozen forward as tensors in, tensors out: what a converter traces."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.encoder({"pixel_values": pixel_values})
        return out.pooled, out.tokens  # (B, D), (B, N, Dt)


class OpenVINOForward:
    """An encoder's frozen forward compiled by OpenVINO for the CPU, with a dynamic batch size."""

    def __init__(self, encoder: Encoder) -> None:
        import openvino as ov

        size = tuple(encoder.data_config["input_size"])  # type: ignore[attr-defined]  # (3, H, W)
        example = torch.zeros(1, *size)
        with torch.no_grad():
            model = ov.convert_model(_Outputs(encoder).eval(), example_input=example,
                                     input=[ov.PartialShape([-1, *size])])
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = ov.Core().compile_model(model, "CPU", config)

    def __call__(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        result = self.compiled([batch["pixel_values"].numpy()])
        pooled = torch.from_numpy(result[0].copy())  # (B, D)
        tokens = torch.from_numpy(result[1].copy())  # (B, N, Dt)
        return EncoderOutput(pooled, tokens, torch.ones(tokens.shape[:2], dtype=torch.bool))


_compiled: weakref.WeakKeyDictionary[Encoder, tuple[int, OpenVINOForward]] = weakref.WeakKeyDictionary()


def frozen_forward(encoder: Encoder, backend: str) -> Forward:
    """The forward that runs `encoder`'s frozen pass under `backend` (a resolved name)."""
    if backend == "pytorch":
        return encoder
    from jftzoo.digests import weights_version

    version = weights_version(encoder)  # recompiled if trained since
    known = _compiled.get(encoder)
    if known is None or known[0] != version:
        known = (version, OpenVINOForward(encoder))
        _compiled[encoder] = known
    return known[1]
