"""Every `jftzoo ...` command the README, docs/ and the committed result pages show names a real command, real
options and valid choices, with no stray words: a renamed option or a command broken across two lines of a
markdown code span is caught here, not by a reader pasting it.

Synopsis notation is understood: `[--json]` is an optional option, upper-case words (DIR, MODEL_DIR, KIND:PATH),
`...` and `a|b` are placeholders whose values are not checked."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
from dataclasses import dataclass, fields
from pathlib import Path

import click
import pytest

import jftzoo
from jftzoo.cli import cli
from jftzoo.train.classifier import FusionClassifier
from jftzoo.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").rglob("*.md")),
         *sorted((ROOT / "plugins").glob("*/README.md"))]
SHELL_LANGS = ("", "bash", "sh", "shell", "console")
SHELL_END = re.compile(r"\s(?:&&|\|\||\||;|#|>|2>)(?:\s|$)")  # what ends a command on a shell line


@dataclass(frozen=True)
class Shown:
    page: str
    line: int
    text: str  # after `jftzoo `

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: jftzoo {self.text}"


def shown_commands(path: Path) -> list[Shown]:
    """The jftzoo commands of a page: each one at the start of a shell line of a fenced block (after `$ `, env
    assignments or `&&`), continuation lines joined; and each inline code span starting with `jftzoo `."""
    text = path.read_text(encoding="utf-8")
    page = str(path.relative_to(ROOT))
    found: list[Shown] = []
    for fence in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if fence.group(1) not in SHELL_LANGS:
            continue
        first = text.count("\n", 0, fence.start(2)) + 1
        for m in re.finditer(r"^[ \t]*(?:\$ )?(?:\w+=\S+ +)*jftzoo +((?:[^\n\\]|\\(?!\n))*(?:\\\n[^\n\\]*)*)",
                             fence.group(2), re.M):
            body = re.sub(r"\\\n\s*", " ", m.group(1))
            found.append(Shown(page, first + fence.group(2).count("\n", 0, m.start()), body))
            found += [Shown(page, found[-1].line, more) for more in re.findall(r"&& *jftzoo +(.*?)(?=&&|$)", body)]
    for m in re.finditer(r"`jftzoo ([^`]+)`", text):
        found.append(Shown(page, text.count("\n", 0, m.start()) + 1, m.group(1)))
    return found


def is_placeholder(token: str) -> bool:
    return ("..." in token or "|" in token or "<" in token or "$" in token
            or bool(re.fullmatch(r"[A-Z][A-Z0-9_:]*(?:[=,][A-Z0-9_.,=:]*)*", token)))


def problems(shown: Shown) -> list[str]:
    """What is wrong with one shown command (empty when nothing is): walks the command path, then each token."""
    try:
        tokens = shlex.split(SHELL_END.split(" " + shown.text)[0])  # the text up to the first shell operator
    except ValueError as err:
        return [f"cannot be split into words ({err})"]
    tokens = [t.strip("[]") for t in tokens if t.strip("[]")]
    command: click.Command = cli
    while tokens and isinstance(command, click.Group) and not tokens[0].startswith("-"):
        sub = command.commands.get(tokens[0])
        if sub is None:
            return [f"no command {tokens[0]!r} in `{command.name}`"] if not is_placeholder(tokens[0]) else []
        command, tokens = sub, tokens[1:]
    options = {name: p for p in command.params if isinstance(p, click.Option) for name in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    room = sum(1 if a.nargs == 1 else 10**6 for a in arguments)
    out: list[str] = []
    positional, i = 0, 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and token not in ("-",):
            name, eq, value = token.partition("=")
            if name in ("--help", "-h"):
                i += 1
                continue
            option = options.get(name)
            if option is None:
                out.append(f"`{command.name}` has no option {name}")
                i += 1
                continue
            if option.is_flag or option.count:
                i += 1
                continue
            if not eq:
                if i + 1 >= len(tokens):
                    out.append(f"{name} needs a value")
                    break
                value, i = tokens[i + 1], i + 1
            i += 1
            if isinstance(option.type, click.Choice) and not is_placeholder(value):
                values = value.split(",") if option.multiple or "," in value else [value]
                bad = [v for v in values if v not in option.type.choices]
                if bad:
                    out.append(f"{name} {value}: not one of {', '.join(map(str, option.type.choices))}")
            continue
        positional += 1
        if positional > room and not is_placeholder(token):
            out.append(f"stray word {token!r} (`{command.name}` takes {room} argument(s))")
        i += 1
    return out


SHOWN = [s for page in PAGES for s in shown_commands(page)]


def test_the_pages_show_commands():
    assert len(SHOWN) > 100 and {s.page for s in SHOWN} >= {"README.md", "docs/bench.md"}


@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_each_shown_command_parses(shown: Shown) -> None:
    assert not problems(shown), f"{shown}: {'; '.join(problems(shown))}"


@pytest.mark.parametrize("text, expected", [
    ("bench --groups nearduplicates", "--groups nearduplicates: not one of"),
    ("results compare --a fusion=concat,mode=frozen, groups=none --b x", "stray word 'groups=none'"),
    ("bench --epoch 3", "has no option --epoch"),
    ("benhc --data x", "no command 'benhc'"),
    ("results show --results", "--results needs a value"),
])
def test_a_broken_command_is_reported(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(Shown("x.md", 1, text))), problems(Shown("x.md", 1, text))


@pytest.mark.parametrize("text", ["plugins [--all] [--json]", "explain MODEL_DIR --data KIND:PATH [--part test|val]",
                                  "bench --data mvsa-single:PATH --seeds 0,1 && echo",
                                  "results predictions --results ..."])
def test_synopsis_notation_is_not_a_problem(text: str) -> None:
    assert problems(Shown("x.md", 1, text)) == []


# The pages' Python examples: every import resolves, every `jftzoo.<name>` exists, and every keyword given to a
# class the examples build (EncoderSpec, FusionClassifier, BenchConfig, ...) is one it takes.
def python_examples() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            found.append((str(page.relative_to(ROOT)), text.count("\n", 0, m.start()) + 1, m.group(1)))
    return found


def python_problems(source: str) -> list[str]:
    tree = ast.parse(source)
    names: dict[str, object] = {"jftzoo": jftzoo}
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jftzoo":
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                out.append(f"no module {node.module}")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        names[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        out.append(f"{node.module} has no {alias.name}")
                    continue
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "jftzoo":
                    try:
                        importlib.import_module(alias.name)
                    except ImportError:
                        out.append(f"no module {alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "jftzoo"
                and not hasattr(jftzoo, node.attr)):
            out.append(f"jftzoo has no {node.attr}")
        if isinstance(node, ast.Call):
            target = None
            if isinstance(node.func, ast.Name):
                target = names.get(node.func.id)
            elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
                target = getattr(names.get(node.func.value.id), node.func.attr, None)
            if target is None or not callable(target):
                continue
            try:
                params = inspect.signature(target).parameters
            except (TypeError, ValueError):
                continue
            accepted = set(params)
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                if target is not FusionClassifier:
                    continue
                accepted |= {f.name for f in fields(TrainConfig)}  # its **train are TrainConfig's fields
            out += [f"{getattr(target, '__name__', target)}() takes no {kw.arg}=" for kw in node.keywords
                    if kw.arg and kw.arg not in accepted]
    return out


PYTHON = python_examples()


def test_the_pages_show_python_examples():
    assert len(PYTHON) >= 8


@pytest.mark.parametrize("page, line, source", PYTHON, ids=[f"{p}:{n}" for p, n, _ in PYTHON])
def test_each_python_example_names_what_exists(page: str, line: int, source: str) -> None:
    assert not python_problems(source), f"{page}:{line}: {'; '.join(python_problems(source))}"


@pytest.mark.parametrize("source, expected", [
    ("from jftzoo.bench.grid import BenchConfg", "has no BenchConfg"),
    ("from jftzoo.bench.gird import BenchConfig", "no module jftzoo.bench.gird"),
    ("import jftzoo.bench.gird", "no module jftzoo.bench.gird"),
    ("import jftzoo\njftzoo.list_encoder('x')", "jftzoo has no list_encoder"),
    ("from jftzoo.bench.grid import BenchConfig\nBenchConfig(txt=['minilm'])", "takes no txt="),
    ("from jftzoo.train.classifier import FusionClassifier\nFusionClassifier(fusion='gated', topk=2)", "no topk="),
])
def test_a_broken_python_example_is_reported(source: str, expected: str) -> None:
    assert any(expected in p for p in python_problems(source)), python_problems(source)
