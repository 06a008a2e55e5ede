"""The docs and the CLI agree: every command in docs/ exists with the options it is shown with, and
every command (each subcommand included) is documented somewhere in docs/ or the README.

Commands are read from the lazy click tree in process (``shipyard.cli.main``), so a renamed option
or a new command without docs fails here, not in a user's terminal.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from shipyard.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = sorted([*REPO.joinpath("docs").rglob("*.md"), REPO / "README.md"])

# A command line in a code block or in inline code: `shipyard ...` up to the end of the span.
INLINE = re.compile(r"`(shipyard [^`\n]+)`")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def _walk(command: click.Command, path: tuple[str, ...]) -> dict[tuple[str, ...], click.Command]:
    found = {path: command}
    if _is_group(command):
        # typer >= 0.29 vendors click: its groups are not click.Group instances, so ask by shape
        ctx = _context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                found.update(_walk(sub, (*path, name)))
    return found


@cache
def commands() -> dict[tuple[str, ...], click.Command]:
    """Every command path under ``shipyard`` (the root is the empty path)."""
    return _walk(cli, ())


def _is_group(command: object) -> bool:
    return hasattr(command, "list_commands") and hasattr(command, "get_command")


def _context(command: click.Command, info_name: str | None = None) -> click.Context:
    """A context of the command's own click (typer's vendored copy or click itself)."""
    return command.context_class(command, info_name=info_name)


def _options(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names


def _doc_lines() -> list[tuple[str, int, str]]:
    """(file, line, command text) for every ``shipyard ...`` command shown in the docs."""
    lines: list[tuple[str, int, str]] = []
    for doc in DOC_FILES:
        text = doc.read_text()
        name = str(doc.relative_to(REPO))
        for match in INLINE.finditer(text):
            row = text.count("\n", 0, match.start()) + 1
            lines.extend((name, row, variant) for variant in _variants(match.group(1)))
        for block in FENCE.finditer(text):
            start = text.count("\n", 0, block.start(1)) + 1
            for offset, line in enumerate(block.group(1).splitlines()):
                for part in re.split(r"&&|\|\||;|\s\|\s", line):
                    part = part.strip().removeprefix("$ ").strip()
                    if part.startswith("shipyard "):
                        lines.extend((name, start + offset, v) for v in _variants(part))
    return lines


def _variants(text: str) -> list[str]:
    """``shipyard rollout pause|resume MODEL`` stands for one line per alternative."""
    words = text.split(" ")
    for i, word in enumerate(words):
        if re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)+", word):
            return [" ".join([*words[:i], alt, *words[i + 1 :]]) for alt in word.split("|")]
    return [text]


def _tokens(text: str) -> list[str]:
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        words = text.split()
    out = []
    for word in words[1:]:
        if word in {"\\", ">", "2>&1"} or word.startswith((">", "<", "#")):
            break
        out.append(word)
    return out


def _resolve(words: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The longest command path the words name, and the words after it."""
    path: tuple[str, ...] = ()
    rest = list(words)
    while rest and (*path, rest[0]) in commands():
        path = (*path, rest.pop(0))
    return path, rest


def test_every_documented_command_exists_with_its_options() -> None:
    problems = []
    for file, line, text in _doc_lines():
        words = _tokens(text)
        path, rest = _resolve(words)
        command = commands()[path]
        if _is_group(command) and rest and not rest[0].startswith("-"):
            if re.fullmatch(r"[a-z][a-z-]*", rest[0]) and not re.search(r"[A-Z.<\[{@/]", text):
                problems.append(f"{file}:{line}: `{text}`: no command {' '.join((*path, rest[0]))!r}")
            continue
        known = _options(command)
        for word in rest:
            if word.startswith("--"):
                # ``--a/--b`` names each option (a flag pair, or alternatives written together)
                for option in word.split("=", 1)[0].split("/"):
                    if option not in known:
                        problems.append(f"{file}:{line}: `{text}`: {' '.join(('shipyard', *path))} has no {option}")
    assert not problems, "\n".join(problems)


def test_every_command_is_documented() -> None:
    corpus = "\n".join(" ".join(["shipyard", *_tokens(text)]) for _, _, text in _doc_lines())
    missing = []
    for path, command in commands().items():
        if not path or (_is_group(command) and len(path) == 1 and _has_subcommands(path)):
            continue
        if not re.search(r"(^|\n)shipyard " + re.escape(" ".join(path)) + r"(\s|$)", corpus):
            missing.append("shipyard " + " ".join(path))
    assert not missing, "commands with no example in docs/ or README.md:\n" + "\n".join(missing)


def _has_subcommands(path: tuple[str, ...]) -> bool:
    return any(len(other) > len(path) and other[: len(path)] == path for other in commands())


@pytest.mark.parametrize("path", sorted(p for p in commands() if p), ids=" ".join)
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)
    # typer's vendored click raises its own Exit(0) after help, which click's runner reports as 1
    exit_code = getattr(result.exception, "exit_code", result.exit_code)
    assert exit_code == 0, result.output
    if not _is_group(commands()[path]):
        assert "Example" in result.output or "shipyard " + path[0] in result.output, result.output
