"""``privbench tune``: a multi-objective Optuna study of an encoder's privacy weight α."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.cli.console import console, interruptible, run_progress
from privbench.cli.options import (
    AddressOption,
    CpusPerCellOption,
    DataOption,
    DeviceOption,
    GpusPerCellOption,
    RunStoreOption,
    WorkersOption,
    parse_settings,
)


def tune_command(
    encoder: Annotated[
        str,
        typer.Option(
            "--encoder", help="A learnable encoder, e.g. canopic-conv1-mp-q or zernike-lens."
        ),
    ],
    task: Annotated[
        str, typer.Option("--task", help="Utility task (objective 1).")
    ] = "face-vs-noface",
    attack: Annotated[
        str, typer.Option("--attack", help="Privacy attack (objective 2).")
    ] = "face-id",
    trials: Annotated[
        int,
        typer.Option(
            "--trials",
            help="Finished trials the study should have (a resumed study runs the rest).",
        ),
    ] = 20,
    storage: Annotated[
        str, typer.Option("--storage", help="Optuna storage URL (SQLAlchemy).")
    ] = "sqlite:///study.db",
    study: Annotated[
        str | None,
        typer.Option("--study", help="Study name (default: ENCODER-DESIGNER-TASK-ATTACK)."),
    ] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="nsga2 (default) or tpe.")] = "nsga2",
    designer: Annotated[
        str, typer.Option("--designer", help="adversarial (CAnOPIC) or end-to-end (2PSC).")
    ] = "adversarial",
    designer_settings: Annotated[
        list[str] | None,
        typer.Option(
            "--designer-set", help="Designer config KEY=VALUE (repeatable), e.g. cycles=3."
        ),
    ] = None,
    benchmark: Annotated[
        str,
        typer.Option(
            "--benchmark", "-b", help="Benchmark whose data and evaluation settings are used."
        ),
    ] = "synthfaces",
    preset: Annotated[
        str | None,
        typer.Option("--preset", "-p", help="Preset of that benchmark (default: its default)."),
    ] = None,
    alpha_min: Annotated[
        float, typer.Option("--alpha-min", help="Lower end of the log-uniform α range.")
    ] = 0.1,
    alpha_max: Annotated[
        float, typer.Option("--alpha-max", help="Upper end of the log-uniform α range.")
    ] = 1000.0,
    prune_below: Annotated[
        float,
        typer.Option(
            "--prune-below",
            help="Prune a trial whose utility validation accuracy is below this after "
            "--prune-after designer cycles (negative: never).",
        ),
    ] = 0.6,
    prune_after: Annotated[
        int, typer.Option("--prune-after", help="Designer cycles before the pruning rule applies.")
    ] = 2,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output folder (results store, leaderboard, fronts.png)."),
    ] = Path("privbench-out"),
    store: RunStoreOption = None,
    data: DataOption = None,
    device: DeviceOption = "cpu",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampler and of training.")] = 0,
    workers: WorkersOption = None,
    address: AddressOption = None,
    cpus_per_cell: CpusPerCellOption = None,
    gpus_per_cell: GpusPerCellOption = None,
):
    """Tune the privacy weight α (and declared knobs) with a multi-objective Optuna study.

    Each trial fits the encoder with the designer, runs the task and the attack, and stores its
    rows (tagged with study and trial) in the same results store as `privbench run`.
    With --workers N, N trials run at once (one Ray task each; --workers 1: in this process);
    each trial's α is sampled when a worker frees, from the trials finished so far.
    """
    from privbench.data.paths import parse_data_option
    from privbench.engine import ExecutionConfig
    from privbench.report.leaderboard import render_outputs
    from privbench.report.pareto import hypervolume, plot_fronts
    from privbench.runs.scores import leaderboard_table
    from privbench.runs.store import ResultStore, default_store_url
    from privbench.runs.tuning import TuneSettings, trials_frame, tune

    settings = TuneSettings(
        encoder=encoder,
        task=task,
        attack=attack,
        trials=trials,
        storage=storage,
        study_name=study,
        sampler=sampler,
        designer=designer,
        designer_config=parse_settings(
            designer_settings, option="--designer-set", example="cycles=3"
        ),
        benchmark=benchmark,
        preset=preset,
        data_paths=parse_data_option(data or []),
        alpha_min=alpha_min,
        alpha_max=alpha_max,
        prune_below=None if prune_below < 0 else prune_below,
        prune_after=prune_after,
        seed=seed,
    )
    execution = ExecutionConfig.of(
        None,
        workers=workers,
        address=address,
        cpus_per_cell=cpus_per_cell,
        gpus_per_cell=gpus_per_cell,
    )
    progress, log = run_progress()
    with progress, interruptible():
        result = tune(
            settings,
            out_dir=out,
            store=store,
            device=device,
            progress=progress,
            log=log,
            execution=execution,
        )
    console.print(trials_frame(result).to_string(index=False))
    rows = ResultStore(store or default_store_url(out)).dataframe()
    table = leaderboard_table(
        rows[(rows["study"] == settings.name) | (rows["encoder"] == "identity")]
    )
    trials_table = table[table["study"] == settings.name]
    if not trials_table.empty:
        plot_fronts({encoder: trials_table}, out / "fronts.png", title=f"study {settings.name}")
        volume = hypervolume(trials_table["utility"], trials_table["privacy"])
        console.print(f"hypervolume (reference point utility=0, privacy=0): {volume:.4f}")
    render_outputs(rows, out)
    console.print(f"fronts plot: {out / 'fronts.png'}; leaderboard: {out / 'leaderboard.md'}")
