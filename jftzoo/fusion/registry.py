"""Fusion heads from every plugin's `register_fusions` hook; registration imports no torch."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from jftzoo import plugins
from jftzoo.errors import UsageError, suggest
from jftzoo.registry import JftzooPluginWarning, call_hook


@dataclass(frozen=True)
class FusionSpec:
    name: str
    factory: str | Callable[..., Any]  # "module:Class" taking a HeadConfig
    description: str = ""
    modalities: tuple[str, ...] = ("text", "vision")
    uses_tokens: bool = False
    provider: str = field(default="", compare=False)

    def resolve(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


class UnknownFusionError(UsageError):
    def __init__(self, name: str, known: list[str]) -> None:
        hint = suggest(name, known)
        did = f" Did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
        super().__init__(f"Unknown fusion head {name!r}.{did} Known: {', '.join(known)}.")


_specs: dict[str, FusionSpec] | None = None


def fusion_specs() -> dict[str, FusionSpec]:
    global _specs
    if _specs is None:
        problems: list[plugins.PluginProblem] = []
        specs: dict[str, FusionSpec] = {}
        for name, distribution, batch in call_hook("register_fusions", problems):
            for spec in batch:
                if not isinstance(spec, FusionSpec):
                    problems.append(plugins.PluginProblem(name, distribution, "invalid-spec",
                                                          f"register() takes a FusionSpec, got {type(spec).__name__}"))
                elif spec.name in specs:
                    problems.append(plugins.PluginProblem(
                        name, distribution, "duplicate",
                        f"fusion {spec.name!r} is registered by both {specs[spec.name].provider!r} and {name!r}; "
                        "keeping the first"))
                else:
                    specs[spec.name] = replace(spec, provider=name)
        for problem in problems:
            warnings.warn(problem.message(), JftzooPluginWarning, stacklevel=2)
        _specs = specs
    return _specs


def reset() -> None:
    global _specs
    _specs = None


def get_fusion_spec(name: str) -> FusionSpec:
    specs = fusion_specs()
    if name not in specs:
        raise UnknownFusionError(name, list(specs))
    return specs[name]


def build_head(name: str, cfg: Any) -> Any:
    """A fresh head of the named kind for the given HeadConfig."""
    return get_fusion_spec(name).resolve()(cfg)
