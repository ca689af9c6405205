"""Figures of detection curves: several protocols' precision-recall curves and discrete ROCs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from privbench.api.errors import InputError


def plot_protocol_curves(
    curves: dict[str, dict[str, Any]], path: str | Path, title: str = ""
) -> Path:
    """Precision-recall curves (left) and discrete ROCs (right) of several protocols, like 2PSC
    Fig. 4a; the ROC is drawn up to 2 false positives per scene.

    ``curves``: protocol name → the ``details`` of a detection result row (or anything holding
    its ``precision_recall`` and ``discrete_roc`` entries, see
    :func:`~privbench.detection.metrics.detection_report`).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not curves:
        raise InputError("plot_protocol_curves needs at least one protocol's curves.")
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    images = 0
    drawn: dict[tuple, str] = {}  # curve values → the first protocol drawn with them
    for name, details in curves.items():
        if "precision_recall" not in details or "discrete_roc" not in details:
            raise InputError(
                f"curves of {name!r} lack 'precision_recall'/'discrete_roc' (pass the details "
                "of a detection result)."
            )
        pr, roc = details["precision_recall"], details["discrete_roc"]
        ap50 = sum(pr["interpolated_precision"]) / len(pr["interpolated_precision"])
        same = _identical_to(drawn, name, pr, roc)
        hidden = f", identical to {same}: hidden under it" if same else ""
        left.plot(
            pr["recall_levels"],
            pr["interpolated_precision"],
            label=f"{name} (AP50 {100 * ap50:.1f}{hidden})",
            linestyle="--" if same else "-",
        )
        right.plot(
            roc["false_positives"],
            roc["true_positive_rate"],
            label=f"{name}{' (= ' + same + ')' if same else ''}",
            linestyle="--" if same else "-",
        )
        images = max(images, int(roc.get("images", 0)))
    if (
        images
    ):  # the low false-positive end, where detectors differ (FDDB plots up to ~0.7 FP per image)
        right.set_xlim(0, 2 * images)
    left.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="precision-recall (IoU 0.5)",
    )
    right.set(
        xlabel="false positives",
        ylabel="true positive rate",
        ylim=(0, 1.02),
        title="discrete ROC (FDDB-style matching)",
    )
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left" if axis is left else "lower right")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _identical_to(drawn: dict[tuple, str], name: str, pr: dict, roc: dict) -> str | None:
    """The protocol already drawn with exactly these curves (then this one would hide under
    it without a word: the legend says so and the line is dashed), registering this one."""
    key = tuple(
        tuple(values)
        for values in (
            pr["recall_levels"],
            pr["interpolated_precision"],
            roc["false_positives"],
            roc["true_positive_rate"],
        )
    )
    if key in drawn:
        return drawn[key]
    drawn[key] = name
    return None


def curves_from_rows(
    rows,
    encoder: str | None = None,
    evaluation: str = "face-detection-attack",
    *,
    encoder_label: str | None = None,
) -> dict[str, dict]:
    """Protocol → details of the store rows of ``evaluation`` (one encoder, by registered name or
    by leaderboard label), ready for plotting; rows without curves are left out."""
    selected = rows[rows["evaluation"] == evaluation]
    if encoder is not None:
        selected = selected[selected["encoder"] == encoder]
    if encoder_label is not None:
        selected = selected[selected["encoder_label"] == encoder_label]
    return {
        str(row.protocol): row.details
        for row in selected.itertuples(index=False)
        if isinstance(row.details, dict)
        and "precision_recall" in row.details
        and "discrete_roc" in row.details
    }
