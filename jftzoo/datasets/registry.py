"""Dataset kinds from every plugin's `register_datasets` hook, and `load_dataset("KIND:PATH")`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jftzoo.errors import UsageError
from jftzoo.registry import UnknownNameError, collect_specs, import_ref

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
    # TrainConfig fields this kind of data trains better with (measured on validation, docs/datasets.md): used
    # where neither the user nor the head's own recipe sets them, and written into every record like any option
    train_defaults: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def resolve_reader(self) -> Callable[..., Dataset]:
        return import_ref(self.reader)


_specs: dict[str, DatasetSpec] | None = None


def dataset_specs() -> dict[str, DatasetSpec]:
    global _specs
    if _specs is None:
        _specs = collect_specs("register_datasets", DatasetSpec, "dataset")
    return _specs


def reset() -> None:
    global _specs
    _specs = None


def get_dataset_spec(name: str) -> DatasetSpec:
    specs = dataset_specs()
    if name not in specs:
        raise UnknownNameError("dataset kind", name, list(specs), "Run `jftzoo datasets` to list them.")
    return specs[name]


TEXT_FIELDS = ("text_normalizer",)  # training defaults a model without a text encoder never takes (same training)


def train_defaults(data: str, reads_text: bool = True) -> dict[str, Any]:
    """The dataset kind's own training defaults for `KIND:PATH` ({} for most kinds); without the text-side
    ones for a model that reads no text, so an image-only configuration keeps its name."""
    defaults = get_dataset_spec(parse_data_arg(data)[0]).train_defaults
    return {k: v for k, v in defaults.items() if reads_text or k not in TEXT_FIELDS}


def parse_data_arg(text: str) -> tuple[str, str | None]:
    """'KIND:PATH' -> (kind, path); a bare 'KIND' for datasets that need no path."""
    kind, sep, path = text.partition(":")
    return kind, (path if sep else None)


def load_dataset(data: str, *, on_bad: str = "error", verify_images: bool = True, on_missing: str = "keep",
                 **options: Any) -> Dataset:
    """Read `KIND:PATH` (or a packaged dataset's bare `KIND`) with its registered reader, then apply the
    missing-modality policy (`on_missing`: keep | skip | error; jftzoo.datasets.checks), so every
    reader, a plugin's included, only has to keep posts without text or image as records."""
    from jftzoo.datasets.checks import apply_on_missing, check_on_missing

    check_on_missing(on_missing)  # before reading anything
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
        dataset = reader(root, on_bad=on_bad, verify_images=verify_images, **given)
    else:
        dataset = reader(on_bad=on_bad, verify_images=verify_images, **given)
    return apply_on_missing(dataset, on_missing)
