"""``privbench leaderboard``: render the leaderboard of a results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.api.errors import PrivbenchError
from privbench.cli.console import console, print_outputs
from privbench.cli.options import ReadStoreOption, RowsOfBenchmarkOption


def leaderboard_command(
    store: ReadStoreOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for leaderboard.md/.csv, index.html and pareto.png."
        ),
    ] = Path("privbench-out"),
    benchmark: RowsOfBenchmarkOption = None,
):
    """Render the leaderboard (terminal, Markdown, CSV, HTML, Pareto plot) from a results store."""
    from privbench.report.leaderboard import render_outputs
    from privbench.runs.store import ResultStore, require_existing_store

    require_existing_store(store)
    rows = ResultStore(store).dataframe(benchmark=benchmark)
    if rows.empty:
        which = f" for {benchmark}" if benchmark else ""
        raise PrivbenchError(
            f"The store {store!r} holds no results{which}; run `privbench run` first."
        )
    print_outputs(render_outputs(rows, out, console=console, print_terminal=True))
