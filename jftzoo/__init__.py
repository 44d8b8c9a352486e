"""jftzoo: multimodal sentiment classification by joint fine-tuning of two pre-trained encoders.

Importing jftzoo is cheap: torch, transformers and timm load only when an encoder is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jftzoo.errors import (
    BadInputError,
    JftzooError,
    TokenizerUnavailableError,
    UnknownEncoderError,
    UsageError,
    WeightsIntegrityError,
    WeightsUnavailableError,
)
from jftzoo.hookspecs import hookimpl
from jftzoo.registry import EncoderSpec, PackagedWeights, get_encoder, list_encoders
from jftzoo.version import __version__

if TYPE_CHECKING:
    from jftzoo.encoders.base import Encoder, EncoderOutput

__all__ = [
    "BadInputError",
    "Encoder",
    "EncoderOutput",
    "EncoderSpec",
    "JftzooError",
    "PackagedWeights",
    "TokenizerUnavailableError",
    "UnknownEncoderError",
    "UsageError",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
    "__version__",
    "explain_dataset",
    "explain_record",
    "get_encoder",
    "hookimpl",
    "list_encoders",
]


def __getattr__(name: str) -> Any:
    # Encoder classes need torch: import them only when asked for.
    if name in ("Encoder", "EncoderOutput"):
        from jftzoo.encoders import base

        return getattr(base, name)
    if name in ("explain_dataset", "explain_record"):  # torch and captum: only when asked for
        from jftzoo import explain

        return getattr(explain, name)
    raise AttributeError(f"module 'jftzoo' has no attribute {name!r}")
