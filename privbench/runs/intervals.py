"""95 % confidence intervals of each encoder's utility and privacy on the leaderboard.

Every leaderboard number is a training run scored on one test split, so two encoders can be
ranked apart by the luck of the test items or of one seed. privbench reports both scores with
an interval and says which one it is:

- **several seeds**: the mean over seeds ± Student's t (95 %, n − 1 degrees of freedom) × the
  standard error of the per-seed scores (training and test variation together);
- **one seed**: a paired percentile bootstrap over the test items (``RESAMPLES`` resamples).
  Each evaluation's cells keep their headline per test item
  (:class:`~privbench.api.items.ItemScores`); a resample draws the test items of an evaluation
  once and uses the same draw for the encoder and for the clean camera it is normalized by (and
  for every encoder, so intervals of one leaderboard are comparable), recomputes each task's
  utility and each attack's privacy (:mod:`privbench.runs.scores`), and takes the mean over
  tasks and the worst case over attacks, as the point scores do. It covers the test-set
  variation only, not the training run's: the page says so. Cells without per-item scores
  (rows stored before they existed) enter with their point value.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import pandas as pd

from privbench.api.items import ItemScores
from privbench.runs.scores import share_of_clean_advantage

RESAMPLES = 1000
#: how each interval was obtained (the leaderboard's ``interval`` column)
BOOTSTRAP = "bootstrap over test items (1 seed)"


def t_interval(values: list[float]) -> tuple[float, float]:
    """The 95 % Student-t interval of the mean of ``values`` (NaNs dropped)."""
    from scipy import stats

    finite = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if finite.size < 2:
        return (math.nan, math.nan)
    half = stats.t.ppf(0.975, finite.size - 1) * finite.std(ddof=1) / math.sqrt(finite.size)
    return (float(finite.mean() - half), float(finite.mean() + half))


def _items(details) -> ItemScores | None:
    if isinstance(details, dict) and isinstance(details.get("items"), dict):
        return ItemScores.from_dict(details["items"])
    return None


def _draws(key: str, items: int, resamples: int) -> np.ndarray:
    """How often each of ``items`` test items is drawn in each resample, the same for every
    encoder scored on that evaluation (seeded by the evaluation's key)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    generator = np.random.default_rng(seed)
    return generator.multinomial(items, np.full(items, 1.0 / items), size=resamples)


def _normalized(values, clean, chance, higher_is_better, role) -> np.ndarray:
    """:func:`~privbench.runs.scores.normalized_utility`/``normalized_privacy`` on arrays."""
    share = share_of_clean_advantage(values, clean, chance, higher_is_better)
    return np.clip(share if role == "utility" else 1.0 - share, 0.0, 1.0)


class BootstrapIntervals:
    """The one-seed bootstrap of a scored table (``score_rows``' output), encoder by encoder;
    ``clean``: the clean camera's scored rows, which each cell is normalized by."""

    def __init__(self, clean: pd.DataFrame, resamples: int = RESAMPLES):
        self.resamples = resamples
        self._clean = {row.clean_key_text: row for row in clean.itertuples(index=False)}
        self._clean_resampled: dict[str, np.ndarray] = {}
        self._draw_cache: dict[str, np.ndarray] = {}

    def _resampled_scores(self, row) -> np.ndarray | None:
        """One cell's normalized score per resample; None where it has no items."""
        items = _items(getattr(row, "details", None))
        clean_row = self._clean.get(row.clean_key_text)
        clean_items = _items(getattr(clean_row, "details", None))
        if items is None or clean_items is None or len(items) != len(clean_items):
            return None
        key = row.clean_key_text
        if key not in self._draw_cache:
            self._draw_cache[key] = _draws(key, len(items), self.resamples)
            self._clean_resampled[key] = clean_items.resampled(self._draw_cache[key])
        values = items.resampled(self._draw_cache[key])
        higher = True if row.higher_is_better is None else bool(row.higher_is_better)
        chance = float(row.chance) if row.chance is not None else math.nan
        return _normalized(values, self._clean_resampled[key], chance, higher, row.role)

    def interval(self, group: pd.DataFrame) -> dict[str, float | str]:
        """utility_lo/hi, privacy_lo/hi and ``interval`` (how) of one encoder's cells (one
        seed). A cell without per-item scores enters with its point value; an encoder none of
        whose cells has them gets no interval (NaN)."""
        utilities, privacies = [], []
        resampled = missing = 0
        for row in group.itertuples(index=False):
            if row.role != "utility" and (row.chance is None or _nan(row.chance)):
                continue  # never scored (the clean-reference protocol)
            scores = self._resampled_scores(row)
            if scores is None:
                missing += 1
                scores = np.full(self.resamples, float(row.normalized))
            else:
                resampled += 1
            (utilities if row.role == "utility" else privacies).append(scores)
        if not resampled:
            nan = math.nan
            return {
                "utility_lo": nan,
                "utility_hi": nan,
                "privacy_lo": nan,
                "privacy_hi": nan,
                "interval": "none (rows without per-item scores)",
            }
        out: dict[str, float | str] = {
            "interval": BOOTSTRAP if not missing else f"{BOOTSTRAP}; {missing} cells without"
        }
        for name, scores, combine in (
            ("utility", utilities, np.nanmean),
            ("privacy", privacies, np.nanmin),
        ):
            stacked = np.vstack(scores) if scores else np.full((1, self.resamples), np.nan)
            with warnings.catch_warnings():  # an encoder without any defined score: all NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                per_resample = combine(stacked, axis=0)
            finite = per_resample[~np.isnan(per_resample)]
            low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (math.nan, math.nan)
            out[f"{name}_lo"], out[f"{name}_hi"] = float(low), float(high)
        return out


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)
