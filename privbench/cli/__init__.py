"""The ``privbench`` command line (typer): one module per command, shared options in
:mod:`privbench.cli.options`, shared consoles in :mod:`privbench.cli.console`."""

from __future__ import annotations

import sys

import typer

from privbench.api.errors import PrivbenchError
from privbench.cli import (
    encoders,
    entries,
    figure,
    leaderboard,
    listing,
    pareto,
    run,
    show,
    tune,
)
from privbench.cli.console import error_console
from privbench.cli.options import Command, Group

app = typer.Typer(
    cls=Group,
    help=(
        "privbench: benchmark privacy encoders (cameras that destroy private information before "
        "digitization) against utility tasks and privacy attacks, and publish a leaderboard.\n\n"
        "Start with `privbench run` (the embedded synthfaces benchmark, quick preset)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("list", cls=Command)(listing.list_command)
app.command("run", cls=Command)(run.run_command)
app.command("leaderboard", cls=Command)(leaderboard.leaderboard_command)
app.command("figure", cls=Command)(figure.figure_command)
app.command("tune", cls=Command)(tune.tune_command)
app.command("pareto", cls=Command)(pareto.pareto_command)
app.command("show", cls=Command)(show.show_command)
app.command("export", cls=Command)(entries.export_command)
app.command("validate", cls=Command)(entries.validate_command)
app.command("card", cls=Command)(encoders.card_command)
app.add_typer(encoders.encoder_app, name="encoder")


def _mount_optional_apps() -> None:
    try:
        from privbench.cli.data import data_app
    except ImportError:
        return
    app.add_typer(
        data_app,
        name="data",
        help="Check real dataset folders (COCO, VGGFace2, WIDER FACE, FDDB, ImageNet, LFW).",
    )


_mount_optional_apps()


def main(argv: list[str] | None = None) -> None:
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
