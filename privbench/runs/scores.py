"""Normalized utility and privacy scores, and the per-encoder leaderboard table.

Definitions (docs/architecture.md; both are tested on hand-made numbers):

- utility of an encoder on a task = (metric − chance) ÷ (clean metric − chance), clipped to
  [0, 1], where the metric is the task's headline on encoded data, the clean metric the same on
  clean data (the ``identity`` encoder, same benchmark, dataset, task config and seed) and
  chance what a task model that learned nothing scores (each task reports it: the majority
  class's accuracy, the most frequent caption's CIDEr-D, AP 0 of no detections). 1 means as
  useful as a clean image, 0 no better than chance; the same formula holds for a
  lower-is-better metric (numerator and denominator change sign together). Undefined (NaN)
  where the task does not beat chance on clean images. An encoder's utility is the mean over
  tasks. (A plain ratio metric ÷ clean metric, without the chance floor, scored a captioner
  writing the most frequent caption 0.73.)
- privacy against an attack = 1 − (attack success − chance) ÷ (clean attack success − chance),
  clipped to [0, 1]: 1 means the attack is reduced to chance, 0 means it is as strong as on
  clean images. An encoder's privacy is its worst case (minimum) over all attacks: the
  strongest attacker decides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

CLEAN_ENCODER = "identity"
#: the 95 % intervals of utility and privacy, and how they were obtained
INTERVAL_COLUMNS = ["utility_lo", "utility_hi", "privacy_lo", "privacy_hi", "interval"]
GROUP_COLUMNS = ["benchmark", "benchmark_version", "dataset_fingerprint"]
ENCODER_COLUMNS = [
    "encoder_label",
    "encoder",
    "encoder_config_hash",
    "encoder_weights_hash",
    "alpha",
    "study",
    "trial",
]


def normalized_utility(
    value: float, clean_value: float, chance: float, higher_is_better: bool = True
) -> float:
    """(value − chance)/(clean value − chance), clipped to [0, 1]: 1 = as useful as a clean
    image, 0 = no better than a task model that learned nothing.

    NaN when a value is missing or the task does not beat chance on clean images (in the
    metric's direction): such a task says nothing about the encoder.
    """
    return float(
        np.clip(_share_of_clean_advantage(value, clean_value, chance, higher_is_better), 0, 1)
    )


def normalized_privacy(
    success: float, clean_success: float, chance: float, higher_is_better: bool = True
) -> float:
    """1 − (success − chance)/(clean success − chance), clipped to [0, 1].

    Undefined (NaN) when the attack does not beat chance even on clean images: such an attack
    says nothing about the encoder. ``higher_is_better``: the attack metric's declared
    direction (its ``MetricSpec``); for a lower-is-better success metric (an attacker's error)
    the same formula holds with both differences changing sign, so it is never scored backwards.
    """
    share = _share_of_clean_advantage(success, clean_success, chance, higher_is_better)
    return float(np.clip(1.0 - share, 0.0, 1.0))


def _share_of_clean_advantage(
    value: float, clean_value: float, chance: float, higher_is_better: bool
) -> float:
    if is_missing(value) or is_missing(clean_value) or is_missing(chance):
        return math.nan
    return float(share_of_clean_advantage(value, clean_value, chance, higher_is_better))


def share_of_clean_advantage(values, clean_values, chance: float, higher_is_better: bool):
    """(value − chance)/(clean value − chance), elementwise on arrays (the bootstrap's
    resamples) or numbers: how much of the clean images' advantage over chance is left; NaN
    where clean images do not beat chance in the metric's direction."""
    advantage = np.asarray(clean_values, dtype=np.float64) - chance
    valid = advantage > 0 if higher_is_better else advantage < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (np.asarray(values, dtype=np.float64) - chance) / advantage
    return np.where(valid, share, np.nan)


def worst_case_privacy(privacies: Iterable[float]) -> float:
    values = [p for p in privacies if not is_missing(p)]
    return min(values) if values else math.nan


def _higher(value) -> bool:
    """A row's declared direction; rows stored before directions were recorded are
    higher-is-better."""
    return True if is_missing(value) else bool(value)


def is_missing(value) -> bool:
    """None or NaN: a value a row or a table does not have."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def evaluation_key(evaluation: str, protocol: str | None) -> str:
    """Column prefix naming one evaluation, e.g. ``face-id[retrained]``."""
    if protocol is None or (isinstance(protocol, float) and math.isnan(protocol)) or protocol == "":
        return evaluation
    return f"{evaluation}[{protocol}]"


def _with_keys(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    rows["eval_key"] = [evaluation_key(e, p) for e, p in zip(rows["evaluation"], rows["protocol"])]
    rows["eval_config_key"] = rows["evaluation_config"].map(
        lambda c: repr(sorted(c.items())) if isinstance(c, dict) else repr(c)
    )
    if "details" not in rows:  # rows built by hand (reported, tests): no per-cell details
        rows["details"] = [{} for _ in range(len(rows))]
    for column in ENCODER_COLUMNS:
        if column not in rows:
            rows[column] = None
    rows[ENCODER_COLUMNS] = (
        rows[ENCODER_COLUMNS].astype(object).where(rows[ENCODER_COLUMNS].notna(), None)
    )
    return rows


def score_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``clean_value`` and ``normalized`` (utility or privacy) to each measured row."""
    if rows.empty:
        return rows.assign(clean_value=[], normalized=[])
    rows = _with_keys(rows)
    clean = rows[rows["encoder"] == CLEAN_ENCODER]
    clean_key = GROUP_COLUMNS + ["eval_key", "evaluation_version", "eval_config_key", "seed"]
    reference = (
        clean.groupby(clean_key, dropna=False)["headline_value"]
        .mean()
        .rename("clean_value")
        .reset_index()
    )
    rows = rows.merge(reference, on=clean_key, how="left")
    # one text key per (evaluation, config, seed, …): pairs a cell with its clean reference
    rows["clean_key_text"] = [
        repr(tuple(values)) for values in rows[clean_key].itertuples(index=False)
    ]
    normalized = []
    for row in rows.itertuples(index=False):
        score = normalized_utility if row.role == "utility" else normalized_privacy
        normalized.append(
            score(row.headline_value, row.clean_value, row.chance, _higher(row.higher_is_better))
        )
    rows["normalized"] = normalized
    return rows


def leaderboard_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per encoder configuration: encoder, utility, privacy, worst attack, raw metrics.

    Seeds are averaged. Rows of different benchmark versions or datasets are never mixed: pass
    the rows of one (benchmark, version, dataset) group (see :func:`split_groups`). Reference rows
    (``source == "reported"``: a paper's own numbers) are never ranked: they are dropped here, so
    they enter neither the normalized scores nor the Pareto front.
    """
    if "source" in rows.columns:
        rows = rows[rows["source"].fillna("measured") != "reported"]
    if rows.empty:
        return pd.DataFrame(columns=["encoder", "utility", "privacy", "worst_attack"])
    from privbench.runs.intervals import BootstrapIntervals  # it builds on this module

    scored = score_rows(rows)
    bootstrap = BootstrapIntervals(scored[scored["encoder"] == CLEAN_ENCODER])
    records = []
    for key, group in scored.groupby(ENCODER_COLUMNS, dropna=False, sort=False):
        label, name, config_hash, weights_hash, alpha, study, trial = key
        record: dict = {
            "encoder": label,
            "encoder_name": name,
            "config_hash": config_hash,
            "weights_hash": weights_hash,
            "alpha": alpha,
            "study": study,
            "trial": trial,
        }
        utilities, privacies = {}, {}
        for eval_key, cells in group.groupby("eval_key", sort=False):
            role = cells["role"].iloc[0]
            score = float(cells["normalized"].mean())
            (utilities if role == "utility" else privacies)[eval_key] = score
            metric_means: dict[str, list[float]] = {}
            for metrics in cells["metrics"]:
                for metric, value in metrics.items():
                    if isinstance(value, (int, float)):
                        metric_means.setdefault(metric, []).append(float(value))
            for metric, values in metric_means.items():
                record[f"{eval_key}.{metric}"] = float(np.mean(values))
            if role == "privacy":
                record[f"{eval_key}.privacy"] = score
        util_values = [u for u in utilities.values() if not math.isnan(u)]
        record["utility"] = float(np.mean(util_values)) if util_values else math.nan
        record["privacy"] = worst_case_privacy(privacies.values())
        finite = {k: v for k, v in privacies.items() if not math.isnan(v)}
        record["worst_attack"] = min(finite, key=finite.get) if finite else None
        record["still_improving"] = _still_improving_attacks(group)
        record["seeds"] = int(group["seed"].nunique())
        record.update(_interval(group, bootstrap, record["seeds"]))
        records.append(record)
    table = pd.DataFrame.from_records(records)
    front = [
        table.index[i]
        for i in pareto_front_indices(table["utility"].to_numpy(), table["privacy"].to_numpy())
    ]
    table["pareto"] = table.index.isin(front)
    headlines = [
        f"{key}.{metric}"
        for key, metric in dict(zip(scored["eval_key"], scored["headline_metric"])).items()
        if f"{key}.{metric}" in table.columns
    ]
    leading = ["encoder", "utility", "privacy", "worst_attack", "pareto"] + headlines
    leading += INTERVAL_COLUMNS
    rest = [c for c in table.columns if c not in leading]
    # raw metrics by evaluation; the baselines (chance-level scores) after the measured ones
    metric_columns = sorted((c for c in rest if "." in c), key=lambda c: (".baseline" in c, c))
    meta = [c for c in rest if c not in metric_columns]
    table = table[leading + metric_columns + meta]
    # ties are ordered by label, so that the same rows rank alike whatever order they come in
    # (a store's insertion order, a folder of entries)
    table = table.sort_values(
        ["privacy", "utility", "encoder"], ascending=[False, False, True], na_position="last"
    ).reset_index(drop=True)
    # a rank is separated from the next one when their privacy intervals do not overlap (None:
    # an interval is unknown; the last rank has no next one)
    low, below = table["privacy_lo"].tolist(), table["privacy_hi"].shift(-1).tolist()
    table["privacy_separated"] = [
        True
        if index == len(low) - 1
        else (None if is_missing(lo) or is_missing(next_hi) else bool(lo > next_hi))
        for index, (lo, next_hi) in enumerate(zip(low, below))
    ]
    table.attrs["headlines"] = headlines  # every view shows them right after the summary
    return table


def _still_improving_attacks(group: pd.DataFrame) -> str | None:
    """The attacks of an encoder whose model was still improving at its last epoch
    (:func:`privbench.nn.epochs.training_curve`): a longer budget might succeed more, so their
    privacy may be overstated."""
    keys = set()
    for row in group.itertuples(index=False):
        curves = row.details.get("curves", []) if isinstance(row.details, dict) else []
        if row.role == "privacy" and any(curve.get("still_improving") for curve in curves):
            keys.add(row.eval_key)
    return ", ".join(sorted(keys)) or None


def _interval(group: pd.DataFrame, bootstrap, seeds: int) -> dict:
    """The encoder's 95 % intervals (:mod:`privbench.runs.intervals`): over seeds when there are
    several, a bootstrap over test items (``bootstrap``) when there is one."""
    from privbench.runs.intervals import t_interval

    if seeds < 2:
        return bootstrap.interval(group)
    per_seed = {"utility": [], "privacy": []}
    for _, cells in group.groupby("seed"):
        utility = cells.loc[cells["role"] == "utility", "normalized"].dropna()
        per_seed["utility"].append(float(utility.mean()) if len(utility) else math.nan)
        privacy = cells.loc[cells["role"] != "utility", "normalized"]
        per_seed["privacy"].append(worst_case_privacy(privacy.tolist()))
    out: dict = {"interval": f"Student t over {seeds} seeds"}
    for name, values in per_seed.items():
        out[f"{name}_lo"], out[f"{name}_hi"] = t_interval(values)
    return out


def split_groups(rows: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """Rows split by (benchmark, version, dataset fingerprint): groups that may
    be ranked together."""
    if rows.empty:
        return []
    return [(key, group) for key, group in rows.groupby(GROUP_COLUMNS, sort=False)]


def pareto_front_indices(utility: np.ndarray, privacy: np.ndarray) -> list[int]:
    """Indices of points not dominated in (utility, privacy), both maximized; NaNs excluded.

    A point is dominated if another is at least as good in both and strictly better in one.
    """
    points = [
        (i, u, p)
        for i, (u, p) in enumerate(zip(utility, privacy))
        if not (math.isnan(u) or math.isnan(p))
    ]
    front = []
    for i, u, p in points:
        dominated = any(
            (u2 >= u and p2 >= p) and (u2 > u or p2 > p) for j, u2, p2 in points if j != i
        )
        if not dominated:
            front.append(i)
    return front
