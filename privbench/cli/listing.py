"""``privbench list``: the registered components of one kind."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from privbench.cli.console import console


class Kind(str, Enum):
    encoders = "encoders"
    tasks = "tasks"
    attacks = "attacks"
    designers = "designers"
    benchmarks = "benchmarks"
    datasets = "datasets"


def list_command(
    kind: Annotated[
        Kind,
        typer.Argument(
            help="What to list: encoders, tasks, attacks, designers, benchmarks or datasets."
        ),
    ],
):
    """List the registered components of one kind, with a one-line description each."""
    from rich.table import Table

    from privbench.api.registry import ATTACKS, BENCHMARKS, DATASETS, DESIGNERS, ENCODERS, TASKS

    registry = {
        "encoders": ENCODERS,
        "tasks": TASKS,
        "attacks": ATTACKS,
        "designers": DESIGNERS,
        "benchmarks": BENCHMARKS,
        "datasets": DATASETS,
    }[kind.value]
    table = Table(title=f"privbench {kind.value}")
    table.add_column("name")
    table.add_column("description")
    for name in registry.names():
        obj = registry.get(name)
        doc = (obj.__doc__ or "").strip().splitlines()
        table.add_row(name, doc[0] if doc else "")
    console.print(table)
