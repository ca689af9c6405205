"""Compare the metrics of two results stores cell by cell, exactly.

Used to check that a refactoring changed no measured number (issue 12: "every metric of every
cell stays bit-for-bit the same on the CPU"):

    .venv/bin/python scripts/compare_results.py BEFORE/results.db AFTER/results.db

Cells are matched by encoder label, evaluation, evaluation config and seed (and the cell key is
reported when it differs); metrics are compared as the floats the store holds, with ``==``.
Exits 1 when any cell is missing on either side or any metric differs.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

COLUMNS = "cell_key, encoder_label, evaluation, evaluation_config, seed, metrics, headline_value"


def read(path: Path) -> dict[tuple, dict]:
    """The rows of the SQLite store at ``path``, keyed by what identifies a cell."""
    if not path.is_file():
        raise SystemExit(f"no results store at {path}")
    connection = sqlite3.connect(path)
    rows = {}
    for key, label, evaluation, config, seed, metrics, headline in connection.execute(
        f"select {COLUMNS} from results"
    ):
        config = json.loads(config) if isinstance(config, str) else config
        identity = (label, evaluation, json.dumps(config, sort_keys=True), seed)
        rows[identity] = {
            "key": key,
            "metrics": json.loads(metrics) if isinstance(metrics, str) else metrics,
            "headline": headline,
        }
    connection.close()
    return rows


def compare(before: dict[tuple, dict], after: dict[tuple, dict]) -> list[str]:
    problems = []
    for identity in sorted(set(before) | set(after), key=str):
        name = f"{identity[0]} × {identity[1]} (seed {identity[3]})"
        if identity not in after or identity not in before:
            problems.append(f"{name}: only in {'before' if identity in before else 'after'}")
            continue
        old, new = before[identity], after[identity]
        if old["metrics"] != new["metrics"] or old["headline"] != new["headline"]:
            changed = sorted(
                k
                for k in set(old["metrics"]) | set(new["metrics"])
                if old["metrics"].get(k) != new["metrics"].get(k)
            )
            problems.append(f"{name}: metrics differ: {', '.join(changed)}")
        if old["key"] != new["key"]:
            print(f"note: {name}: cell key {old['key']} → {new['key']}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    before, after = read(Path(argv[0])), read(Path(argv[1]))
    problems = compare(before, after)
    metrics = sum(len(row["metrics"]) for row in before.values())
    for problem in problems:
        print(problem)
    verdict = "identical" if not problems else f"{len(problems)} differences"
    print(f"{len(before)} cells before, {len(after)} after, {metrics} metrics: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
