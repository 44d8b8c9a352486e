"""Fusion heads from every plugin's `register_fusions` hook; registration imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jftzoo.registry import UnknownNameError, collect_specs, import_ref


@dataclass(frozen=True)
class FusionSpec:
    """A registered fusion head. `train_preset` holds `TrainConfig` fields (JSON-able) that the head's
    published recipe fixes, e.g. its learning rate and schedule; options a caller passes win over them."""

    name: str
    factory: str | Callable[..., Any]  # "module:Class" taking a HeadConfig
    description: str = ""
    modalities: tuple[str, ...] = ("text", "vision")
    uses_tokens: bool = False
    provider: str = field(default="", compare=False)
    train_preset: dict[str, Any] = field(default_factory=dict, hash=False)

    def resolve(self) -> Callable[..., Any]:
        return import_ref(self.factory)


_specs: dict[str, FusionSpec] | None = None


def fusion_specs() -> dict[str, FusionSpec]:
    global _specs
    if _specs is None:
        _specs = collect_specs("register_fusions", FusionSpec, "fusion")
    return _specs


def reset() -> None:
    global _specs
    _specs = None


def get_fusion_spec(name: str) -> FusionSpec:
    specs = fusion_specs()
    if name not in specs:
        raise UnknownNameError("fusion head", name, list(specs), f"Known: {', '.join(specs)}.")
    return specs[name]


def build_head(name: str, cfg: Any) -> Any:
    """A fresh head of the named kind for the given HeadConfig."""
    return get_fusion_spec(name).resolve()(cfg)


def apply_train_preset(fusion: str, options: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Training options for the named head: `defaults` (a dataset kind's, `train_defaults`) under its spec's
    `train_preset`, under `options` (explicit wins)."""
    return {**(defaults or {}), **get_fusion_spec(fusion).train_preset, **options}
