"""The README's commands and code: every `rc-clevertap` command it shows is one the CLI
accepts, and every Python example compiles.  (What each command does is tested in
tests/test_cli.py and the package tests; the two set-up commands are what .ci/run runs.)"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

from integration.app.cli import build_parser

README = (Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
INLINE = re.findall(r"`(rc-clevertap [^`]+)`", README)


def _commands() -> list[str]:
    found = []
    for lang, body in BLOCKS:
        if lang != "bash":
            continue
        for line in body.splitlines():
            line = line.split("#")[0].strip()
            for part in line.split("&&"):
                words = part.strip().split()
                while words and "=" in words[0]:  # VAR=value prefixes
                    words.pop(0)
                if words and words[0] == "rc-clevertap":
                    found.append(" ".join(words))
    found += INLINE
    return sorted(set(found))


COMMANDS = _commands()


def test_the_readme_shows_the_two_setup_commands() -> None:
    """The set-up section has the install-and-demo command and the test command."""
    assert "python -m pip install -e '.[dev]' && rc-clevertap demo" in README
    assert "python -m pytest" in README
    assert "python -m pytest" in (Path(__file__).parent.parent / ".ci" / "run").read_text()


def test_the_readme_shows_every_command() -> None:
    """Each CLI command appears in the README at least once."""
    shown = {c.split()[1] for c in COMMANDS if len(c.split()) > 1}
    assert shown >= {"demo", "mock", "serve", "map", "set-id", "dlq", "replay", "status"}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_readme_command_is_accepted_by_the_cli(command: str) -> None:
    """The CLI parses each rc-clevertap command line the README shows."""
    argv = shlex.split(command.split("<")[0].split(">")[0])[1:]
    if argv == ["--version"]:  # argparse prints the version and exits 0
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(argv)
        assert exited.value.code == 0
        return
    args = build_parser().parse_args(argv)
    assert callable(args.handler)


@pytest.mark.parametrize(
    "source", [body for lang, body in BLOCKS if lang == "python"], ids=lambda s: s.split("\n")[0]
)
def test_each_readme_python_example_compiles(source: str) -> None:
    """Each Python example in the README is valid Python (top-level await allowed)."""
    compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _imports() -> list[str]:
    found = []
    for lang, body in BLOCKS:
        if lang != "python":
            continue
        for node in ast.walk(ast.parse(body)):
            if isinstance(node, ast.ImportFrom) and node.module:
                found += [f"{node.module}:{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
    return sorted(set(found))


@pytest.mark.parametrize("target", _imports())
def test_each_readme_import_resolves(target: str) -> None:
    """Every module and name a README example imports exists at that path (modules move)."""
    module_name, _, name = target.partition(":")
    module = importlib.import_module(module_name)
    assert not name or hasattr(module, name), f"{module_name} has no {name}"
