"""Every command's --help shows an example, and every command lives in its own jftzoo.cli module."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jftzoo.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append(((*prefix, name), cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
    return out


COMMANDS = _commands(cli)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Example" in result.output, result.output


def test_commands_come_from_the_cli_package_modules() -> None:
    modules = {cmd.callback.__module__ for _, cmd in COMMANDS if cmd.callback is not None}
    assert modules <= {f"jftzoo.cli.{m}" for m in ("encoders", "data", "train", "bench", "tune", "explain", "cache",
                                                   "results")}, modules


def test_each_group_has_its_own_module() -> None:
    """huggingface_hub's layout: one module per command group (bench.py once held cache and results too)."""
    groups = {path[0]: {c.callback.__module__ for p, c in COMMANDS if p[0] == path[0] and c.callback is not None}
              for path, cmd in COMMANDS if len(path) == 1 and isinstance(cmd, click.Group)}
    assert groups["cache"] == {"jftzoo.cli.cache"} and groups["results"] == {"jftzoo.cli.results"}, groups
    assert all(len(modules) == 1 for modules in groups.values()), groups


def test_no_module_imports_another_modules_private_names() -> None:
    """What one module needs from another is public there: a private name may change without notice
    (bench.py's `_seeds` and `_speed_options` once served train and tune)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "jftzoo"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jftzoo"):
                found += [f"{path.relative_to(root.parent)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found
