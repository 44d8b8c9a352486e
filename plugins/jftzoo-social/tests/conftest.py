"""Test setup: hermetic plugin loading, and the package importable even before `pip install -e`."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# Like jftzoo's own tests: don't auto-load every installed entry point (read by jftzoo.plugins).
sys._called_from_test = True  # type: ignore[attr-defined]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: never reach for the hub

if importlib.util.find_spec("jftzoo_social") is None:  # running from a checkout, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
