"""Test set-up: no third-party entry points (tests register fake plugins), no hub traffic."""

from __future__ import annotations

import os
import sys
import tempfile

sys._called_from_test = True  # type: ignore[attr-defined]  # jftzoo.plugins: skip entry points
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The embedding cache of every test run lives in a temporary folder, never the user's cache.
os.environ["JFTZOO_CACHE_DIR"] = tempfile.mkdtemp(prefix="jftzoo-test-cache-")

import pytest  # noqa: E402

from jftzoo import plugins, registry  # noqa: E402
from jftzoo.datasets import registry as dataset_registry  # noqa: E402
from jftzoo.fusion import registry as fusion_registry  # noqa: E402


@pytest.fixture
def register_plugin():
    """Register in-process plugin objects for one test; unregistered and forgotten afterwards."""
    names: list[str] = []

    def _register(plugin: object, name: str) -> None:
        plugins.register_plugin(plugin, name)
        names.append(name)
        registry.reset()
        dataset_registry.reset()
        fusion_registry.reset()

    yield _register
    for name in names:
        plugins.unregister_plugin(name)
    registry.reset()
    dataset_registry.reset()
    fusion_registry.reset()
