"""The static HTML leaderboard page, rendered from the Jinja2 template shipped in ``templates/``.

Autoescaping is on, so every label that reaches the page (section titles, encoder labels, metric
names, paper rows, captions, file names) is escaped; the template holds the only markup.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import jinja2
import pandas as pd

from privbench.report.formatting import (
    LEFT_RANKED,
    LEFT_REPORTED,
    REPORTED_TITLE,
    SCORES_NOTE,
    display_columns,
    format_reported,
    format_value,
    rank_label,
)
from privbench.report.interactive import points_json

PAGE_TEMPLATE = "leaderboard.html.j2"
#: Key of the clean-input picture among the sample pictures.
CLEAN_SAMPLE = "__clean__"


@dataclass
class Section:
    """One ranked group of the page: its table, Pareto plot, reference rows, detection curves."""

    title: str
    table: pd.DataFrame
    plot: str | None = None
    comparison: pd.DataFrame | None = None
    curves: dict[str, str] = field(default_factory=dict)
    #: Encoder label → its cells' training curves (:func:`privbench.report.curves.page_curves`).
    training: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: The folder of the curves' TensorBoard event files, relative to the page (None: none).
    tensorboard: str | None = None


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates of :mod:`privbench.report`, HTML-escaped, block tags on lines of their own."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("privbench.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def to_html(
    sections: list[Section],
    samples: dict[str, str],
    figure: str | None = None,
    plotly: str | None = None,
) -> str:
    """A page that works offline: sortable tables (click a header), the interactive Pareto plots
    (``plotly``: the plotly.js file beside the page; None: the PNGs only), the PNGs, samples and,
    when given, the qualitative figure."""
    return (
        environment()
        .get_template(PAGE_TEMPLATE)
        .render(
            sections=[_section_view(index, section) for index, section in enumerate(sections)],
            reported_title=REPORTED_TITLE,
            scores_note=SCORES_NOTE,
            samples=samples,
            clean_sample=CLEAN_SAMPLE,
            figure=figure,
            plotly=plotly,
        )
    )


def _section_view(index: int, section: Section) -> dict[str, Any]:
    columns = display_columns(section.table)
    rows = [
        {
            "encoder": str(row.get("encoder")),
            "rank": rank_label(rank, row),
            "front": bool(row.get("pareto")),
            "cells": [
                _cell(
                    format_value(row.get(c), c),
                    c in LEFT_RANKED,
                    _curves_anchor(section, row) if c == "encoder" else None,
                )
                for c in columns
            ],
        }
        for rank, (_, row) in enumerate(section.table.iterrows(), start=1)
    ]
    view = {
        "index": index,
        "title": section.title,
        "plot": section.plot,
        "columns": [_cell(c, c in LEFT_RANKED) for c in columns],
        "rows": rows,
        "reported": None,
        "curves": section.curves,
        "tensorboard": section.tensorboard,
        "points": points_json(section.table),
        "training": [
            {"label": label, "anchor": _anchor(section, label), "curves": curves}
            for label, curves in section.training.items()
        ],
    }
    comparison = section.comparison
    if comparison is not None and not comparison.empty:
        view["reported"] = {
            "columns": [_cell(c, c in LEFT_REPORTED) for c in comparison.columns],
            "rows": [
                [_cell(format_reported(row.get(c)), c in LEFT_REPORTED) for c in comparison.columns]
                for _, row in comparison.iterrows()
            ],
        }
    return view


def _cell(text: str, left: bool, href: str | None = None) -> dict[str, Any]:
    return {"text": text, "left": left, "href": href}


def _anchor(section: Section, label: str) -> str:
    return f"curves-{section.title}-{label}".replace(" ", "_")


def _curves_anchor(section: Section, row: pd.Series) -> str | None:
    label = str(row.get("encoder"))
    return f"#{_anchor(section, label)}" if label in section.training else None
