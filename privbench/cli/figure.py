"""``privbench figure``: the Fig. 3-like figure from a run's fitted encoders and decoders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.cli.console import console, interruptible, run_progress
from privbench.cli.options import (
    BenchmarkOption,
    CacheDirOption,
    DeviceOption,
    EncodersOption,
    PresetOption,
    SpecOption,
    benchmark_source,
    split_names,
)


def figure_command(
    benchmark: BenchmarkOption = None,
    spec: SpecOption = None,
    encoders: EncodersOption = None,
    preset: PresetOption = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for fig3.png; if it holds a run's results.db, its index.html is rendered "
            "again with the figure.",
        ),
    ] = Path("privbench-out"),
    device: DeviceOption = "cpu",
    cache_dir: CacheDirOption = None,
    test_crops: Annotated[
        int, typer.Option("--test-crops", min=0, help="Rows of benchmark identity test crops.")
    ] = 2,
    lfw_faces: Annotated[
        int,
        typer.Option(
            "--lfw-faces",
            min=0,
            max=100,
            help="Rows of real LFW faces (scikit-image's lfw_subset).",
        ),
    ] = 2,
    astronaut_px: Annotated[
        int,
        typer.Option(
            "--astronaut-px",
            min=0,
            help="Side of the real astronaut row in px (0: no astronaut row).",
        ),
    ] = 128,
    reconstruction: Annotated[
        bool,
        typer.Option(
            "--reconstruction/--no-reconstruction",
            help="Add the reconstruction attack's output beside each measurement.",
        ),
    ] = True,
    detectors: Annotated[
        bool,
        typer.Option(
            "--detectors/--no-detectors",
            help="Draw the boxes of the real packaged face detectors (needs the faces extra: "
            "pip install 'privbench\\[faces]').",
        ),
    ] = True,
):
    """Draw a figure like 2PSC Fig. 3: clean images, each encoder's measurement, its reconstruction
    and the real face detectors' boxes.

    Uses the run's fitted encoders and reconstruction decoders from the artifact cache, so after
    `privbench run` it trains nothing.
    """
    from privbench.nn.face_models import DETECTORS
    from privbench.report.figures import benchmark_figure
    from privbench.report.leaderboard import render_outputs
    from privbench.runs.store import ResultStore, default_store_url

    source = benchmark_source(benchmark, spec)
    progress, log = run_progress()
    with progress, interruptible():
        path = benchmark_figure(
            source,
            out_dir=out,
            preset=preset,
            encoders=split_names(encoders),
            cache_dir=cache_dir,
            device=device,
            test_crops=test_crops,
            lfw_faces=lfw_faces,
            astronaut_px=astronaut_px or None,
            reconstruction=reconstruction,
            detectors=DETECTORS if detectors else None,
            progress=progress,
            log=log,
        )
    console.print(f"  figure    {path}")
    if (out / "results.db").is_file():
        rows = ResultStore(default_store_url(out)).dataframe()
        if not rows.empty:
            console.print(f"  html      {render_outputs(rows, out)['html']}")
