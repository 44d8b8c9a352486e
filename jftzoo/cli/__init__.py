"""The `jftzoo` command line: one module per command group, on top of the library (which never imports it).

Heavy libraries (torch, transformers, timm) load inside the commands that need them, so `jftzoo --help`
and `jftzoo list-encoders` stay fast.
"""

from __future__ import annotations

from jftzoo.cli import bench, cache, data, encoders, explain, results, train, tune  # noqa: F401 (they register)
from jftzoo.cli.app import cli

bench.register(cli)
cache.register(cli)
results.register(cli)
tune.register(cli)
explain.register(cli)

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="jftzoo")
