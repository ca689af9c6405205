"""Training curves of the cells (``details["curves"]``, :func:`privbench.nn.epochs.training_curve`):
TensorBoard event files under the output folder and small inline SVG plots for the page.

A reviewer's first question about a privacy claim is whether the attacker had converged; a curve
whose last epoch was its best (``still_improving``) is flagged on the page and in the
leaderboard's ``still_improving`` column.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from privbench.report.formatting import file_name
from privbench.runs.scores import evaluation_key

#: Record entries that are bookkeeping, not curves.
NOT_CURVES = ("epoch", "time_s", "lr")
SVG_WIDTH, SVG_HEIGHT = 220, 70
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def cell_curves(rows: pd.DataFrame) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """``(encoder label, evaluation key, curves)`` of every row that trained something."""
    found = []
    if "details" not in rows.columns:  # rows built by hand (reported, tests): no curves
        return found
    for row in rows.itertuples(index=False):
        if _has_curves(row.details):
            key = evaluation_key(row.evaluation, row.protocol)
            found.append((str(row.encoder_label), key, row.details["curves"]))
    return found


def series(curve: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """The curve's numeric entries by name: ``[(epoch, value), ...]`` (None values left out)."""
    named: dict[str, list[tuple[int, float]]] = {}
    for record in curve["epochs"]:
        for key, value in record.items():
            if key in NOT_CURVES or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                named.setdefault(key, []).append((int(record["epoch"]), float(value)))
    return named


def curve_svg(curve: dict[str, Any]) -> str:
    """An inline SVG of the curve: every series scaled to the box (its range in the legend)."""
    named = series(curve)
    epochs = max((len(curve["epochs"]), 1))
    lines = []
    for index, (name, points) in enumerate(sorted(named.items())):
        values = [v for _, v in points]
        low, high = min(values), max(values)
        span = high - low or 1.0
        coords = " ".join(
            f"{(epoch - 1) / max(epochs - 1, 1) * (SVG_WIDTH - 10) + 5:.1f},"
            f"{SVG_HEIGHT - 5 - (value - low) / span * (SVG_HEIGHT - 10):.1f}"
            for epoch, value in points
        )
        colour = COLOURS[index % len(COLOURS)]
        lines.append(
            f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{coords}'>"
            f"<title>{_escape(name)}: {low:.4g} – {high:.4g}</title></polyline>"
        )
    return (
        f"<svg width='{SVG_WIDTH}' height='{SVG_HEIGHT}' viewBox='0 0 {SVG_WIDTH} {SVG_HEIGHT}' "
        f"style='background:#fafafa;border:1px solid #ddd'>{''.join(lines)}</svg>"
    )


def legend(curve: dict[str, Any]) -> list[dict[str, str]]:
    """Each series' colour, name and first → last value, as the page lists them."""
    return [
        {
            "colour": COLOURS[index % len(COLOURS)],
            "name": name,
            "values": f"{points[0][1]:.4g} → {points[-1][1]:.4g}",
        }
        for index, (name, points) in enumerate(sorted(series(curve).items()))
    ]


def page_curves(rows: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Encoder label → its cells' curves as the page template shows them."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for label, key, curves in cell_curves(rows):
        for curve in curves:
            grouped.setdefault(label, []).append(
                {
                    "evaluation": key,
                    "name": curve["name"],
                    "epochs": len(curve["epochs"]),
                    "best_epoch": curve.get("best_epoch"),
                    "still_improving": bool(curve.get("still_improving")),
                    "svg": Markup(curve_svg(curve)),  # built here, every name in it escaped
                    "legend": legend(curve),
                }
            )
    return grouped


def write_tensorboard(rows: pd.DataFrame, folder: Path) -> Path | None:
    """Event files of every cell's curves under ``folder`` (``tensorboard --logdir folder``):
    one run per encoder / evaluation / trained model, one scalar per record entry. None when
    there is nothing to write or the ``tensorboard`` package is missing."""
    found = cell_curves(rows)
    if not found:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; a trimmed install still renders the page
        return None
    import hashlib
    import shutil

    digest = hashlib.sha256(json.dumps(found, sort_keys=True, default=str).encode()).hexdigest()
    stamp = folder / ".inputs"
    if stamp.is_file() and stamp.read_text() == digest:
        return folder  # written from these very cells already
    shutil.rmtree(folder, ignore_errors=True)  # a rerender must not append to old runs
    for label, key, curves in found:
        for index, curve in enumerate(curves):
            run = folder / file_name(label) / file_name(key) / f"{index}-{file_name(curve['name'])}"
            with SummaryWriter(log_dir=str(run)) as writer:
                for name, points in series(curve).items():
                    for epoch, value in points:
                        writer.add_scalar(name, value, epoch)
    stamp.write_text(digest)
    return folder


def _has_curves(details: Any) -> bool:
    return isinstance(details, dict) and bool(details.get("curves"))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
