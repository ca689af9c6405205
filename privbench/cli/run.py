"""``privbench run``: a benchmark end to end, then its leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.cli.console import console, error_console, interruptible, plain_log, print_outputs
from privbench.cli.options import (
    AddressOption,
    BenchmarkOption,
    CacheDirOption,
    CpusPerCellOption,
    DataOption,
    DeviceOption,
    EncodersOption,
    GpusPerCellOption,
    MaxRetriesOption,
    PresetOption,
    RunStoreOption,
    SpecOption,
    WorkersOption,
    benchmark_source,
    split_names,
)


def run_command(
    benchmark: BenchmarkOption = None,
    spec: SpecOption = None,
    encoders: EncodersOption = None,
    preset: PresetOption = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output folder for leaderboard.md/.csv, index.html, pareto.png and the SQLite "
            "store.",
        ),
    ] = Path("privbench-out"),
    store: RunStoreOption = None,
    device: DeviceOption = "cpu",
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Run only this training seed (default: the spec's seeds)."),
    ] = None,
    cache_dir: CacheDirOption = None,
    data: DataOption = None,
    workers: WorkersOption = None,
    address: AddressOption = None,
    cpus_per_cell: CpusPerCellOption = None,
    gpus_per_cell: GpusPerCellOption = None,
    max_retries: MaxRetriesOption = None,
):
    """Run a benchmark end to end: data, encoders, tasks, attacks, store, leaderboard, Pareto plot.

    Cells already in the store are skipped, so rerunning after an interruption resumes.

    Cost: the default benchmark (synthfaces, quick preset, 10 encoder configurations × 10
    cells) took 49 minutes on 2 CPU cores from an empty cache (measured 2026-12-02, README
    "Where the default run's time goes"); with everything cached, a rerun only reads the store
    and renders the leaderboard.
    """
    from rich.markup import escape

    from privbench.data.paths import parse_data_option
    from privbench.pipeline import run
    from privbench.report.leaderboard import print_reported_table, print_table
    from privbench.runs.progress import RichProgressFactory
    from privbench.runs.scores import leaderboard_table, split_groups

    source = benchmark_source(benchmark, spec)
    data_paths = parse_data_option(data or [])
    progress = RichProgressFactory(console=console)
    with progress, interruptible():
        report = run(
            source,
            preset=preset,
            encoders=split_names(encoders),
            out_dir=out,
            store=store,
            device=device,
            seed=seed,
            cache_dir=cache_dir,
            progress=progress,
            log=plain_log(progress.console),
            report=True,
            data_paths=data_paths,
            workers=workers,
            address=address,
            cpus_per_cell=cpus_per_cell,
            gpus_per_cell=gpus_per_cell,
            execution=None if max_retries is None else {"max_retries": max_retries},
        )
    for key, rows in split_groups(report.results):
        table = leaderboard_table(rows)
        print_table(table, f"{key[0]} v{key[1]}", console)
        print_reported_table(key[0], table, console)
    duplicates = (
        f", {report.duplicates} stored first by another driver" if report.duplicates else ""
    )
    console.print(
        f"\n{report.ran} cells run, {report.skipped} reused from the store{duplicates}, "
        f"{len(report.failures)} failed ({report.wall_time_s:.0f} s on {report.engine})."
    )
    print_outputs(report.outputs)
    if report.failures:
        for name, message in report.failures:
            error_console.print(f"[red]failed:[/red] {escape(name)}: {escape(message)}")
        raise typer.Exit(code=1)
