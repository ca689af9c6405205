"""``privbench leaderboard``: render the leaderboard of a results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.api.errors import PrivbenchError
from privbench.cli.console import console, print_outputs
from privbench.cli.options import RowsOfBenchmarkOption


def leaderboard_command(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="SQLAlchemy URL of a results store, e.g. sqlite:///privbench-out/results.db.",
        ),
    ] = None,
    entries: Annotated[
        Path | None,
        typer.Option(
            "--entries",
            help="A folder of entry files (privbench export), from one person or many, ranked "
            "like a store (instead of --store).",
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for leaderboard.md/.csv, index.html and pareto.png."
        ),
    ] = Path("privbench-out"),
    benchmark: RowsOfBenchmarkOption = None,
):
    """Render the leaderboard (terminal, Markdown, CSV, HTML, Pareto plot) from a results store
    or a folder of entries."""
    from privbench.report.leaderboard import render_outputs

    if (store is None) == (entries is None):
        raise PrivbenchError("Give either --store URL or --entries FOLDER (one of them).")
    if entries is not None:
        from privbench.runs.entries import entries_dataframe

        rows = entries_dataframe(entries)
        if benchmark is not None:
            rows = rows[rows["benchmark"] == benchmark]
        where = f"The entries under {str(entries)!r} hold"
    else:
        from privbench.runs.store import ResultStore, require_existing_store

        require_existing_store(store)
        rows = ResultStore(store).dataframe(benchmark=benchmark)
        where = f"The store {store!r} holds"
    if rows.empty:
        which = f" for {benchmark}" if benchmark else ""
        raise PrivbenchError(f"{where} no results{which}; run `privbench run` first.")
    print_outputs(render_outputs(rows, out, console=console, print_terminal=True))
