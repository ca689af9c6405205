"""How leaderboard values and columns are shown, shared by the terminal, Markdown and HTML views."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from privbench.nn.imaging import PSNR_IDENTICAL_DB

#: The per-encoder scores every view starts with.
SUMMARY_COLUMNS = ["encoder", "utility", "privacy", "worst_attack", "pareto"]
#: Text columns, left-aligned in the ranked table and in the reported-rows table.
LEFT_RANKED = ("encoder", "worst_attack", "still_improving")
LEFT_REPORTED = ("encoder", "matches", "reference")

#: The 95 % interval columns shown right after the summary, where the table has them.
INTERVAL_DISPLAY = ["utility_lo", "utility_hi", "privacy_lo", "privacy_hi"]
#: What the scores and the rank marks mean, under every ranked table (Markdown and HTML).
SCORES_NOTE = (
    "utility = (task headline on measurements − chance) ÷ (on clean images − chance), clipped to "
    "[0, 1], mean over tasks; privacy = 1 − (attack success − chance) ÷ (clean attack success − "
    "chance), clipped to [0, 1], worst case over attacks. `_lo`/`_hi`: 95 % intervals (column "
    "`interval` says how: over seeds, or a bootstrap over the test items of a single training "
    "run, which leaves the training run's own variation out). A rank marked ≈ is not separated "
    "from the next one: their privacy intervals overlap. `pareto` marks the non-dominated "
    "encoders. `still_improving` lists the attacks whose model was still improving at its last "
    "epoch (a longer budget might succeed more: their privacy may be overstated)."
)

REPORTED_TITLE = (
    "Reported by the paper (reference rows: not ranked, not in the normalized scores or the "
    "Pareto plot)"
)


def format_value(value: Any, column: str = "") -> str:
    """A ranked-table cell: 3 decimals, – for a missing value, `yes` for a front member,
    "identical" for a PSNR at its cap (two identical images, :data:`PSNR_IDENTICAL_DB`)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else ""
    if column.endswith("psnr_db") and isinstance(value, (int, float)):
        if value >= PSNR_IDENTICAL_DB - 1e-6:
            return "identical"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_reported(value: Any) -> str:
    """Reported and measured values side by side: 4 significant digits (the papers print 3-4)."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.4g}"
    return format_value(value)


def display_columns(table: pd.DataFrame) -> list[str]:
    """What every view shows, in this order: the summary (encoder, utility, privacy, worst
    attack, front), one headline metric per task and attack, the 95 % intervals, the other raw
    metrics (evaluation.metric, in the table's order: the baselines and chance-level scores
    last), then the flags and how the intervals were obtained."""
    headlines = headline_columns(table)
    intervals = [c for c in INTERVAL_DISPLAY if c in table.columns]
    metrics = [c for c in table.columns if "." in c and c not in headlines]
    meta = [c for c in ("still_improving", "alpha", "seeds", "interval") if c in table.columns]
    return SUMMARY_COLUMNS + headlines + intervals + metrics + meta


def headline_columns(table: pd.DataFrame) -> list[str]:
    """The ``evaluation.headline`` columns, one per task and attack (the table lists them in
    :attr:`pandas.DataFrame.attrs` ``["headlines"]``, set by
    :func:`privbench.runs.scores.leaderboard_table`)."""
    return [c for c in table.attrs.get("headlines", []) if c in table.columns]


def rank_label(rank: int, row: pd.Series) -> str:
    """The rank, marked ≈ where the row's privacy interval overlaps the next row's."""
    separated = row.get("privacy_separated")
    return f"{rank} ≈" if separated is not None and not bool(separated) else str(rank)


def file_name(text: str) -> str:
    """``text`` (an encoder label, an evaluation key) as a file or folder name: letters, digits
    and ``-_.`` kept, anything else ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
