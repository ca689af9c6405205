"""What the training loop (:func:`privbench.nn.fit.fit`) does with each epoch's record: stop a
diverged training (a NaN network scores at chance, which a privacy benchmark would read as
privacy), and keep the run's curve for the result row."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from privbench.api.errors import PrivbenchError

if TYPE_CHECKING:
    from privbench.nn.fit import FitHistory


class TrainingDivergedError(PrivbenchError):
    """A training run's loss or validation metric became NaN or infinite: its model is not a
    result (a NaN network scores at chance, which a privacy benchmark would read as privacy),
    so the cell fails with this reason instead of storing a row."""


#: A validation loss this many times its first epoch's (and above 1) is a diverged training.
DIVERGED_LOSS_FACTOR = 100.0


def check_diverged(name: str, epoch: int, record: Mapping[str, Any], first: Mapping) -> None:
    """Raise :class:`TrainingDivergedError` when an entry of an epoch's record is not finite, or
    its ``val_loss`` is more than :data:`DIVERGED_LOSS_FACTOR` times the first epoch's (an
    overfitting model's validation loss grows a few times, a diverged one's by orders of
    magnitude: a learning rate of 1.0 took one to 8.6e9 from 3.7)."""
    bad = {
        key: value
        for key, value in record.items()
        if isinstance(value, float) and not math.isfinite(value)
    }
    start, now = first.get("val_loss"), record.get("val_loss")
    if isinstance(start, float) and isinstance(now, float) and math.isfinite(now):
        if now > DIVERGED_LOSS_FACTOR * max(start, 1.0):
            bad["val_loss"] = now
    if bad:
        listed = ", ".join(f"{key}={value:.4g}" for key, value in sorted(bad.items()))
        started = f" (first epoch: val_loss={start:.4g})" if "val_loss" in bad and start else ""
        raise TrainingDivergedError(
            f"Training {name!r} diverged at epoch {epoch}: {listed}{started}. Lower the learning "
            "rate (or check the inputs for NaN); the cell is not stored."
        )


def training_curve(name: str, history: FitHistory) -> dict[str, Any]:
    """One run of :func:`fit` as a result row keeps it: its per-epoch records (non-finite values
    as None: JSON and PostgreSQL have no NaN), the best epoch, whether it stopped early, and
    ``still_improving``: it ran every epoch it was given and its last was its best, so a longer
    budget might have done better (for an attacker: privacy may be overstated)."""
    epochs = [
        {
            key: (value if not isinstance(value, float) or math.isfinite(value) else None)
            for key, value in record.items()
        }
        for record in history.epochs
    ]
    return {
        "name": name,
        "epochs": epochs,
        "best_epoch": history.best_epoch,
        "stopped_early": history.stopped_early,
        "still_improving": bool(
            len(epochs) > 1 and not history.stopped_early and history.best_epoch == len(epochs)
        ),
    }
