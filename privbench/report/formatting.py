"""How leaderboard values and columns are shown, shared by the terminal, Markdown and HTML views."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

#: The per-encoder scores every view starts with.
SUMMARY_COLUMNS = ["encoder", "utility", "privacy", "worst_attack", "pareto"]
#: Text columns, left-aligned in the ranked table and in the reported-rows table.
LEFT_RANKED = ("encoder", "worst_attack")
LEFT_REPORTED = ("encoder", "matches", "reference")

REPORTED_TITLE = (
    "Reported by the paper (reference rows: not ranked, not in the normalized scores or the "
    "Pareto plot)"
)


def format_value(value: Any) -> str:
    """A ranked-table cell: 3 decimals, – for a missing value, `yes` for a front member."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_reported(value: Any) -> str:
    """Reported and measured values side by side: 4 significant digits (the papers print 3-4)."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.4g}"
    return format_value(value)


def display_columns(table: pd.DataFrame) -> list[str]:
    """Summary columns, then the raw metrics (evaluation.metric), then encoder identity."""
    metrics = [c for c in table.columns if "." in c]
    return SUMMARY_COLUMNS + metrics + [c for c in ("alpha", "seeds") if c in table.columns]
