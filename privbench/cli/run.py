"""``privbench run``: a benchmark end to end, then its leaderboard."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from privbench.cli.console import (
    console,
    error_console,
    interruptible,
    print_outputs,
    run_progress,
)
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
    parse_settings,
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
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a spec field (repeatable; VALUE is YAML): "
            "evaluations.NAME.FIELD (a task's or attack's config, e.g. "
            "evaluations.face-id.training.epochs=3), designers.NAME.FIELD, or any spec path "
            "(seeds=[0,1], dataset.config.preset=tiny).",
        ),
    ] = None,
    encoder_file: Annotated[
        str | None,
        typer.Option(
            "--encoder-file",
            metavar="FILE.py:NAME",
            help="Run your own camera instead of the benchmark's encoders: NAME in FILE.py is an "
            "Encoder or nn.Module class (built without arguments), a function returning one, or "
            "an instance. It runs beside identity (the clean reference) and the --encoders "
            "given.",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="With --encoder-file: the camera's leaderboard name."),
    ] = None,
):
    """Run a benchmark end to end: data, encoders, tasks, attacks, store, leaderboard, Pareto plot.

    Cells already in the store are skipped, so rerunning after an interruption resumes.

    Cost: the default benchmark (synthfaces, quick preset, 10 encoder configurations × 10
    cells) took 49 minutes on 2 CPU cores from an empty cache (measured 2026-12-02, README
    "Where the default run's time goes"); with everything cached, a rerun only reads the store
    and renders the leaderboard.
    """
    from rich.markup import escape

    from privbench.api.camera import load_encoder_file
    from privbench.api.errors import ConfigError
    from privbench.data.paths import parse_data_option
    from privbench.pipeline import evaluate, render_report, run

    source = benchmark_source(benchmark, spec)
    data_paths = parse_data_option(data or [])
    progress, log = run_progress()
    if encoder_file is None:
        if label is not None:
            raise ConfigError("--label names the camera of --encoder-file; give both.")
        execute = functools.partial(run, source, encoders=split_names(encoders))
    else:
        execute = functools.partial(
            evaluate,
            load_encoder_file(encoder_file),
            source,
            label=label,
            compare=split_names(encoders),
        )
    with progress, interruptible():
        report = execute(
            preset=preset,
            overrides=parse_settings(settings, example="evaluations.face-id.training.epochs=3"),
            out_dir=out,
            store=store,
            device=device,
            seed=seed,
            cache_dir=cache_dir,
            progress=progress,
            log=log,
            report=True,
            data_paths=data_paths,
            workers=workers,
            address=address,
            cpus_per_cell=cpus_per_cell,
            gpus_per_cell=gpus_per_cell,
            execution=None if max_retries is None else {"max_retries": max_retries},
            render=False,
        )
    # rendered here, once, with the terminal's tables (each table's bootstrap computed once)
    report.outputs = render_report(report, out, console=console, print_terminal=True)
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
