"""Dataset kinds from every plugin's `register_datasets` hook, and `load_dataset("KIND:PATH")`."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jftzoo import plugins
from jftzoo.errors import UsageError, suggest
from jftzoo.registry import JftzooPluginWarning, call_hook

if TYPE_CHECKING:
    from jftzoo.datasets.records import Dataset


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset kind: how to read it, and what its labels are."""

    name: str
    reader: str | Callable[..., Dataset]  # reader(path, **options) -> Dataset
    description: str = ""
    labels: tuple[str, ...] | None = None  # None: taken from the data
    license: str = ""
    needs_path: bool = True  # False for datasets shipped inside a package
    options: tuple[str, ...] = ()  # options the reader accepts beyond on_bad / verify_images
    provider: str = field(default="", compare=False)

    def resolve_reader(self) -> Callable[..., Dataset]:
        if callable(self.reader):
            return self.reader
        module, _, attr = self.reader.partition(":")
        return getattr(importlib.import_module(module), attr)


class UnknownDatasetError(UsageError):
    def __init__(self, name: str, known: list[str]) -> None:
        hint = suggest(name, known)
        did = f" Did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
        super().__init__(f"Unknown dataset kind {name!r}.{did} Run `jftzoo datasets` to list them.")


_specs: dict[str, DatasetSpec] | None = None


def dataset_specs() -> dict[str, DatasetSpec]:
    global _specs
    if _specs is None:
        problems: list[plugins.PluginProblem] = []
        specs: dict[str, DatasetSpec] = {}
        for name, distribution, batch in call_hook("register_datasets", problems):
            for spec in batch:
                if not isinstance(spec, DatasetSpec):
                    problems.append(plugins.PluginProblem(name, distribution, "invalid-spec",
                                                          f"register() takes a DatasetSpec, got {type(spec).__name__}"))
                elif spec.name in specs:
                    problems.append(plugins.PluginProblem(
                        name, distribution, "duplicate",
                        f"dataset {spec.name!r} is registered by both {specs[spec.name].provider!r} and {name!r}; "
                        f"keeping the first"))
                else:
                    specs[spec.name] = replace(spec, provider=name)
        for problem in problems:
            warnings.warn(problem.message(), JftzooPluginWarning, stacklevel=2)
        _specs = specs
    return _specs


def reset() -> None:
    global _specs
    _specs = None


def get_dataset_spec(name: str) -> DatasetSpec:
    specs = dataset_specs()
    if name not in specs:
        raise UnknownDatasetError(name, list(specs))
    return specs[name]


def parse_data_arg(text: str) -> tuple[str, str | None]:
    """'KIND:PATH' -> (kind, path); a bare 'KIND' for datasets that need no path."""
    kind, sep, path = text.partition(":")
    return kind, (path if sep else None)


def load_dataset(data: str, *, on_bad: str = "error", verify_images: bool = True, **options: Any) -> Dataset:
    """Read `KIND:PATH` (or a packaged dataset's bare `KIND`) with its registered reader."""
    kind, path = parse_data_arg(data)
    spec = get_dataset_spec(kind)
    unknown = sorted(k for k, v in options.items() if v is not None and k not in spec.options)
    if unknown:
        raise UsageError(f"dataset {kind!r} does not take option(s) {', '.join(unknown)}; "
                         f"it takes: {', '.join(spec.options) or 'none'}")
    if spec.needs_path and not path:
        raise UsageError(f"dataset {kind!r} needs a path: --data {kind}:PATH")
    given = {k: v for k, v in options.items() if v is not None}
    reader = spec.resolve_reader()
    if spec.needs_path:
        root = Path(path).expanduser()  # type: ignore[arg-type]
        if not root.exists():
            raise UsageError(f"dataset {kind!r}: {root} does not exist")
        return reader(root, on_bad=on_bad, verify_images=verify_images, **given)
    return reader(on_bad=on_bad, verify_images=verify_images, **given)
