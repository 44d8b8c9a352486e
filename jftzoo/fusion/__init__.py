"""Fusion heads and their registry (the `register_fusions` plugin hook)."""
