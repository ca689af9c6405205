"""``privbench pareto``: several encoders' privacy-utility fronts on one plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privbench.api.errors import PrivbenchError
from privbench.cli.console import console
from privbench.cli.options import ReadStoreOption, RowsOfBenchmarkOption, split_names


def pareto_command(
    store: ReadStoreOption,
    encoders: Annotated[
        str,
        typer.Option(
            "--encoders", "-e", help="Comma-separated encoder names; each becomes one front."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG.")] = Path("fronts.png"),
    benchmark: RowsOfBenchmarkOption = None,
):
    """Overlay several encoders' privacy-utility fronts (all their α values and trials) on one plot.

    Prints each front's hypervolume against the reference point (utility 0, privacy 0).
    """
    from privbench.report.pareto import hypervolume, plot_fronts
    from privbench.runs.scores import leaderboard_table, split_groups
    from privbench.runs.store import ResultStore, require_existing_store

    require_existing_store(store)
    rows = ResultStore(store).dataframe(benchmark=benchmark)
    if rows.empty:
        raise PrivbenchError(
            f"The store {store!r} holds no results; run `privbench run` or `privbench tune` first."
        )
    groups = split_groups(rows)
    key, group = groups[-1]
    if len(groups) > 1:
        console.print(
            f"(the store holds {len(groups)} benchmark/dataset groups; plotting {key[0]} "
            f"v{key[1]}; use --benchmark to choose)"
        )
    table = leaderboard_table(group)
    fronts = {}
    for name in split_names(encoders) or []:
        family = table[(table["encoder_name"] == name) | (table["encoder"] == name)]
        if family.empty:
            known = ", ".join(sorted(set(table["encoder_name"].dropna())))
            raise PrivbenchError(
                f"No results for encoder {name!r} in {store!r}; encoders with results: {known}."
            )
        fronts[name] = family
        volume = hypervolume(family["utility"], family["privacy"])
        console.print(f"{name}: {len(family)} points, hypervolume {volume:.4f}")
    path = plot_fronts(fronts, out, title=f"{key[0]} v{key[1]}: privacy-utility fronts")
    console.print(f"wrote {path}")
