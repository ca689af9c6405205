"""Where the commands print: one console for results, one for errors, and the Ctrl-C handler."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

#: Width of the console when stdout is a file or a pipe (a log, a batch job): wide enough that
#: no table is cut (rich would otherwise assume 80 columns).
UNBOUNDED_WIDTH = 4000


def _width() -> int | None:
    return None if sys.stdout.isatty() else UNBOUNDED_WIDTH


console = Console(stderr=False, width=_width())
error_console = Console(stderr=True, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, ``kill``): stop like Ctrl-C does."""


def _terminate(signum, frame) -> None:
    raise Terminated()


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C or SIGTERM: say that finished cells are safe and how to resume, then exit 130
    (Ctrl-C) or 143 (SIGTERM), with no traceback."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    except KeyboardInterrupt as stop:
        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        error_console.print(
            f"[yellow]{how}:[/yellow] every finished cell is in the store; run the same "
            "command again to resume."
        )
        raise typer.Exit(code=143 if isinstance(stop, Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_progress():
    """``(progress, log)`` of a command that runs cells: bars on a terminal (log lines printed
    through the bars' console, which keeps them intact); on a file or a pipe, progress lines
    as the run goes and log lines as they come."""
    from privbench.runs.progress import LineProgressFactory, RichProgressFactory

    if console.is_terminal:
        progress = RichProgressFactory(console=console)
        return progress, plain_log(progress.console)
    log = plain_log(console)
    return LineProgressFactory(log), log


def print_outputs(outputs: dict[str, Path]) -> None:
    """One line per written file: ``  markdown  out/leaderboard.md``."""
    for name, path in outputs.items():
        console.print(f"  {name:9s} {path}")


def plain_log(target: Console):
    """A log function printing text as is on ``target`` (no rich markup: log lines carry
    bracketed prefixes such as ``[identity × face-id (seed 0)]`` and names like
    ``face-id[retrained]``, which rich would read as markup tags and swallow)."""
    return lambda message: target.print(message, markup=False, highlight=False)
