"""Profile of a benchmark run: where the wall and CPU seconds go, per stage and per cell kind.

    python benchmarks/profile_run.py                       # the default run, empty cache (~10 min)
    python benchmarks/profile_run.py --encoders identity   # one encoder's cells
    python benchmarks/profile_run.py --store sqlite:///privbench-out/results.db   # cells only

It runs ``privbench.run`` (default benchmark and preset unless told otherwise) with a fresh
artifact cache and store in a temporary folder (``--cache-dir``/``--out`` keep them), then prints

1. the stages: the dataset (generated or loaded), each designer fit, the cells, the run's wall;
2. per cell kind (evaluation[protocol], summed over encoders): cells, wall and CPU seconds, and
   the wall seconds of each profile section (:mod:`privbench.api.profiling`: ``read`` image
   batches, ``encode``, ``train`` steps, ``validate``, ``checkpoint`` writes, ``metrics``,
   ``java`` start-ups and scoring, ``hash``, cache ``io``, ``other``);
3. per encoder: its fit and its cells' wall seconds.

With ``--store`` it reads the rows of a finished run instead (no stage table: the dataset and
fit times are not stored). Nothing else may compute on the machine while it runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import privbench
from privbench.api.profiling import SECTIONS
from privbench.runs.rows import package_versions
from privbench.runs.store import ResultStore


def _kind(row: pd.Series) -> str:
    protocol = row.get("protocol")
    name = row["evaluation"]
    return f"{name}[{protocol}]" if isinstance(protocol, str) and protocol else name


def _section_wall(profile: dict, name: str) -> float:
    return float(profile.get(name, {}).get("wall_s", 0.0))


def _table(rows: list[list], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                str(v).rjust(w) if i else str(v).ljust(w)
                for i, (v, w) in enumerate(zip(row, widths))
            )
        )
    return "\n".join(lines)


def cell_kind_table(results: pd.DataFrame) -> str:
    """Per cell kind: count, wall, CPU, and each section's wall seconds (summed)."""
    grouped: dict[str, dict[str, float]] = {}
    for _, row in results.iterrows():
        profile = (row.get("execution") or {}).get("profile") or {}
        entry = grouped.setdefault(_kind(row), {"cells": 0, "wall": 0.0, "cpu": 0.0})
        entry["cells"] += 1
        total = profile.get("total", {})
        entry["wall"] += float(total.get("wall_s", row.get("wall_time_s") or 0.0))
        entry["cpu"] += float(total.get("cpu_s", 0.0))
        for name in SECTIONS:
            entry[name] = entry.get(name, 0.0) + _section_wall(profile, name)
    order = sorted(grouped, key=lambda kind: -grouped[kind]["wall"])
    rows = [
        [
            kind,
            int(grouped[kind]["cells"]),
            f"{grouped[kind]['wall']:.1f}",
            f"{grouped[kind]['cpu']:.1f}",
            *(f"{grouped[kind][n]:.1f}" for n in SECTIONS),
        ]
        for kind in order
    ]
    totals = [sum(grouped[k][n] for k in grouped) for n in ("wall", "cpu", *SECTIONS)]
    rows.append(
        ["all cells", sum(int(grouped[k]["cells"]) for k in grouped), *(f"{v:.1f}" for v in totals)]
    )
    return _table(rows, ["cell kind", "cells", "wall s", "cpu s", *SECTIONS])


def encoder_table(results: pd.DataFrame, fits: dict[str, dict]) -> str:
    rows = []
    for label, group in results.groupby("encoder_label", sort=False):
        fit = fits.get(label, {}).get("total", {}).get("wall_s", 0.0)
        cells = float(group["wall_time_s"].fillna(0).sum())
        rows.append([label, f"{fit:.1f}", len(group), f"{cells:.1f}"])
    return _table(rows, ["encoder", "fit wall s", "cells", "cells wall s"])


def stage_table(report, results: pd.DataFrame) -> str:
    rows = [["dataset", f"{report.data_time_s:.1f}", ""]]
    for label, profile in report.fit_profiles.items():
        total = profile.get("total", {})
        rows.append(
            [f"fit {label}", f"{total.get('wall_s', 0.0):.1f}", f"{total.get('cpu_s', 0.0):.1f}"]
        )
    walls = results["wall_time_s"].fillna(0).sum()
    cpus = sum(
        ((e or {}).get("profile") or {}).get("total", {}).get("cpu_s", 0.0)
        for e in results["execution"]
    )
    rows.append([f"{len(results)} cells (sum)", f"{walls:.1f}", f"{cpus:.1f}"])
    rows.append(["run (wall)", f"{report.wall_time_s:.1f}", ""])
    return _table(rows, ["stage", "wall s", "cpu s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default=None, help="built-in benchmark or spec path")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--encoders", default=None, help="comma-separated encoder labels")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cpus-per-cell", type=int, default=None)
    parser.add_argument("--cache-dir", default=None, help="default: a fresh temporary folder")
    parser.add_argument("--out", default=None, help="default: a fresh temporary folder")
    parser.add_argument("--store", default=None, help="only print the profile of this store")
    args = parser.parse_args(argv)
    print(
        f"# profile_run.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} {os.cpu_count()} cores, python {sys.version.split()[0]}, "
        f"torch {package_versions().get('torch', '?')}"
    )
    print("# command: python benchmarks/profile_run.py " + " ".join(argv or sys.argv[1:]))
    if args.store is not None:
        results = ResultStore(args.store).dataframe()
        print(cell_kind_table(results))
        print()
        print(encoder_table(results, {}))
        return 0
    scratch = tempfile.mkdtemp(prefix="privbench-profile-")
    cache_dir = Path(args.cache_dir or Path(scratch) / "cache")
    out = Path(args.out or Path(scratch) / "out")
    started = time.perf_counter()
    report = privbench.run(
        args.benchmark,
        preset=args.preset,
        encoders=args.encoders.split(",") if args.encoders else None,
        out_dir=out,
        cache_dir=cache_dir,
        workers=args.workers,
        cpus_per_cell=args.cpus_per_cell,
        report=True,
    )
    wall = time.perf_counter() - started
    ran = report.results[report.results["cell_key"].isin({c.key for c in report.cells})]
    print(f"\nwall {wall:.1f} s ({report.engine}); cache {cache_dir}, out {out}\n")
    print(stage_table(report, ran))
    print()
    print(cell_kind_table(ran))
    print()
    print(encoder_table(ran, report.fit_profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
