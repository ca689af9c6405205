"""Reference rows: the numbers the papers report, shown beside the measured rows, never ranked.

Each ``reference/*.yaml`` file transcribes one table of one paper for one benchmark::

    benchmark: canopic-paper                 # shown on this benchmark's leaderboard only
    paper: "CAnOPIC (Tan et al.)"            # short name, shown in each row's reference
    citation: "Tan, Khan, ...: CAnOPIC: ..." # full citation
    table: "Table 1"
    metrics:                                 # the paper's columns → leaderboard columns
      id_classification:
        column: "face-id[retrained].top1"    # <evaluation>[<protocol>].<metric>, as measured
        scale: 0.01                          # printed value × scale = value in the metric's unit
        printed: "ID Classification (%)"
    rows:
      - row: "Conv(1) + MP + Quantize (α = 1)"   # the paper's row, verbatim
        setting: Learned                          # the paper's column or row group, if any
        encoder: "canopic-conv1-mp-q α=1"         # the measured encoder label it is (null: none)
        values: {id_classification: 33.73, face_vs_noface: 94.66}   # as printed

Values are kept as printed (audit them against the paper) and scaled on load. Reported rows have
no normalized utility or privacy and never enter
:func:`privbench.runs.scores.leaderboard_table`, the Pareto front or a hypervolume: they are
reference points, measured on another setup.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from privbench.api.config import validate_config
from privbench.api.errors import ConfigError
from privbench.runs.scores import is_missing

#: The published reference entries ship with the user-facing ``leaderboard/`` folder (package data).
REFERENCE_DIR = Path(str(importlib.resources.files("privbench.leaderboard") / "reference"))
SOURCE_COLUMN = "source"
REPORTED = "reported"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportedMetric(_Strict):
    column: str = Field(..., description="leaderboard column: <evaluation>[<protocol>].<metric>")
    scale: float = Field(
        1.0, gt=0, description="printed value × scale = value in the metric's unit"
    )
    printed: str = Field("", description="the paper's column heading")


class ReportedRow(_Strict):
    row: str = Field(..., description="the paper's row label, verbatim")
    setting: str | None = Field(
        None, description="the paper's column or row group (e.g. Unlearned / Learned, Non-Privacy)"
    )
    encoder: str | None = Field(
        None, description="measured encoder label this row corresponds to (None: not reproduced)"
    )
    note: str = ""
    values: dict[str, float]


class ReportedTable(_Strict):
    benchmark: str
    paper: str = Field(..., description="short name of the paper, shown in each row's reference")
    citation: str = Field("", description="full citation")
    table: str
    file: str = Field("", description="the paper's text in /work/shared/papers or elsewhere")
    metrics: dict[str, ReportedMetric]
    rows: list[ReportedRow] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _values_name_metrics(self) -> ReportedTable:
        for row in self.rows:
            unknown = sorted(set(row.values) - set(self.metrics))
            if unknown:
                raise ValueError(
                    f"row {row.row!r} has values {unknown} not declared under metrics "
                    f"({', '.join(self.metrics)})"
                )
            if not row.values:
                raise ValueError(f"row {row.row!r} has no values")
        return self

    def source_of(self, row: ReportedRow) -> str:
        setting = f" ({row.setting})" if row.setting else ""
        return f'{self.paper}, {self.table}, row "{row.row}"{setting}'


def load_reported_file(path: str | Path) -> ReportedTable:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"Reported-results file {str(path)!r} cannot be read: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"Reported-results file {str(path)!r} must hold a mapping with benchmark, paper, "
            f"table, metrics, rows."
        )
    return validate_config(ReportedTable, raw, what=f"reported-results file {str(path)!r}")


@cache
def _shipped(directory: str) -> tuple[ReportedTable, ...]:
    return tuple(load_reported_file(path) for path in sorted(Path(directory).glob("*.yaml")))


def reported_tables(benchmark: str, directory: str | Path | None = None) -> list[ReportedTable]:
    """The shipped reference tables of ``benchmark`` (the files under ``reference/``)."""
    return [
        table for table in _shipped(str(directory or REFERENCE_DIR)) if table.benchmark == benchmark
    ]


def reported_rows(benchmark: str, directory: str | Path | None = None) -> pd.DataFrame:
    """One row per reported paper row: ``encoder`` (the paper's row), ``matches`` (measured label),
    ``source`` = ``reported``, ``reference`` (paper, table, row) and the scaled metric columns."""
    records = []
    for table in reported_tables(benchmark, directory):
        for row in table.rows:
            record = {
                "encoder": row.row + (f" ({row.setting.lower()})" if row.setting else ""),
                "matches": row.encoder,
                SOURCE_COLUMN: REPORTED,
                "reference": table.source_of(row),
            }
            if row.note:
                record["note"] = row.note
            for key, value in row.values.items():
                metric = table.metrics[key]
                record[metric.column] = round(value * metric.scale, 12)
            records.append(record)
    return pd.DataFrame.from_records(records)


def comparison_table(reported: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Reported rows with, beside each reported metric, the measured value of the matching encoder.

    Columns: ``encoder`` (the paper's row), ``matches``, then per metric ``paper: <column>`` and
    ``measured: <column>``, then ``reference``. Only the columns the paper reports appear.
    """
    if reported.empty:
        return reported
    metric_columns = [c for c in reported.columns if "." in c]
    by_label = (
        {label: row for label, row in measured.set_index("encoder").iterrows()}
        if not measured.empty
        else {}
    )
    records = []
    for _, row in reported.iterrows():
        record = {"encoder": row["encoder"], "matches": row["matches"]}
        measured_row = by_label.get(row["matches"]) if isinstance(row["matches"], str) else None
        for column in metric_columns:
            value = row[column]
            record[f"paper: {column}"] = None if is_missing(value) else float(value)
            record[f"measured: {column}"] = (
                float(measured_row[column])
                if measured_row is not None
                and column in measured_row
                and not is_missing(measured_row[column])
                else None
            )
        record["reference"] = row["reference"]
        records.append(record)
    return pd.DataFrame.from_records(records)
