"""``privbench data``: check, describe and pre-load the real dataset folders."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from privbench.api.errors import DataError, PrivbenchError

data_app = typer.Typer(
    help="Check real dataset folders (COCO, VGGFace2, WIDER FACE, FDDB, ImageNet, LFW), show their expected layout, pre-load them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

SETTINGS_HELP = "Adapter option KEY=VALUE (repeatable; values parsed as YAML), e.g. --set n_identities=100."


def _parse_settings(settings: list[str]) -> dict:
    import yaml

    config = {}
    for item in settings:
        if "=" not in item:
            raise PrivbenchError(f"--set expects KEY=VALUE (e.g. --set n_identities=100); got {item!r}.")
        key, value = item.split("=", 1)
        config[key.strip()] = yaml.safe_load(value)
    return config


def _builder(name: str):
    from privbench.api.registry import DATASETS

    builder = DATASETS.get(name)
    if not hasattr(builder, "check"):
        readers = [n for n in DATASETS.names() if hasattr(DATASETS.get(n), "check")]
        raise DataError(
            f"Dataset {name!r} is not read from a folder (it is generated, or assembled from other datasets), so there is "
            f"nothing to check here; check the datasets it reads. "
            f"Datasets read from disk: {', '.join(readers)}."
        )
    return builder


@data_app.command("check")
def check_command(
    name: str = typer.Argument(..., help="Dataset: coco, vggface2, widerface, fddb, imagenet or lfw."),
    path: Path = typer.Argument(..., help="The dataset's root folder."),
    settings: list[str] = typer.Option([], "--set", help=SETTINGS_HELP),
    show_missing: int = typer.Option(20, "--show-missing", help="List at most this many missing files."),
):
    """Validate a dataset folder: annotation syntax, counts per split, missing files.

    Malformed annotation lines are errors naming the file and line; counts follow the adapter's
    options (--set); every image file the adapter would read is looked up (not decoded).

    Exit status: 0 when complete, 1 when files are missing, 2 on malformed annotations or options.
    """
    builder = _builder(name)
    started = time.perf_counter()
    report = builder.check(path, **_parse_settings(settings))
    console.print(report.render(max_missing=show_missing), highlight=False, soft_wrap=True)
    console.print(f"(checked in {time.perf_counter() - started:.1f} s)", style="dim")
    if not report.ok:
        console.print(
            f"[bold red]incomplete:[/bold red] {len(report.missing)} files missing; restore them or change the options "
            f"that select them (see `privbench data layout {name}`).",
            highlight=False,
        )
        raise typer.Exit(1)


@data_app.command("layout")
def layout_command(name: str = typer.Argument(..., help="Dataset name.")):
    """Print the folder layout, annotation syntax and protocol an adapter expects."""
    builder = _builder(name)
    module = importlib.import_module(builder.__module__)
    console.print((module.__doc__ or "").strip(), highlight=False, markup=False)
    config = getattr(module, next((n for n in dir(module) if n.endswith("Config") and n != "AdapterConfig"), ""), None)
    if config is not None:
        console.print("\nOptions (--set KEY=VALUE, or the dataset config of a benchmark spec):", highlight=False)
        for field_name, info in config.model_fields.items():
            default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
            console.print(f"  {field_name} = {default}: {info.description or ''}", highlight=False, markup=False)


@data_app.command("load")
def load_command(
    name: str = typer.Argument(..., help="Dataset name."),
    path: Path = typer.Argument(..., help="The dataset's root folder."),
    settings: list[str] = typer.Option([], "--set", help=SETTINGS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache root for the resized tensors (default: $PRIVBENCH_CACHE/datasets)."),
):
    """Read a dataset through its adapter (filling the tensor cache) and print what a benchmark gets."""
    builder = _builder(name)
    started = time.perf_counter()
    data = builder(path=path, cache_dir=cache_dir, **_parse_settings(settings))
    console.print(data.description, highlight=False)
    for part in ("identities", "face_vs_noface", "scenes"):
        value = getattr(data, part)
        if value is None:
            continue
        for split in ("train", "val", "test"):
            item = value[split]
            shape = tuple(item.images.shape)
            extra = f", {item.num_classes} classes" if hasattr(item, "num_classes") else f", {sum(len(b) for b in item.boxes)} boxes"
            console.print(f"  {part}/{split}: images {shape}{extra}", highlight=False)
    console.print(f"fingerprint {data.fingerprint} ({time.perf_counter() - started:.1f} s)", highlight=False)


def main() -> None:  # pragma: no cover - convenience entry point
    try:
        data_app()
    except PrivbenchError as error:
        Console(stderr=True).print(f"error: {error}", highlight=False, markup=False)
        sys.exit(error.exit_code)
