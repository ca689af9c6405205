"""``privbench export`` and ``privbench validate``: leaderboard entries as files
(:mod:`privbench.runs.entries`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.api.errors import ConfigError, PrivbenchError
from privbench.cli.console import console
from privbench.cli.options import CacheDirOption, ReadStoreOption, RowsOfBenchmarkOption


def export_command(
    store: ReadStoreOption,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder the entry files are written under.")
    ] = Path("entries"),
    cache_dir: CacheDirOption = None,
    benchmark: RowsOfBenchmarkOption = None,
):
    """Write one JSON entry per encoder configuration and benchmark of a store (with the fitted
    weights as safetensors beside it, found in the run's --cache-dir), to publish or to rank with
    `privbench leaderboard --entries`."""
    from privbench.api.cache import default_cache_root
    from privbench.runs.entries import export_entries
    from privbench.runs.store import ResultStore, require_existing_store

    require_existing_store(store)
    rows = ResultStore(store).dataframe(benchmark=benchmark)
    if rows.empty:
        raise PrivbenchError(f"The store {store!r} holds no results to export.")
    written = export_entries(rows, out, cache_root=cache_dir or default_cache_root())
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    console.print(f"{len(written)} entries under {out}", highlight=False, soft_wrap=True)


def validate_command(
    files: Annotated[list[Path], typer.Argument(help="Entry files (*.json) to check.")],
):
    """Check leaderboard entries: the schema, that every cell belongs to the entry's benchmark
    and encoder, the weights file's hash, and the benchmark version against this privbench."""
    from privbench.runs.entries import validate_entry

    invalid = 0
    for path in files:
        problems = validate_entry(path)
        if problems:
            invalid += 1
            console.print(f"invalid: {path}", highlight=False, soft_wrap=True)
            for problem in problems:
                console.print(f"  - {problem}", highlight=False, soft_wrap=True)
        else:
            console.print(f"valid: {path}", highlight=False, soft_wrap=True)
    if invalid:
        raise ConfigError(f"{invalid} of {len(files)} entries are not valid (listed above).")
