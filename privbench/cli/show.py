"""``privbench show``: one image beside an encoder's measurement and diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.cli.console import console
from privbench.cli.options import parse_settings


def show_command(
    encoder: Annotated[str, typer.Argument(help="Encoder name (see `privbench list encoders`).")],
    image: Annotated[
        Path | None,
        typer.Option(
            "--image", "-i", help="Input image (PNG/JPEG). Default: a synthfaces sample face."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG.")] = Path("show.png"),
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Encoder config override KEY=VALUE (repeatable)."),
    ] = None,
    size: Annotated[
        int,
        typer.Option("--size", help="Resize the input to SIZE×SIZE first (0: keep; at least 64)."),
    ] = 0,
):
    """Draw a clean image beside its measurement (and the encoder's PSF, kernels, height map...)."""
    from privbench.report.show import show

    path = show(encoder, image=image, out=out, config=parse_settings(settings), size=size or None)
    console.print(f"wrote {path}")
