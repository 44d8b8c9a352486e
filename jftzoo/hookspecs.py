"""Plugin hook specifications: each hook hands the plugin a `register` callback."""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("jftzoo")
hookimpl = HookimplMarker("jftzoo")


@hookspec
def register_encoders(register):  # type: ignore[no-untyped-def]
    """Register encoders: call ``register(EncoderSpec(...))`` once per encoder.

    Keep it cheap: a spec names a factory (ideally a ``"module:function"`` string) and nothing
    is built or imported until someone asks for that encoder.
    """


@hookspec
def register_datasets(register):  # type: ignore[no-untyped-def]
    """Register datasets: call ``register(DatasetSpec(...))`` once per dataset kind.

    As with encoders, a spec names its reader as ``"module:function"``; nothing is read until asked.
    """


@hookspec
def register_fusions(register):  # type: ignore[no-untyped-def]
    """Register fusion heads: call ``register(FusionSpec(...))`` once per head."""
