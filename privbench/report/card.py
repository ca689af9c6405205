"""``privbench card``: a Markdown card that says what a camera is — its physical description and
config, its PSF or kernels and quantizer levels (:meth:`Encoder.diagnostics`), measurements of
sample faces, and how it was designed (the designer's per-cycle curves) — with its hashes, so a
reader can tell exactly which camera a leaderboard row measured."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

from privbench.api.encoder import Encoder

#: Sample faces shown on a card (synthfaces tiny test crops).
CARD_SAMPLES = 4


def write_card(
    encoder: Encoder,
    out_dir: str | Path,
    *,
    label: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``card.md`` and its pictures into ``out_dir``; returns the Markdown file."""
    from privbench.report.show import sample_face, show_encoder
    from privbench.runs.runner import prepare_output_dir

    folder = prepare_output_dir(out_dir)

    title = label or encoder.name
    show_encoder(encoder, sample_face(), folder / "camera.png")
    _write_samples(encoder, folder / "samples.png")
    lines = [
        f"# Camera card: {title}",
        "",
        _summary(encoder),
        "",
        f"- registered encoder: `{encoder.name}` (version {encoder.version})",
        f"- config hash: `{encoder.config_hash()}`; weights hash: "
        f"`{encoder.weights_hash() or 'none (fixed by its config)'}`",
        f"- measurement range: {encoder.measurement_range()}",
        "",
        "## Physical description",
        "",
        "| quantity | value |",
        "|---|---|",
        *(f"| {key} | {_format(value)} |" for key, value in encoder.describe().items()),
        "",
        "## What it measures",
        "",
        "A synthfaces face, its measurement and the encoder's own diagnostics (PSF, kernels, "
        "quantizer thresholds, where it has them):",
        "",
        "![camera](camera.png)",
        "",
        f"Measurements of {CARD_SAMPLES} test faces:",
        "",
        "![samples](samples.png)",
        "",
    ]
    if history:
        _write_history(history, folder / "design.png")
        lines += [
            "## Design",
            "",
            f"The designer's {len(history)} cycles (or epochs), every recorded value:",
            "",
            "![design curves](design.png)",
            "",
            _history_table(history),
            "",
        ]
    path = folder / "card.md"
    path.write_text("\n".join(lines))
    return path


def _summary(encoder: Encoder) -> str:
    doc = inspect.getdoc(type(encoder)) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _write_samples(encoder: Encoder, path: Path) -> None:
    import torch

    from privbench.api.adapter import load_dataset
    from privbench.report.visualize import measurement_to_rgb, sample_strip, save_rgb_png

    faces = load_dataset("synthfaces", {"preset": "tiny"}).identities.test.images[:CARD_SAMPLES]
    with torch.no_grad():
        measured = encoder.eval()(faces.float() / 255.0)
    save_rgb_png(sample_strip([measurement_to_rgb(m) for m in measured]), path, 0)


def _numeric(history: list[dict[str, Any]]) -> dict[str, list[float]]:
    keys = [k for k in history[0] if k not in ("epoch", "cycle", "time_s")]
    return {
        key: [float(r[key]) if isinstance(r.get(key), (int, float)) else math.nan for r in history]
        for key in keys
    }


def _write_history(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _numeric(history)
    figure, axes = plt.subplots(
        1, len(curves), figsize=(3 * len(curves), 2.6), dpi=110, squeeze=False
    )
    steps = list(range(1, len(history) + 1))
    for axis, (name, values) in zip(axes[0], curves.items()):
        axis.plot(steps, values, marker="o", markersize=3)
        axis.set_title(name, fontsize=8)
        axis.set_xlabel("cycle", fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _history_table(history: list[dict[str, Any]]) -> str:
    keys = list(history[0])
    rows = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    rows += ["| " + " | ".join(_format(record.get(k)) for k in keys) + " |" for record in history]
    return "\n".join(rows)
