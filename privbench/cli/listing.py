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
        table.add_row(name, description(registry.get(name)))
    console.print(table)


def description(component) -> str:
    """A component's docstring's first paragraph on one line (a sentence is never cut)."""
    import inspect

    doc = inspect.getdoc(component) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())
