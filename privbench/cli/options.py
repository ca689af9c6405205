"""Options that several commands share, declared once, and the parsers of their values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from privbench.api.errors import PrivbenchError

BenchmarkOption = Annotated[
    str | None,
    typer.Option(
        "--benchmark",
        "-b",
        help="Built-in benchmark name (see `privbench list benchmarks`). Default: synthfaces.",
    ),
]
SpecOption = Annotated[
    Path | None,
    typer.Option("--spec", help="A benchmark spec YAML file (instead of --benchmark)."),
]
EncodersOption = Annotated[
    str | None,
    typer.Option(
        "--encoders",
        "-e",
        help="Comma-separated encoder names or labels (default: all in the spec).",
    ),
]
PresetOption = Annotated[
    str | None,
    typer.Option("--preset", "-p", help="Preset of the benchmark: quick (default) or standard."),
]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Artifact cache (default: $PRIVBENCH_CACHE or ~/.cache/privbench).",
    ),
]
#: Where a run or a study writes its rows (optional: a SQLite file in the output folder).
RunStoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="SQLAlchemy URL of the results store (default: sqlite:///OUT/results.db).",
    ),
]
#: The store a command reads (required).
ReadStoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        help="SQLAlchemy URL of a results store, e.g. sqlite:///privbench-out/results.db.",
    ),
]
#: Restricts the rows read from a store.
RowsOfBenchmarkOption = Annotated[
    str | None,
    typer.Option("--benchmark", "-b", help="Only rows of this benchmark."),
]


def benchmark_source(benchmark: str | None, spec: Path | None) -> str | None:
    """What ``--benchmark`` / ``--spec`` name (at most one of them)."""
    if spec is not None and benchmark is not None:
        raise PrivbenchError("Give either --benchmark or --spec, not both.")
    return str(spec) if spec is not None else benchmark


def split_names(value: str | None) -> list[str] | None:
    """``"a, b,,c"`` → ``["a", "b", "c"]``; None when nothing is named."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names or None


def parse_settings(
    settings: list[str] | None, option: str = "--set", example: str = "sigma_px=4"
) -> dict:
    """``KEY=VALUE`` items (values parsed as YAML) → a config mapping (empty when none given)."""
    import yaml

    config = {}
    for item in settings or ():
        if "=" not in item:
            raise PrivbenchError(
                f"{option} expects KEY=VALUE (e.g. {option} {example}); got {item!r}."
            )
        key, value = item.split("=", 1)
        config[key.strip()] = yaml.safe_load(value)
    return config


WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        help="Tasks run in parallel: 1 runs in this process (no Ray); more start a local Ray "
        "instance. Default: the machine's cores ÷ --cpus-per-cell (GPUs ÷ --gpus-per-cell on "
        "cuda), or $PRIVBENCH_WORKERS.",
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Join a running Ray cluster instead: 'auto' (the one `ray start` started here), "
        "HOST:PORT or ray://HOST:PORT (docs/cluster.md).",
    ),
]
CpusPerCellOption = Annotated[
    int | None,
    typer.Option(
        "--cpus-per-cell",
        min=1,
        help="CPU cores (= torch threads) each cell and fit reserves. Part of the numbers: "
        "CPU results are bit-identical between runs with the same value (default 2).",
    ),
]
GpusPerCellOption = Annotated[
    float | None,
    typer.Option(
        "--gpus-per-cell",
        min=0.0,
        help="GPU share of each cell on --device cuda: 0.25 packs four cells on one GPU "
        "(default 1; a spec entry's resources: {gpus: N} overrides it).",
    ),
]
MaxRetriesOption = Annotated[
    int | None,
    typer.Option(
        "--max-retries",
        min=0,
        help="Times Ray reruns a task whose worker process died (killed, out of memory); the "
        "rerun resumes from the task's epoch checkpoints (default 3).",
    ),
]
DataOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        "-d",
        help="Where the datasets the benchmark reads live: NAME=PATH pairs, comma-separated or "
        "repeated, e.g. --data vggface2=/data/vggface2,imagenet=/data/ilsvrc2012 (the paper "
        "benchmarks; run without it to see what is needed).",
    ),
]


class Command(TyperCommand):
    """A command whose help lists on/off flags without a value type: Typer's panel shows
    ``<bool>`` beside every flag (``--help`` included), as if the flag took a value."""

    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))


def _untyped_flags(params):
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:  # typer's own classes
            param.metavar = ""
    return params
