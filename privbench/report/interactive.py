"""The page's interactive Pareto plot: plotly.js, shipped inside the ``plotly`` PyPI package and
copied beside the page, so it works offline (the static PNG stays for papers).

Each section's points are embedded as JSON (one per encoder with finite scores: utility,
privacy, the front, the worst attack and the headline metrics); the page's script draws them,
shows a point's configuration and raw metrics on hover and filters the table to the clicked
encoder (click it again, or the button, to show every row).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from privbench.runs.scores import is_missing

#: The plotly.js bundle beside the page.
PLOTLY_JS = "plotly.min.js"
#: Raw metrics shown on hover: each evaluation's headline-like columns.
HOVER_SUFFIXES = (".top1", ".accuracy", ".cider", ".ap50", ".privacy", ".psnr_db", ".ssim")


def write_plotly_js(out_dir: Path) -> str | None:
    """Copy plotly.js next to the page (once per plotly version); its file name, or None when
    plotly is not installed (the page then shows the PNG only)."""
    try:
        import plotly
        from plotly.offline import get_plotlyjs
    except ImportError:
        return None
    path = out_dir / PLOTLY_JS
    stamp = out_dir / f".{PLOTLY_JS}.version"
    if not path.is_file() or not stamp.is_file() or stamp.read_text() != plotly.__version__:
        path.write_text(get_plotlyjs(), encoding="utf-8")
        stamp.write_text(plotly.__version__)
    return PLOTLY_JS


def plot_points(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One point per encoder with finite utility and privacy, with what its hover shows."""
    points = []
    for _, row in table.iterrows():
        utility, privacy = _number(row.get("utility")), _number(row.get("privacy"))
        if utility is None or privacy is None:
            continue
        metrics = {
            column: _number(row.get(column))
            for column in table.columns
            if column.endswith(HOVER_SUFFIXES) and _number(row.get(column)) is not None
        }
        points.append(
            {
                "encoder": str(row["encoder"]),
                "utility": utility,
                "privacy": privacy,
                "pareto": bool(row.get("pareto")),
                "worst_attack": None
                if is_missing(row.get("worst_attack"))
                else row["worst_attack"],
                "alpha": _number(row.get("alpha")),
                "metrics": metrics,
            }
        )
    return points


def points_json(table: pd.DataFrame) -> Markup:
    """The points as JSON safe inside a ``<script type='application/json'>`` element: ``<``
    escaped, so no label can close the element."""
    text = json.dumps(plot_points(table), ensure_ascii=False, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
