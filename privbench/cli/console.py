"""Where the commands print: one console for results, one for errors, and the Ctrl-C handler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=False)
error_console = Console(stderr=True, soft_wrap=True)


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C: say that finished cells are safe and how to resume, exit 130 (no traceback)."""
    try:
        yield
    except KeyboardInterrupt:
        error_console.print(
            "[yellow]interrupted:[/yellow] every finished cell is in the store; run the same "
            "command again to resume."
        )
        raise typer.Exit(code=130) from None


def print_outputs(outputs: dict[str, Path]) -> None:
    """One line per written file: ``  markdown  out/leaderboard.md``."""
    for name, path in outputs.items():
        console.print(f"  {name:9s} {path}")


def plain_log(target: Console):
    """A log function printing text as is on ``target`` (no rich markup: log lines carry
    bracketed prefixes such as ``[identity × face-id (seed 0)]`` and names like
    ``face-id[retrained]``, which rich would read as markup tags and swallow)."""
    return lambda message: target.print(message, markup=False, highlight=False)
