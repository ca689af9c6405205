"""Leaderboard renderers: terminal (rich), Markdown, CSV and a static HTML page.

Input is the per-encoder table of :func:`privbench.runs.scores.leaderboard_table`. Rows of different
benchmark versions or datasets are rendered as separate sections and never ranked together.
A benchmark with reference rows (the numbers its paper reports, :mod:`privbench.report.reported`)
gets a second table under its ranked one: each reported value beside the measured value of the
matching encoder, unranked and outside the normalized scores and the Pareto plot.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from privbench.api.errors import OutputError
from privbench.report.reported import SOURCE_COLUMN, comparison_table, reported_rows
from privbench.report.pareto import plot_pareto
from privbench.runs.scores import leaderboard_table, split_groups

SUMMARY_COLUMNS = ["encoder", "utility", "privacy", "worst_attack", "pareto"]


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def display_columns(table: pd.DataFrame) -> list[str]:
    """Summary columns, then the raw metrics (evaluation.metric), then encoder identity."""
    metrics = [c for c in table.columns if "." in c]
    return SUMMARY_COLUMNS + metrics + [c for c in ("alpha", "seeds") if c in table.columns]


def _format_reported(value: Any) -> str:
    """Reported and measured values side by side: 4 significant digits (the papers print 3-4)."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.4g}"
    return _format(value)


REPORTED_TITLE = "Reported by the paper (reference rows: not ranked, not in the normalized scores or the Pareto plot)"


def reported_markdown(comparison: pd.DataFrame) -> str:
    columns = list(comparison.columns)
    lines = [f"### {REPORTED_TITLE}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in comparison.iterrows():
        lines.append("| " + " | ".join(_format_reported(row.get(c)).replace("|", "\\|") for c in columns) + " |")
    lines += [
        "",
        "`paper:` columns are the paper's printed numbers in the metric's unit; `measured:` columns are this "
        "leaderboard's value for the encoder in `matches` (– where the paper's row is not reproduced or not yet run).",
        "",
    ]
    return "\n".join(lines)


def print_reported_table(benchmark: str, table: pd.DataFrame, console=None) -> None:
    """The reference rows of ``benchmark`` beside ``table``'s measured values (nothing if it has none)."""
    from rich.console import Console
    from rich.table import Table

    comparison = comparison_table(reported_rows(benchmark), table)
    if comparison.empty:
        return
    console = console or Console()
    columns = [c for c in comparison.columns if c != "reference"]
    rich_table = Table(title=f"{benchmark}: reported by the paper (not ranked)")
    for column in columns:
        rich_table.add_column(column, justify="left" if column in ("encoder", "matches") else "right")
    for _, row in comparison.iterrows():
        rich_table.add_row(*(_format_reported(row.get(c)) for c in columns))
    console.print(rich_table)


def to_markdown(table: pd.DataFrame, title: str, comparison: pd.DataFrame | None = None) -> str:
    columns = display_columns(table)
    lines = [f"## {title}", "", "| rank | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for rank, (_, row) in enumerate(table.iterrows(), start=1):
        lines.append(f"| {rank} | " + " | ".join(_format(row.get(c)) for c in columns) + " |")
    lines += [
        "",
        "utility = task headline metric on measurements ÷ on clean images (identity encoder), mean over tasks; "
        "privacy = 1 − (attack success − chance) ÷ (clean attack success − chance), clipped to [0, 1], "
        "worst case over attacks. `pareto` marks the non-dominated encoders.",
        "",
    ]
    if comparison is not None and not comparison.empty:
        lines.append(reported_markdown(comparison))
    return "\n".join(lines)


def print_table(table: pd.DataFrame, title: str, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    metric_columns = [c for c in table.columns if "." in c and (c.endswith(".top1") or c.endswith(".accuracy"))]
    columns = SUMMARY_COLUMNS + metric_columns
    rich_table = Table(title=title, show_lines=False)
    rich_table.add_column("#", justify="right")
    for column in columns:
        rich_table.add_column(column, justify="left" if column in ("encoder", "worst_attack") else "right")
    for rank, (_, row) in enumerate(table.iterrows(), start=1):
        rich_table.add_row(str(rank), *(_format(row.get(c)) for c in columns))
    console.print(rich_table)


def write_sample_images(data, encoders: dict[str, Any], out_dir: Path, count: int, device) -> dict[str, str]:
    """One picture per encoder: the first ``count`` test face crops and their measurements."""
    from privbench.report.visualize import measurement_to_rgb, save_rgb_png

    if count <= 0 or data is None or data.identities is None:
        return {}
    folder = out_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    images = data.identities.test.images[:count].float().div(255.0).to(device)
    paths = {}
    for label, encoder in encoders.items():
        with torch.no_grad():
            measurements = encoder.to(device).eval()(images).cpu()
        import numpy as np

        tiles = [measurement_to_rgb(m) for m in measurements]
        height = max(t.shape[0] for t in tiles)
        padded = [np.pad(t, ((0, height - t.shape[0]), (0, 1), (0, 0)), constant_values=1.0) for t in tiles]
        strip = np.concatenate(padded, axis=1)
        path = folder / f"{_slug(label)}.png"
        save_rgb_png(strip, path, upscale_to=256)
        paths[label] = f"samples/{path.name}"
    clean_strip = torch.cat([im for im in images.cpu()], dim=2).permute(1, 2, 0).numpy()
    save_rgb_png(clean_strip, folder / "_clean.png", upscale_to=256)
    paths["__clean__"] = "samples/_clean.png"
    return paths


def write_detection_curves(rows: pd.DataFrame, folder: Path) -> dict[str, str]:
    """Per encoder, the face-detection-attack protocols' precision-recall curves and discrete
    ROCs drawn together (2PSC Fig. 4a), from the curves the rows carry; label → path in ``folder``."""
    from privbench.detection import curves_from_rows, plot_protocol_curves

    if rows.empty or "evaluation" not in rows.columns:
        return {}
    paths = {}
    for label in rows.loc[rows["evaluation"] == "face-detection-attack", "encoder_label"].unique():
        curves = curves_from_rows(rows, encoder_label=label)
        if curves:
            path = plot_protocol_curves(curves, folder / f"{_slug(label)}.png", title=f"face detection as an attack: {label}")
            paths[str(label)] = f"{folder.name}/{path.name}"
    return paths


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _reported_html(comparison: pd.DataFrame, index: int) -> list[str]:
    columns = list(comparison.columns)
    parts = [f"<h3>{html.escape(REPORTED_TITLE)}</h3>", f"<table id='r{index}' class='sortable reported'><thead><tr>"]
    for column in columns:
        css = " class='l'" if column in ("encoder", "matches", "reference") else ""
        parts.append(f"<th{css}>{html.escape(column)}</th>")
    parts.append("</tr></thead><tbody>")
    for _, row in comparison.iterrows():
        cells = "".join(
            f"<td{' class=l' if c in ('encoder', 'matches', 'reference') else ''}>{html.escape(_format_reported(row.get(c)))}</td>"
            for c in columns
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    return parts


#: The qualitative figure `privbench figure` writes into an output folder (2PSC Fig. 3 style).
QUALITATIVE_FIGURE = "fig3.png"


def to_html(sections: list[tuple], samples: dict[str, str], figure: str | None = None) -> str:
    """A self-contained page: sortable tables (click a header), the Pareto plots, samples and,
    when given, the qualitative figure."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>privbench leaderboard</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f0f0f0;cursor:pointer;position:sticky;top:0}td.l,th.l{text-align:left}"
        "tr.front td:first-child{font-weight:bold}.samples img{image-rendering:pixelated;height:96px}"
        ".samples td{text-align:left}table.reported td{color:#555;background:#fafafa}</style></head><body>",
        "<h1>privbench leaderboard</h1>",
        "<p><b>utility</b> = task headline metric on measurements ÷ on clean images (identity encoder), "
        "mean over tasks. <b>privacy</b> = 1 − (attack success − chance) ÷ (clean attack success − chance), "
        "clipped to [0, 1], worst case over attacks. Bold rows are on the Pareto front. Click a column "
        "header to sort.</p>",
    ]
    for index, (title, table, plot, *rest) in enumerate(sections):
        comparison = rest[0] if rest else None
        columns = display_columns(table)
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if plot:
            parts.append(f"<img src='{html.escape(plot)}' alt='Pareto plot' style='max-width:700px'>")
        parts.append(f"<table id='t{index}' class='sortable'><thead><tr><th>#</th>")
        for column in columns:
            css = " class='l'" if column in ("encoder", "worst_attack") else ""
            parts.append(f"<th{css}>{html.escape(column)}</th>")
        parts.append("</tr></thead><tbody>")
        for rank, (_, row) in enumerate(table.iterrows(), start=1):
            css = " class='front'" if row.get("pareto") else ""
            cells = "".join(
                f"<td{' class=l' if c in ('encoder', 'worst_attack') else ''}>{html.escape(_format(row.get(c)))}</td>"
                for c in columns
            )
            parts.append(f"<tr{css}><td>{rank}</td>{cells}</tr>")
        parts.append("</tbody></table>")
        if comparison is not None and not comparison.empty:
            parts.extend(_reported_html(comparison, index))
        curves = rest[1] if len(rest) > 1 else {}
        if curves:
            parts.append(
                "<h3>Face detection as an attack (2PSC Fig. 4a)</h3><p>Per encoder: precision-recall and discrete ROC "
                "of the detector trained and scored on clean scenes (clean-reference), the clean detector on the "
                "measurements (pretrained), one trained on the measurements (retrained) and the clean one fine-tuned "
                "on them (finetuned).</p>"
            )
            for label, path in curves.items():
                parts.append(f"<p>{html.escape(label)}<br><img src='{html.escape(path)}' alt='detection curves' style='max-width:800px'></p>")
    if samples:
        parts.append("<h2>Sample measurements</h2><table class='samples'>")
        if "__clean__" in samples:
            parts.append(f"<tr><td>clean input</td><td><img src='{html.escape(samples['__clean__'])}'></td></tr>")
        for label, path in samples.items():
            if label != "__clean__":
                parts.append(f"<tr><td>{html.escape(label)}</td><td><img src='{html.escape(path)}'></td></tr>")
        parts.append("</table>")
    if figure:
        parts.append(
            "<h2>What the cameras show and what attackers get back</h2><p>Clean image, each encoder's measurement "
            "(PSNR / SSIM against the clean image), the reconstruction attack's output, and the boxes of the real "
            "packaged face detectors (made by <code>privbench figure</code>).</p>"
            f"<img src='{html.escape(figure)}' alt='qualitative figure' style='max-width:100%'>"
        )
    parts.append(_SORT_SCRIPT)
    parts.append("</body></html>")
    return "\n".join(parts)


_SORT_SCRIPT = """<script>
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), asc = th.dataset.asc !== 'true';
    rows.sort(function (a, b) {
      var x = a.cells[col].textContent, y = b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      if (!isNaN(nx) && !isNaN(ny)) { return asc ? nx - ny : ny - nx; }
      return asc ? x.localeCompare(y) : y.localeCompare(x);
    });
    th.dataset.asc = asc;
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
</script>"""


def _group_title(key: tuple, rows: pd.DataFrame) -> str:
    benchmark, version, fingerprint = key
    presets = sorted({p for p in rows.get("preset", pd.Series(dtype=object)).dropna()})
    preset = f", preset {'/'.join(presets)}" if presets else ""
    return f"{benchmark} v{version} — dataset {rows['dataset'].iloc[0]} ({fingerprint[:8]}){preset}"


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
    """Write leaderboard.md / .csv, index.html, pareto.png (and sample pictures) into ``out_dir``."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"Cannot create the output folder {str(out)!r}: {error}. Choose another --out.") from None
    measured = results[results["source"].fillna("measured") == "measured"] if "source" in results.columns else results
    groups = split_groups(measured)
    sections, markdown, tables = [], ["# privbench leaderboard", ""], []
    for index, (key, rows) in enumerate(groups):
        table = leaderboard_table(rows)
        section_title = _group_title(key, rows) if len(groups) > 1 or title is None else title
        plot_name = "pareto.png" if index == 0 else f"pareto-{index + 1}.png"
        plot_pareto(table, out / plot_name, title=section_title)
        reported = reported_rows(key[0])
        comparison = comparison_table(reported, table)
        curves = write_detection_curves(rows, out / ("detection" if index == 0 else f"detection-{index + 1}"))
        sections.append((section_title, table, plot_name, comparison, curves))
        markdown.append(to_markdown(table, section_title, comparison))
        group = dict(benchmark=key[0], benchmark_version=key[1], dataset_fingerprint=key[2])
        tables.append(table.assign(**{SOURCE_COLUMN: "measured"}, **group))
        if not reported.empty:
            # Reference rows follow the measured ones in the CSV, marked `reported`, with no scores.
            tables.append(reported.assign(**group))
        if print_terminal:
            print_table(table, section_title, console)
            print_reported_table(key[0], table, console)
    if not groups:
        markdown.append("No results yet.")
    sample_paths = write_sample_images(data, encoders or {}, out, samples, device) if encoders else _existing_samples(out)
    outputs = {
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "html": out / "index.html",
    }
    try:
        outputs["markdown"].write_text("\n".join(markdown))
        (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=SUMMARY_COLUMNS)).to_csv(
            outputs["csv"], index=False
        )
        figure = QUALITATIVE_FIGURE if (out / QUALITATIVE_FIGURE).is_file() else None
        outputs["html"].write_text(to_html(sections, sample_paths, figure))
    except OSError as error:
        raise OutputError(f"Cannot write the leaderboard into {str(out)!r}: {error}.") from None
    if groups:
        outputs["pareto"] = out / "pareto.png"
    return outputs


def _existing_samples(out: Path) -> dict[str, str]:
    folder = out / "samples"
    if not folder.is_dir():
        return {}
    paths = {p.stem: f"samples/{p.name}" for p in sorted(folder.glob("*.png")) if p.stem != "_clean"}
    if (folder / "_clean.png").exists():
        paths = {"__clean__": "samples/_clean.png", **paths}
    return paths
