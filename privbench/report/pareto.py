"""Privacy-utility Pareto fronts: the non-dominated set and its plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from privbench.runs.scores import pareto_front_indices


def pareto_front(
    table: pd.DataFrame, utility: str = "utility", privacy: str = "privacy"
) -> pd.DataFrame:
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
    valid = table[
        np.isfinite(table["utility"].astype(float)) & np.isfinite(table["privacy"].astype(float))
    ]
    missing = table.drop(valid.index)
    front = pareto_front(valid) if not valid.empty else valid
    on_front = set(front.index)
    axes.set_xlim(*_utility_limits(valid["utility"]))
    axes.set_ylim(-0.05, 1.08)
    for index, row in valid.iterrows():
        style = {"s": 70, "zorder": 3, "edgecolor": "black", "linewidth": 0.6}
        color = "tab:red" if index in on_front else "tab:blue"
        _error_bars(axes, row, color)
        axes.scatter(row["utility"], row["privacy"], color=color, **style)
    _annotate_without_overlap(axes, valid, figure.dpi)
    if len(front) >= 1:
        xs, ys = _staircase(front["utility"].to_numpy(float), front["privacy"].to_numpy(float))
        axes.plot(
            xs, ys, color="tab:red", linewidth=1.5, zorder=2, label="Pareto front (non-dominated)"
        )
    axes.set_xlabel("utility (share of the clean images' advantage over chance; mean over tasks)")
    axes.set_ylabel("privacy (1 − normalized attack success; worst case over attacks)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if len(front):
        axes.legend(loc="lower left", fontsize=8)
    methods = sorted({str(m) for m in table.get("interval", pd.Series(dtype=object)).dropna()})
    if methods:
        axes.text(
            0.01,
            0.99,
            "error bars: 95 % intervals, " + "; ".join(methods),
            transform=axes.transAxes,
            ha="left",
            va="top",
            fontsize=7,
            color="gray",
        )
    if not missing.empty:
        names = ", ".join(str(n) for n in missing["encoder"])
        axes.text(
            0.99,
            0.01,
            f"not plotted (score undefined): {names}",
            transform=axes.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="gray",
        )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def _error_bars(axes, row: pd.Series, color: str) -> None:
    """The encoder's 95 % intervals of utility (x) and privacy (y), where the table has them."""
    bounds = [row.get(name) for name in ("utility_lo", "utility_hi", "privacy_lo", "privacy_hi")]
    if any(b is None or not np.isfinite(float(b)) for b in bounds):
        return
    u_lo, u_hi, p_lo, p_hi = (float(b) for b in bounds)
    utility, privacy = float(row["utility"]), float(row["privacy"])
    axes.errorbar(
        utility,
        privacy,
        xerr=[[max(0.0, utility - u_lo)], [max(0.0, u_hi - utility)]],
        yerr=[[max(0.0, privacy - p_lo)], [max(0.0, p_hi - privacy)]],
        fmt="none",
        ecolor=color,
        elinewidth=0.9,
        capsize=2,
        alpha=0.7,
        zorder=2,
    )


#: The line from a label that had to move to its point.
LEADER_LINE = {"arrowstyle": "-", "color": "gray", "lw": 0.6, "shrinkA": 0, "shrinkB": 3}


def _annotate_without_overlap(axes, rows: pd.DataFrame, dpi: float, fontsize: float = 8) -> None:
    """Label each point with its encoder; a label that would overlap one already placed moves a
    line up (down near the top), with a leader line to its point, so that clustered encoders stay
    readable; labels that would leave the plot on the right go to the left of their point."""
    line = fontsize * 1.35  # points
    char = fontsize * 0.55
    (_, _), (right, top) = axes.transAxes.transform([(0, 0), (1, 1)]) * 72.0 / dpi
    placed: list[tuple[float, float, float, float]] = []
    pixels = axes.transData.transform(rows[["utility", "privacy"]].to_numpy(float)) * 72.0 / dpi
    order = sorted(range(len(rows)), key=lambda i: (pixels[i][1], -pixels[i][0]))
    for i in order:
        label = str(rows["encoder"].iloc[i])
        x, y = pixels[i]
        width = char * len(label)
        dx = 6.0 if x + 6 + width <= right else -6.0 - width
        direction = -1.0 if y > top - 4 * line else 1.0
        for step in range(40):
            shift = direction * step * line
            box = (x + dx, y + 5 + shift, x + dx + width, y + 5 + shift + line)
            if not any(
                box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed
            ):
                break
        placed.append(box)
        axes.annotate(
            label,
            (rows["utility"].iloc[i], rows["privacy"].iloc[i]),
            textcoords="offset points",
            xytext=(dx if dx > 0 else -6.0, 5 + shift),
            ha="left" if dx > 0 else "right",
            fontsize=fontsize,
            arrowprops=LEADER_LINE if shift else None,
        )


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


#: Reference point of the hypervolume: the worst possible encoder (no utility, no privacy).
#: Both normalized scores live in [0, 1] (utility may exceed 1 slightly when an encoder helps
#: a task), so with this point the hypervolume of a single perfect encoder (1, 1) is 1.
HYPERVOLUME_REFERENCE = (0.0, 0.0)


def hypervolume(utility, privacy, reference: tuple[float, float] = HYPERVOLUME_REFERENCE) -> float:
    """Area dominated by the points (both objectives maximized) and bounded by ``reference``.

    Points not better than the reference in both objectives contribute nothing; NaNs are ignored.
    """
    ref_u, ref_p = reference
    points = sorted(
        (
            (float(u), float(p))
            for u, p in zip(utility, privacy)
            if finite(u) and finite(p) and u > ref_u and p > ref_p
        ),
        key=lambda point: (-point[0], -point[1]),
    )
    area, best_privacy = 0.0, ref_p
    for u, p in points:  # sweep from the highest utility down, adding the new privacy band
        if p > best_privacy:
            area += (u - ref_u) * (p - best_privacy)
            best_privacy = p
    return area


def _utility_limits(utility: pd.Series) -> tuple[float, float]:
    """x-axis limits covering [0, 1] and every plotted utility (which may exceed 1), with a
    margin."""
    if utility.empty:
        return -0.05, 1.05
    return min(-0.05, float(utility.min()) - 0.05), max(1.05, float(utility.max()) + 0.05)


def plot_fronts(
    fronts: dict[str, pd.DataFrame],
    path: str | Path,
    title: str = "Pareto fronts",
    label_column: str | None = "alpha",
) -> Path:
    """Overlay several encoders' fronts: points of each family, its non-dominated steps, labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(figsize=(7.5, 6), dpi=130)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    plotted: list[pd.Series] = []
    for index, (name, table) in enumerate(fronts.items()):
        color = colors[index % len(colors)]
        valid = table[
            np.isfinite(table["utility"].astype(float))
            & np.isfinite(table["privacy"].astype(float))
        ]
        if valid.empty:
            continue
        front = pareto_front(valid)
        volume = hypervolume(valid["utility"], valid["privacy"])
        axes.scatter(valid["utility"], valid["privacy"], color=color, alpha=0.35, s=25)
        xs, ys = _staircase(front["utility"].to_numpy(float), front["privacy"].to_numpy(float))
        axes.plot(
            xs,
            ys,
            color=color,
            linewidth=1.6,
            marker="o",
            markersize=5,
            label=f"{name} (HV {volume:.3f})",
        )
        plotted.append(valid["utility"])
        if label_column and label_column in valid:
            for _, row in valid.iterrows():
                if finite(row[label_column]):
                    axes.annotate(
                        f"α={row[label_column]:g}",
                        (row["utility"], row["privacy"]),
                        textcoords="offset points",
                        xytext=(5, 4),
                        fontsize=7,
                        color=color,
                    )
    axes.set_xlabel("utility (normalized to the clean camera)")
    axes.set_ylabel("privacy (worst case over attacks)")
    axes.set_title(title)
    # The full [0, 1] square, as for the leaderboard plot: fronts are compared at one scale,
    # and a zoomed axis would blow up differences of a fraction of a percent.
    axes.set_xlim(*_utility_limits(pd.concat(plotted) if plotted else pd.Series(dtype=float)))
    axes.set_ylim(-0.05, 1.08)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
