"""The plugin manager: built-in plugins plus third-party ones found through the `jftzoo` entry points.

Loading is fault-tolerant: a plugin that cannot be imported is recorded in `problems` and skipped,
so one broken package never takes the CLI down with it.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pluggy

from jftzoo import hookspecs

ENTRY_POINT_GROUP = "jftzoo"
LOAD_PLUGINS_ENV = "JFTZOO_LOAD_PLUGINS"

DEFAULT_PLUGINS = (
    "jftzoo.default_plugins.text_encoders",
    "jftzoo.default_plugins.vision_encoders",
    "jftzoo.default_plugins.datasets",
    "jftzoo.default_plugins.fusions",
)

pm = pluggy.PluginManager("jftzoo")
pm.add_hookspecs(hookspecs)


@dataclass
class PluginInfo:
    """What `jftzoo plugins` shows about one loaded plugin."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    module: ModuleType | object | None = None

    @property
    def hooks(self) -> list[str]:
        if self.module is None:
            return []
        return sorted(h.name for h in pm.get_hookcallers(self.module) or [])


@dataclass
class PluginProblem:
    """A plugin that failed to load or to register; reported, then skipped."""

    plugin: str
    distribution: str | None
    stage: str  # "import" | "register_encoders" | "not-found" | "invalid-spec" | "duplicate"
    error: str
    details: str = field(default="", repr=False)

    def message(self) -> str:
        who = f"plugin {self.plugin!r}"
        if self.distribution and self.distribution != self.plugin:
            who += f" (distribution {self.distribution})"
        verb = {
            "import": "failed to import and was skipped",
            "register_encoders": "raised inside register_encoders and was skipped",
            "register_datasets": "raised inside register_datasets and was skipped",
            "register_fusions": "raised inside register_fusions and was skipped",
            "not-found": "is not installed",
            "invalid-spec": "registered an invalid encoder spec, which was skipped",
            "duplicate": "registered a name that is already taken",
        }.get(self.stage, self.stage)
        return f"{who} {verb}: {self.error}"


plugin_infos: dict[str, PluginInfo] = {}
problems: list[PluginProblem] = []
_loaded = False


def _register_entry_point(ep: metadata.EntryPoint, dist: metadata.Distribution | None) -> None:
    dist_name = dist.metadata["Name"] if dist is not None else None
    try:
        module = ep.load()
        pm.register(module, name=ep.name)
    except Exception as exc:  # a broken third-party plugin must never crash jftzoo
        problems.append(
            PluginProblem(
                plugin=ep.name,
                distribution=dist_name,
                stage="import",
                error=f"{type(exc).__name__}: {exc}",
                details=traceback.format_exc(),
            )
        )
        return
    plugin_infos[ep.name] = PluginInfo(
        name=ep.name,
        distribution=dist_name,
        version=dist.version if dist is not None else None,
        builtin=False,
        module=module,
    )


def _selected_distributions() -> list[str] | None:
    """Distribution names from JFTZOO_LOAD_PLUGINS; None means 'all installed'."""
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return [name.strip() for name in raw.split(",") if name.strip()]


def load_plugins() -> None:
    """Register default plugins and (unless tests or JFTZOO_LOAD_PLUGINS say otherwise) entry points."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    selected = _selected_distributions()
    under_test = hasattr(sys, "_called_from_test")
    if selected is None and not under_test:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            _register_entry_point(ep, getattr(ep, "dist", None))
    elif selected:
        for dist_name in selected:
            try:
                dist = metadata.distribution(dist_name)
            except metadata.PackageNotFoundError:
                problems.append(
                    PluginProblem(
                        plugin=dist_name,
                        distribution=dist_name,
                        stage="not-found",
                        error=f"{LOAD_PLUGINS_ENV} names it, but no such distribution is installed",
                    )
                )
                continue
            for ep in dist.entry_points:
                if ep.group == ENTRY_POINT_GROUP:
                    _register_entry_point(ep, dist)
    for name in DEFAULT_PLUGINS:
        module = importlib.import_module(name)
        pm.register(module, name=name)
        plugin_infos[name] = PluginInfo(name, "jftzoo", _own_version(), builtin=True, module=module)


def register_plugin(plugin: object, name: str) -> None:
    """Register an in-process plugin object (tests, notebooks); `unregister_plugin` undoes it."""
    load_plugins()
    if pm.get_plugin(name) is plugin:
        return  # already loaded (e.g. through its entry point): nothing to do
    if pm.get_plugin(name) is not None:
        raise ValueError(f"a different plugin is already registered as {name!r}; unregister_plugin({name!r}) first")
    pm.register(plugin, name=name)
    plugin_infos[name] = PluginInfo(name, None, None, builtin=False, module=plugin)


def unregister_plugin(name: str) -> None:
    plugin_infos.pop(name, None)
    if pm.get_plugin(name) is not None:
        pm.unregister(name=name)


def ordered_plugins() -> list[tuple[str, object]]:
    """Built-ins first, then third-party plugins in load order: the first registration of a name wins."""
    load_plugins()
    builtin = [(n, pm.get_plugin(n)) for n in DEFAULT_PLUGINS if pm.get_plugin(n) is not None]
    others = [(n, p) for n, p in pm.list_name_plugin() if n not in DEFAULT_PLUGINS]
    return builtin + others


def _own_version() -> str:
    from jftzoo.version import __version__

    return __version__


def _code_root(info: PluginInfo) -> Path | None:
    """Where a plugin's code lives: its top-level package directory, or its module file."""
    module = info.module if isinstance(info.module, ModuleType) else sys.modules.get(type(info.module).__module__)
    if module is None:
        return None
    top = sys.modules.get(module.__name__.partition(".")[0], module)
    file = getattr(top, "__file__", None) or getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    return path.parent if path.name == "__init__.py" else path


def blame(exc: BaseException) -> PluginInfo | None:
    """The third-party plugin whose code raised `exc` (its innermost frame in plugin code), or None.

    Lets a run-time plugin bug fail the work that used the plugin, named, instead of the whole run."""
    roots = [(info, root) for info in plugin_infos.values() if not info.builtin
             for root in [_code_root(info)] if root is not None]
    if not roots:
        return None
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        where = Path(frame.filename).resolve()
        for info, root in roots:
            if where == root or root in where.parents:
                return info
    return None


def describe(info: PluginInfo) -> str:
    """`plugin 'x' (distribution y)`: how errors name a plugin."""
    return f"plugin {info.name!r}" + (f" (distribution {info.distribution})" if info.distribution else "")
