"""The ``privbench`` command line (typer)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from privbench.api.errors import PrivbenchError

app = typer.Typer(
    help=(
        "privbench: benchmark privacy encoders (cameras that destroy private information before "
        "digitization) against utility tasks and privacy attacks, and publish a leaderboard.\n\n"
        "Start with `privbench run` (the embedded synthfaces benchmark, quick preset)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
error_console = Console(stderr=True, soft_wrap=True)

# Options that several commands share, defined once.
BenchmarkOption = Annotated[
    Optional[str], typer.Option("--benchmark", "-b", help="Built-in benchmark name (see `privbench list benchmarks`). Default: synthfaces.")
]
SpecOption = Annotated[Optional[Path], typer.Option("--spec", help="A benchmark spec YAML file (instead of --benchmark).")]
EncodersOption = Annotated[
    Optional[str], typer.Option("--encoders", "-e", help="Comma-separated encoder names or labels (default: all in the spec).")
]
PresetOption = Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset of the benchmark: quick (default) or standard.")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
CacheDirOption = Annotated[
    Optional[Path], typer.Option("--cache-dir", help="Artifact cache (default: $PRIVBENCH_CACHE or ~/.cache/privbench).")
]


def _benchmark_source(benchmark: Optional[str], spec: Optional[Path]) -> Optional[str]:
    """What ``--benchmark`` / ``--spec`` name (at most one of them)."""
    if spec is not None and benchmark is not None:
        raise PrivbenchError("Give either --benchmark or --spec, not both.")
    return str(spec) if spec is not None else benchmark


class Kind(str, Enum):
    encoders = "encoders"
    tasks = "tasks"
    attacks = "attacks"
    benchmarks = "benchmarks"
    datasets = "datasets"


@app.command("list")
def list_command(kind: Kind = typer.Argument(..., help="What to list: encoders, tasks, attacks, benchmarks or datasets.")):
    """List the registered components of one kind, with a one-line description each."""
    from rich.table import Table

    from privbench.api.registry import ATTACKS, BENCHMARKS, DATASETS, ENCODERS, TASKS

    registry = {"encoders": ENCODERS, "tasks": TASKS, "attacks": ATTACKS, "benchmarks": BENCHMARKS, "datasets": DATASETS}[kind.value]
    table = Table(title=f"privbench {kind.value}")
    table.add_column("name")
    table.add_column("description")
    for name in registry.names():
        obj = registry.get(name)
        doc = (obj.__doc__ or "").strip().splitlines()
        table.add_row(name, doc[0] if doc else "")
    console.print(table)


def _split_names(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names or None


@app.command("run")
def run_command(
    benchmark: BenchmarkOption = None,
    spec: SpecOption = None,
    encoders: EncodersOption = None,
    preset: PresetOption = None,
    out: Path = typer.Option(Path("privbench-out"), "--out", "-o", help="Output folder for leaderboard.md/.csv, index.html, pareto.png and the SQLite store."),
    store: Optional[str] = typer.Option(None, "--store", help="SQLAlchemy URL of the results store (default: sqlite:///OUT/results.db)."),
    device: DeviceOption = "cpu",
    seed: Optional[int] = typer.Option(None, "--seed", help="Run only this training seed (default: the spec's seeds)."),
    cache_dir: CacheDirOption = None,
    data: list[str] = typer.Option(
        [], "--data", "-d",
        help="Where the datasets the benchmark reads live: NAME=PATH pairs, comma-separated or repeated, e.g. "
        "--data vggface2=/data/vggface2,imagenet=/data/ilsvrc2012 (the paper benchmarks; run without it to see what is needed).",
    ),
):
    """Run a benchmark end to end: data, encoders, tasks and attacks, store, leaderboard, Pareto plot.

    Cells already in the store are skipped, so rerunning after an interruption resumes.
    """
    from privbench.data.paths import parse_data_option
    from privbench.report.leaderboard import print_reported_table, print_table
    from privbench.pipeline import run
    from privbench.runs.progress import RichProgressFactory
    from privbench.runs.scores import leaderboard_table, split_groups

    source = _benchmark_source(benchmark, spec)
    data_paths = parse_data_option(data)
    progress = RichProgressFactory(console=console)
    with progress, _interruptible():
        report = run(
            source,
            preset=preset,
            encoders=_split_names(encoders),
            out_dir=out,
            store=store,
            device=device,
            seed=seed,
            cache_dir=cache_dir,
            progress=progress,
            log=lambda message: progress.console.print(message),
            report=True,
            data_paths=data_paths,
        )
    for key, rows in split_groups(report.results):
        table = leaderboard_table(rows)
        print_table(table, f"{key[0]} v{key[1]}", console)
        print_reported_table(key[0], table, console)
    console.print(
        f"\n{report.ran} cells run, {report.skipped} reused from the store, {len(report.failures)} failed "
        f"({report.wall_time_s:.0f} s)."
    )
    for name, path in report.outputs.items():
        console.print(f"  {name:9s} {path}")
    if report.failures:
        for name, message in report.failures:
            error_console.print(f"[red]failed:[/red] {name}: {message}")
        raise typer.Exit(code=1)


@contextmanager
def _interruptible():
    """Ctrl-C: say that finished cells are safe and how to resume, exit 130 (no traceback)."""
    try:
        yield
    except KeyboardInterrupt:
        error_console.print(
            "[yellow]interrupted:[/yellow] every finished cell is in the store; run the same command again to resume."
        )
        raise typer.Exit(code=130) from None


@app.command("leaderboard")
def leaderboard_command(
    store: str = typer.Option(..., "--store", help="SQLAlchemy URL of a results store, e.g. sqlite:///privbench-out/results.db."),
    out: Path = typer.Option(Path("privbench-out"), "--out", "-o", help="Folder for leaderboard.md/.csv, index.html and pareto.png."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="Only rows of this benchmark."),
):
    """Render the leaderboard (terminal, Markdown, CSV, HTML, Pareto plot) from a results store."""
    from privbench.report.leaderboard import render_outputs
    from privbench.runs.store import ResultStore

    result_store = ResultStore(store)
    rows = result_store.dataframe(benchmark=benchmark)
    if rows.empty:
        raise PrivbenchError(f"The store {store!r} holds no results{' for ' + benchmark if benchmark else ''}; run `privbench run` first.")
    outputs = render_outputs(rows, out, console=console, print_terminal=True)
    for name, path in outputs.items():
        console.print(f"  {name:9s} {path}")


@app.command("figure")
def figure_command(
    benchmark: BenchmarkOption = None,
    spec: SpecOption = None,
    encoders: EncodersOption = None,
    preset: PresetOption = None,
    out: Path = typer.Option(Path("privbench-out"), "--out", "-o", help="Folder for fig3.png; if it holds a run's results.db, its index.html is rendered again with the figure."),
    device: DeviceOption = "cpu",
    cache_dir: CacheDirOption = None,
    test_crops: int = typer.Option(2, "--test-crops", min=0, help="Rows of benchmark identity test crops."),
    lfw_faces: int = typer.Option(2, "--lfw-faces", min=0, max=100, help="Rows of real LFW faces (scikit-image's lfw_subset)."),
    astronaut_px: int = typer.Option(128, "--astronaut-px", min=0, help="Side of the real astronaut row in px (0: no astronaut row)."),
    reconstruction: bool = typer.Option(True, "--reconstruction/--no-reconstruction", help="Add the reconstruction attack's output beside each measurement."),
    detectors: bool = typer.Option(True, "--detectors/--no-detectors", help="Draw the boxes of the real packaged face detectors (needs privbench[faces])."),
):
    """Draw a figure like 2PSC Fig. 3: clean images, each encoder's measurement, its reconstruction
    and the real face detectors' boxes.

    Uses the run's fitted encoders and reconstruction decoders from the artifact cache, so after
    `privbench run` it trains nothing.
    """
    from privbench.nn.face_models import DETECTORS
    from privbench.report.figures import benchmark_figure
    from privbench.report.leaderboard import render_outputs
    from privbench.runs.progress import RichProgressFactory
    from privbench.runs.store import ResultStore, default_store_url

    source = _benchmark_source(benchmark, spec)
    progress = RichProgressFactory(console=console)
    with progress, _interruptible():
        path = benchmark_figure(
            source, out_dir=out, preset=preset, encoders=_split_names(encoders),
            cache_dir=cache_dir, device=device, test_crops=test_crops, lfw_faces=lfw_faces,
            astronaut_px=astronaut_px or None, reconstruction=reconstruction,
            detectors=DETECTORS if detectors else None, progress=progress,
            log=lambda message: progress.console.print(message),
        )
    console.print(f"  figure    {path}")
    if (out / "results.db").is_file():
        rows = ResultStore(default_store_url(out)).dataframe()
        if not rows.empty:
            console.print(f"  html      {render_outputs(rows, out)['html']}")


@app.command("tune")
def tune_command(
    encoder: str = typer.Option(..., "--encoder", help="A learnable encoder, e.g. canopic-conv1-mp-q or zernike-lens."),
    task: str = typer.Option("face-vs-noface", "--task", help="Utility task (objective 1)."),
    attack: str = typer.Option("face-id", "--attack", help="Privacy attack (objective 2)."),
    trials: int = typer.Option(20, "--trials", help="Finished trials the study should have (a resumed study runs the rest)."),
    storage: str = typer.Option("sqlite:///study.db", "--storage", help="Optuna storage URL (SQLAlchemy)."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: ENCODER-DESIGNER-TASK-ATTACK)."),
    sampler: str = typer.Option("nsga2", "--sampler", help="nsga2 (default) or tpe."),
    designer: str = typer.Option("adversarial", "--designer", help="adversarial (CAnOPIC) or end-to-end (2PSC)."),
    designer_settings: list[str] = typer.Option([], "--designer-set", help="Designer config KEY=VALUE (repeatable), e.g. cycles=3."),
    benchmark: str = typer.Option("synthfaces", "--benchmark", "-b", help="Benchmark whose data and evaluation settings are used."),
    preset: str = typer.Option("quick", "--preset", "-p", help="Preset of that benchmark."),
    alpha_min: float = typer.Option(0.1, "--alpha-min", help="Lower end of the log-uniform α range."),
    alpha_max: float = typer.Option(1000.0, "--alpha-max", help="Upper end of the log-uniform α range."),
    prune_below: float = typer.Option(0.6, "--prune-below", help="Prune a trial whose utility validation accuracy is below this after --prune-after designer cycles (negative: never)."),
    prune_after: int = typer.Option(2, "--prune-after", help="Designer cycles before the pruning rule applies."),
    out: Path = typer.Option(Path("privbench-out"), "--out", "-o", help="Output folder (results store, leaderboard, fronts.png)."),
    store: Optional[str] = typer.Option(None, "--store", help="Results store URL (default: sqlite:///OUT/results.db)."),
    device: DeviceOption = "cpu",
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler and of training."),
):
    """Tune the privacy weight α (and declared knobs) with a multi-objective Optuna study.

    Each trial fits the encoder with the designer, runs the task and the attack, and stores its
    rows (tagged with study and trial) in the same results store as `privbench run`.
    """
    from privbench.report.leaderboard import render_outputs
    from privbench.report.pareto import hypervolume, plot_fronts
    from privbench.runs.progress import RichProgressFactory
    from privbench.runs.scores import leaderboard_table
    from privbench.runs.store import ResultStore, default_store_url
    from privbench.runs.tuning import TuneSettings, trials_frame, tune

    settings = TuneSettings(
        encoder=encoder, task=task, attack=attack, trials=trials, storage=storage, study_name=study, sampler=sampler,
        designer=designer, designer_config=_parse_settings(designer_settings), benchmark=benchmark, preset=preset,
        alpha_min=alpha_min, alpha_max=alpha_max, prune_below=None if prune_below < 0 else prune_below,
        prune_after=prune_after, seed=seed,
    )
    progress = RichProgressFactory(console=console)
    with progress, _interruptible():
        result = tune(settings, out_dir=out, store=store, device=device, progress=progress,
                      log=lambda message: progress.console.print(message))
    frame = trials_frame(result)
    console.print(frame.to_string(index=False))
    store_url = store or default_store_url(out)
    rows = ResultStore(store_url).dataframe()
    table = leaderboard_table(rows[(rows["study"] == settings.name) | (rows["encoder"] == "identity")])
    trials_table = table[table["study"] == settings.name]
    if not trials_table.empty:
        plot_fronts({encoder: trials_table}, out / "fronts.png", title=f"study {settings.name}")
        console.print(f"hypervolume (reference point utility=0, privacy=0): "
                      f"{hypervolume(trials_table['utility'], trials_table['privacy']):.4f}")
    render_outputs(rows, out)
    console.print(f"fronts plot: {out / 'fronts.png'}; leaderboard: {out / 'leaderboard.md'}")


@app.command("pareto")
def pareto_command(
    store: str = typer.Option(..., "--store", help="SQLAlchemy URL of a results store."),
    encoders: str = typer.Option(..., "--encoders", "-e", help="Comma-separated encoder names; each becomes one front."),
    out: Path = typer.Option(Path("fronts.png"), "--out", "-o", help="Output PNG."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="Only rows of this benchmark."),
):
    """Overlay several encoders' privacy-utility fronts (all their α values and trials) on one plot.

    Prints each front's hypervolume against the reference point (utility 0, privacy 0).
    """
    from privbench.report.pareto import hypervolume, plot_fronts
    from privbench.runs.scores import leaderboard_table, split_groups
    from privbench.runs.store import ResultStore

    rows = ResultStore(store).dataframe(benchmark=benchmark)
    if rows.empty:
        raise PrivbenchError(f"The store {store!r} holds no results; run `privbench run` or `privbench tune` first.")
    names = _split_names(encoders) or []
    groups = split_groups(rows)
    key, group = groups[-1]
    if len(groups) > 1:
        console.print(f"(the store holds {len(groups)} benchmark/dataset groups; plotting {key[0]} v{key[1]}; use --benchmark to choose)")
    table = leaderboard_table(group)
    fronts = {}
    for name in names:
        family = table[(table["encoder_name"] == name) | (table["encoder"] == name)]
        if family.empty:
            known = ", ".join(sorted(set(table["encoder_name"].dropna())))
            raise PrivbenchError(f"No results for encoder {name!r} in {store!r}; encoders with results: {known}.")
        fronts[name] = family
        console.print(f"{name}: {len(family)} points, hypervolume {hypervolume(family['utility'], family['privacy']):.4f}")
    path = plot_fronts(fronts, out, title=f"{key[0]} v{key[1]}: privacy-utility fronts")
    console.print(f"wrote {path}")


def _parse_settings(settings: list[str]) -> dict:
    import yaml

    config = {}
    for item in settings:
        if "=" not in item:
            raise PrivbenchError(f"--set expects KEY=VALUE (e.g. --set sigma_px=4); got {item!r}.")
        key, value = item.split("=", 1)
        config[key.strip()] = yaml.safe_load(value)
    return config


@app.command("show")
def show_command(
    encoder: str = typer.Argument(..., help="Encoder name (see `privbench list encoders`)."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Input image (PNG/JPEG). Default: a synthfaces sample face."),
    out: Path = typer.Option(Path("show.png"), "--out", "-o", help="Output PNG."),
    settings: list[str] = typer.Option([], "--set", help="Encoder config override KEY=VALUE (repeatable)."),
    size: int = typer.Option(0, "--size", help="Resize the input to SIZE×SIZE first (0: keep; at least 64)."),
):
    """Draw a clean image beside its measurement (and the encoder's PSF, kernels, height map...)."""
    from privbench.report.show import show

    path = show(encoder, image=image, out=out, config=_parse_settings(settings), size=size or None)
    console.print(f"wrote {path}")


def _mount_optional_apps() -> None:
    try:
        from privbench.cli.data import data_app
    except ImportError:
        return
    app.add_typer(data_app, name="data", help="Check real dataset folders (COCO, VGGFace2, WIDER FACE, FDDB, ImageNet, LFW).")


_mount_optional_apps()


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: user errors become one readable paragraph and a non-zero exit code."""
    try:
        app(args=argv, prog_name="privbench")
    except PrivbenchError as error:
        from rich.markup import escape

        # escape: messages name things like face-id[retrained] that rich would read as markup
        error_console.print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
