"""``privbench data``: check, describe and pre-load the real dataset folders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from privbench.api.errors import DataError
from privbench.cli.console import console
from privbench.cli.options import Command, Group, parse_settings

data_app = typer.Typer(
    cls=Group,
    help="Check real dataset folders (COCO, VGGFace2, WIDER FACE, FDDB, ImageNet, LFW), show "
    "their expected layout, pre-load them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
SETTINGS_HELP = (
    "Adapter option KEY=VALUE (repeatable; values parsed as YAML), e.g. --set n_identities=100."
)


def _parse_settings(settings: list[str] | None) -> dict:
    return parse_settings(settings, example="n_identities=100")


def _builder(name: str):
    from privbench.api.registry import DATASETS

    builder = DATASETS.get(name)
    if builder.layout is None:
        readers = [n for n in DATASETS.names() if DATASETS.get(n).layout is not None]
        raise DataError(
            f"Dataset {name!r} is not read from a folder (it is generated, or assembled from "
            f"other datasets), so there is nothing to check here; check the datasets it reads. "
            f"Datasets read from disk: {', '.join(readers)}."
        )
    return builder


@data_app.command("check", cls=Command)
def check_command(
    name: Annotated[
        str, typer.Argument(help="Dataset: coco, vggface2, widerface, fddb, imagenet or lfw.")
    ],
    path: Annotated[Path, typer.Argument(help="The dataset's root folder.")],
    settings: Annotated[list[str] | None, typer.Option("--set", help=SETTINGS_HELP)] = None,
    show_missing: Annotated[
        int, typer.Option("--show-missing", help="List at most this many missing files.")
    ] = 20,
):
    """Validate a dataset folder: annotation syntax, counts per split, missing files.

    Malformed annotation lines are errors naming the file and line; counts follow the adapter's
    options (--set); every image file the adapter would read is looked up (not decoded).

    Exit status: 0 when complete, 1 when files are missing, 2 on malformed annotations or options.
    """
    builder = _builder(name)
    started = time.perf_counter()
    report = builder.from_options({**_parse_settings(settings), "path": path}).check()
    console.print(report.render(max_missing=show_missing), highlight=False, soft_wrap=True)
    console.print(f"(checked in {time.perf_counter() - started:.1f} s)", style="dim")
    if not report.ok:
        console.print(
            f"[bold red]incomplete:[/bold red] {len(report.missing)} files missing; restore them "
            f"or change the options that select them (see `privbench data layout {name}`).",
            highlight=False,
        )
        raise typer.Exit(1)


@data_app.command("layout", cls=Command)
def layout_command(name: Annotated[str, typer.Argument(help="Dataset name.")]):
    """Print the folder layout, annotation syntax and protocol an adapter expects."""
    builder = _builder(name)
    console.print(builder.documentation(), highlight=False, markup=False)
    console.print(
        "\nOptions (--set KEY=VALUE, or the dataset config of a benchmark spec):",
        highlight=False,
    )
    for field_name, info in builder.Config.model_fields.items():
        default = (
            "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
        )
        console.print(
            f"  {field_name} = {default}: {info.description or ''}",
            highlight=False,
            markup=False,
        )


@data_app.command("load", cls=Command)
def load_command(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[Path, typer.Argument(help="The dataset's root folder.")],
    settings: Annotated[list[str] | None, typer.Option("--set", help=SETTINGS_HELP)] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Cache root for the resized tensors (default: $PRIVBENCH_CACHE/datasets).",
        ),
    ] = None,
):
    """Read a dataset through its adapter (filling its tensor cache), print what benchmarks get."""
    builder = _builder(name)
    started = time.perf_counter()
    data = builder.from_options({**_parse_settings(settings), "path": path}).load(cache_dir)
    console.print(data.description, highlight=False)
    for part in ("identities", "face_vs_noface", "scenes"):
        value = getattr(data, part)
        if value is None:
            continue
        for split in ("train", "val", "test"):
            item = value[split]
            shape = tuple(item.images.shape)
            extra = (
                f", {item.num_classes} classes"
                if hasattr(item, "num_classes")
                else f", {sum(len(b) for b in item.boxes)} boxes"
            )
            console.print(f"  {part}/{split}: images {shape}{extra}", highlight=False)
    console.print(
        f"fingerprint {data.fingerprint} ({time.perf_counter() - started:.1f} s)", highlight=False
    )
