"""Privacy-utility Pareto fronts: the non-dominated set and its plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from privbench.scores import pareto_front_indices


def pareto_front(table: pd.DataFrame, utility: str = "utility", privacy: str = "privacy") -> pd.DataFrame:
    """Rows of ``table`` on the privacy-utility front (both maximized), sorted by utility."""
    indices = pareto_front_indices(table[utility].to_numpy(float), table[privacy].to_numpy(float))
    return table.iloc[indices].sort_values(utility)


def plot_pareto(table: pd.DataFrame, path: str | Path, title: str = "Privacy vs utility") -> Path:
    """Scatter of encoders (utility x, privacy y) with the non-dominated front drawn as steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(figsize=(7.5, 6), dpi=130)
    valid = table[np.isfinite(table["utility"].astype(float)) & np.isfinite(table["privacy"].astype(float))]
    missing = table.drop(valid.index)
    front = pareto_front(valid) if not valid.empty else valid
    on_front = set(front.index)
    for index, row in valid.iterrows():
        style = dict(s=70, zorder=3, edgecolor="black", linewidth=0.6)
        color = "tab:red" if index in on_front else "tab:blue"
        axes.scatter(row["utility"], row["privacy"], color=color, **style)
        axes.annotate(
            str(row["encoder"]),
            (row["utility"], row["privacy"]),
            textcoords="offset points",
            xytext=(6, 5),
            fontsize=8,
        )
    if len(front) >= 1:
        xs, ys = _staircase(front["utility"].to_numpy(float), front["privacy"].to_numpy(float))
        axes.plot(xs, ys, color="tab:red", linewidth=1.5, zorder=2, label="Pareto front (non-dominated)")
    axes.set_xlabel("utility (task metric on measurements ÷ on clean images; mean over tasks)")
    axes.set_ylabel("privacy (1 − normalized attack success; worst case over attacks)")
    axes.set_title(title)
    upper_x = max(1.05, float(valid["utility"].max()) + 0.05) if not valid.empty else 1.05
    axes.set_xlim(min(0.0, float(valid["utility"].min()) - 0.05) if not valid.empty else 0.0, upper_x)
    axes.set_ylim(-0.05, 1.08)
    axes.grid(True, alpha=0.3)
    if len(front):
        axes.legend(loc="lower left", fontsize=8)
    if not missing.empty:
        names = ", ".join(str(n) for n in missing["encoder"])
        axes.text(0.99, 0.01, f"not plotted (score undefined): {names}", transform=axes.transAxes,
                  ha="right", va="bottom", fontsize=7, color="gray")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def _staircase(utility: np.ndarray, privacy: np.ndarray) -> tuple[list[float], list[float]]:
    """Step line through front points sorted by utility (privacy decreases as utility grows)."""
    order = np.argsort(utility)
    xs: list[float] = []
    ys: list[float] = []
    for k, i in enumerate(order):
        if k > 0:
            xs.append(float(utility[i]))
            ys.append(float(privacy[order[k - 1]]))
        xs.append(float(utility[i]))
        ys.append(float(privacy[i]))
    return xs, ys


def finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
