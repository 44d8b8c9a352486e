"""Encoder implementations. Importing this package imports torch: keep it off the CLI's fast paths."""

from jftzoo.encoders.base import Encoder, EncoderOutput

__all__ = ["Encoder", "EncoderOutput"]
