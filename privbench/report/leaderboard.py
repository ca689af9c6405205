"""Leaderboard renderers: terminal (rich), Markdown, CSV and a static HTML page.

Input is the per-encoder table of :func:`privbench.runs.scores.leaderboard_table`. Rows of different
benchmark versions or datasets are rendered as separate sections and never ranked together.
A benchmark with reference rows (the numbers its paper reports, :mod:`privbench.report.reported`)
gets a second table under its ranked one: each reported value beside the measured value of the
matching encoder, unranked and outside the normalized scores and the Pareto plot.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from privbench.api.errors import OutputError
from privbench.report.curves import page_curves, write_tensorboard
from privbench.report.formatting import (
    LEFT_RANKED,
    LEFT_REPORTED,
    REPORTED_TITLE,
    SCORES_NOTE,
    SUMMARY_COLUMNS,
    display_columns,
    file_name,
    format_reported,
    format_value,
    headline_columns,
    rank_label,
)
from privbench.report.interactive import write_plotly_js
from privbench.report.page import CLEAN_SAMPLE, Section, to_html
from privbench.report.pareto import plot_pareto
from privbench.report.reported import SOURCE_COLUMN, comparison_table, reported_rows
from privbench.runs.scores import leaderboard_table, split_groups


def reported_markdown(comparison: pd.DataFrame) -> str:
    """The reference rows beside the measured values, as a Markdown table with its legend."""
    columns = list(comparison.columns)
    lines = [
        f"### {REPORTED_TITLE}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for _, row in comparison.iterrows():
        lines.append(
            "| "
            + " | ".join(format_reported(row.get(c)).replace("|", "\\|") for c in columns)
            + " |"
        )
    lines += [
        "",
        (
            "`paper:` columns are the paper's printed numbers in the metric's unit; `measured:` "
            "columns are this leaderboard's value for the encoder in `matches` (– where the "
            "paper's row is not reproduced or not yet run)."
        ),
        "",
    ]
    return "\n".join(lines)


def print_reported_table(benchmark: str, table: pd.DataFrame, console=None) -> None:
    """The reference rows of ``benchmark`` beside ``table``'s measured values on the terminal
    (nothing if it has none)."""
    from rich.console import Console
    from rich.table import Table

    comparison = comparison_table(reported_rows(benchmark), table)
    if comparison.empty:
        return
    console = console or Console()
    columns = [c for c in comparison.columns if c != "reference"]
    rich_table = Table(title=f"{benchmark}: reported by the paper (not ranked)")
    for column in columns:
        rich_table.add_column(column, justify="left" if column in LEFT_REPORTED else "right")
    for _, row in comparison.iterrows():
        rich_table.add_row(*(format_reported(row.get(c)) for c in columns))
    console.print(rich_table)


def to_markdown(table: pd.DataFrame, title: str, comparison: pd.DataFrame | None = None) -> str:
    """One ranked section in Markdown, its reference rows (if any) under it."""
    columns = display_columns(table)
    lines = [
        f"## {title}",
        "",
        "| rank | " + " | ".join(columns) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for rank, (_, row) in enumerate(table.iterrows(), start=1):
        cells = " | ".join(format_value(row.get(c), c) for c in columns)
        lines.append(f"| {rank_label(rank, row)} | {cells} |")
    lines += ["", SCORES_NOTE, ""]
    if comparison is not None and not comparison.empty:
        lines.append(reported_markdown(comparison))
    return "\n".join(lines)


def print_table(table: pd.DataFrame, title: str, console=None) -> None:
    """The ranked table on the terminal: the scores and one headline metric per evaluation
    (the Markdown, CSV and HTML tables start with the same columns)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    columns = SUMMARY_COLUMNS + headline_columns(table)
    rich_table = Table(title=title, show_lines=False)
    rich_table.add_column("#", justify="right")
    for column in columns:
        rich_table.add_column(column, justify="left" if column in LEFT_RANKED else "right")
    for rank, (_, row) in enumerate(table.iterrows(), start=1):
        rich_table.add_row(rank_label(rank, row), *(format_value(row.get(c), c) for c in columns))
    console.print(rich_table)


def write_sample_images(
    data, encoders: dict[str, Any], out_dir: Path, count: int, device
) -> dict[str, str]:
    """One picture per encoder: the first ``count`` test face crops and their measurements."""
    from privbench.report.visualize import measurement_to_rgb, sample_strip, save_rgb_png

    if count <= 0 or data is None or data.identities is None:
        return {}
    folder = out_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    images = data.identities.test.images[:count].float().div(255.0).to(device)
    paths = {}
    for label, encoder in encoders.items():
        with torch.no_grad():
            measurements = encoder.to(device).eval()(images).cpu()
        path = folder / f"{file_name(label)}.png"
        save_rgb_png(sample_strip([measurement_to_rgb(m) for m in measurements]), path, 0)
        paths[label] = f"samples/{path.name}"
    clean = [image.permute(1, 2, 0).numpy() for image in images.cpu()]
    save_rgb_png(sample_strip(clean), folder / "_clean.png", 0)
    paths[CLEAN_SAMPLE] = "samples/_clean.png"
    return paths


def write_detection_curves(rows: pd.DataFrame, folder: Path) -> dict[str, str]:
    """Per encoder, the face-detection-attack protocols' precision-recall curves and discrete
    ROCs drawn together (2PSC Fig. 4a), from the curves the rows carry; label → path in
    ``folder``."""
    from privbench.detection import curves_from_rows, plot_protocol_curves

    if rows.empty or "evaluation" not in rows.columns:
        return {}
    paths = {}
    attack = rows[rows["evaluation"] == "face-detection-attack"]
    for label in attack["encoder_label"].unique():
        curves = curves_from_rows(rows, encoder_label=label)
        if curves:
            path = folder / f"{file_name(label)}.png"
            drawn = draw_once(
                path,
                json.dumps(curves, sort_keys=True, default=str),
                functools.partial(
                    plot_protocol_curves,
                    curves,
                    path,
                    title=f"face detection as an attack: {label}",
                ),
            )
            paths[str(label)] = f"{folder.name}/{drawn.name}"
    return paths


def draw_once(path: Path, inputs: str, draw) -> Path:
    """Draw the figure at ``path`` unless it was drawn from the same ``inputs`` (its curves or
    its table as text; a hash of them is kept beside it): a rerun of a finished run renders in
    seconds instead of redrawing every figure."""
    import hashlib

    stamp = path.with_name(f".{path.name}.inputs")
    digest = hashlib.sha256(inputs.encode()).hexdigest()
    if path.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return path
    stamp.unlink(missing_ok=True)
    drawn = Path(draw())
    stamp.write_text(digest)
    return drawn


#: The qualitative figure `privbench figure` writes into an output folder (2PSC Fig. 3 style).
QUALITATIVE_FIGURE = "fig3.png"


def _group_title(key: tuple, rows: pd.DataFrame) -> str:
    benchmark, version, fingerprint = key
    presets = sorted({p for p in rows.get("preset", pd.Series(dtype=object)).dropna()})
    preset = f", preset {'/'.join(presets)}" if presets else ""
    dataset = rows["dataset"].iloc[0]
    return f"{benchmark} v{version} — dataset {dataset} ({fingerprint[:8]}){preset}"


def render_outputs(
    results: pd.DataFrame,
    out_dir: str | Path,
    *,
    title: str | None = None,
    data=None,
    encoders: dict[str, Any] | None = None,
    samples: int = 4,
    device="cpu",
    console=None,
    print_terminal: bool = False,
) -> dict[str, Path]:
    """Write leaderboard.md / .csv, index.html, pareto.png (and sample pictures) into
    ``out_dir``; with ``print_terminal``, print each ranked table on ``console`` as well."""
    from privbench.runs.runner import prepare_output_dir

    out = prepare_output_dir(out_dir)
    measured = (
        results[results["source"].fillna("measured") == "measured"]
        if "source" in results.columns
        else results
    )
    groups = split_groups(measured)
    sections, markdown, tables = [], ["# privbench leaderboard", ""], []
    for index, (key, rows) in enumerate(groups):
        table = leaderboard_table(rows)
        section_title = _group_title(key, rows) if len(groups) > 1 or title is None else title
        plot_name = "pareto.png" if index == 0 else f"pareto-{index + 1}.png"
        draw_once(
            out / plot_name,
            section_title + table.to_csv(index=False),
            functools.partial(plot_pareto, table, out / plot_name, title=section_title),
        )
        reported = reported_rows(key[0])
        comparison = comparison_table(reported, table)
        curves = write_detection_curves(
            rows, out / ("detection" if index == 0 else f"detection-{index + 1}")
        )
        events = write_tensorboard(rows, out / ("curves" if index == 0 else f"curves-{index + 1}"))
        sections.append(
            Section(
                section_title,
                table,
                plot_name,
                comparison,
                curves,
                training=page_curves(rows),
                tensorboard=events.name if events is not None else None,
            )
        )
        markdown.append(to_markdown(table, section_title, comparison))
        group = {"benchmark": key[0], "benchmark_version": key[1], "dataset_fingerprint": key[2]}
        tables.append(table.assign(**{SOURCE_COLUMN: "measured"}, **group))
        if not reported.empty:
            # Reference rows follow the measured ones in the CSV, marked `reported`, with no scores.
            tables.append(reported.assign(**group))
        if print_terminal:
            print_table(table, section_title, console)
            print_reported_table(key[0], table, console)
    if not groups:
        markdown.append("No results yet.")
    sample_paths = (
        write_sample_images(data, encoders or {}, out, samples, device)
        if encoders
        else _existing_samples(out)
    )
    outputs = {
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "html": out / "index.html",
    }
    try:
        outputs["markdown"].write_text("\n".join(markdown))
        (
            pd.concat(tables, ignore_index=True)
            if tables
            else pd.DataFrame(columns=SUMMARY_COLUMNS)
        ).to_csv(outputs["csv"], index=False)
        figure = QUALITATIVE_FIGURE if (out / QUALITATIVE_FIGURE).is_file() else None
        plotly = write_plotly_js(out) if groups else None
        outputs["html"].write_text(to_html(sections, sample_paths, figure, plotly))
    except OSError as error:
        raise OutputError(f"Cannot write the leaderboard into {str(out)!r}: {error}.") from None
    if groups:
        outputs["pareto"] = out / "pareto.png"
    return outputs


def _existing_samples(out: Path) -> dict[str, str]:
    folder = out / "samples"
    if not folder.is_dir():
        return {}
    paths = {
        p.stem: f"samples/{p.name}" for p in sorted(folder.glob("*.png")) if p.stem != "_clean"
    }
    if (folder / "_clean.png").exists():
        paths = {CLEAN_SAMPLE: "samples/_clean.png", **paths}
    return paths
