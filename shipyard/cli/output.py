"""Terminal output: rich on a terminal, plain lines in CI or when piped, JSON on request.

Commands print through these helpers so the three modes behave the same everywhere.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def plain() -> bool:
    """True in CI, when stdout is not a terminal, or when NO_COLOR is set."""
    return bool(os.environ.get("CI")) or bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()


@cache
def console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def echo(message: str = "", *, err: bool = False) -> None:
    """One line of human output (rich markup is stripped in plain mode)."""
    stream = sys.stderr if err else sys.stdout
    if plain() or err:
        if "[" in message:
            from rich.text import Text

            message = Text.from_markup(message).plain
        print(message, file=stream, flush=True)
    else:
        console().print(message)


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """A table: rich on a terminal, tab-separated lines otherwise."""
    rows = [[("" if v is None else str(v)) for v in row] for row in rows]
    if plain():
        if title:
            print(title)
        print("\t".join(columns))
        for row in rows:
            print("\t".join(row))
        return
    from rich.table import Table

    out = Table(*columns, title=title)
    for row in rows:
        out.add_row(*row)
    console().print(out)


def show_rows(rows: Sequence[T], json_out: bool, columns: Sequence[str], cells: Callable[[T], Sequence[Any]],
              *, empty: str) -> None:
    """A list command's output: the rows as JSON with ``--json``, else ``empty`` (what to do to get
    some) when there are none, else a table of ``cells(row)`` under ``columns``."""
    if json_out:
        print_json(list(rows))
    elif not rows:
        echo(empty)
    else:
        table(columns, [cells(row) for row in rows])


def progress(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Yield ``items`` while showing progress: a rich bar on a terminal, a few plain lines in CI."""
    if plain():
        step = max(1, (total or 0) // 10)
        for done, item in enumerate(items, start=1):
            yield item
            if total and (done % step == 0 or done == total):
                print(f"{description}: {done}/{total}", file=sys.stderr, flush=True)
        return
    from rich.progress import Progress

    with Progress(console=console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
