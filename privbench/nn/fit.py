"""The one training loop of privbench: every model an evaluation or a designer trains goes through
:func:`fit`.

A trainer supplies only what is its own — one epoch of optimization steps (``train_epoch``) and
a validation score (``validate``) — and :func:`fit` owns the rest, so that it is written once:

- per-epoch seeding: epoch ``e`` of a run seeded ``s`` draws its batch order from
  ``torch.Generator().manual_seed(epoch_seed(s, e, salt))`` and seeds torch's global generator
  (dropout masks, sensor noise) with the same value, so a resumed run replays the same epochs;
  or, with a run-long ``generator``, every epoch continues that one (checkpointed with the run)
  and torch's global generator is left to the caller (the designers' and decoder's order);
- early stopping: the best validation score (higher is better; tuples compare
  lexicographically) is kept with a copy of its weights, ``patience`` epochs in a row without
  a better one stop the run, and the best weights are restored at the end (``keep_best``);
- atomic checkpoint/resume after every epoch (:class:`TrainingState`), guarded by a
  signature of everything the run depends on;
- progress (one bar per run, started at the resumed epoch) and the history: one record per
  epoch (train metrics, validation metrics, learning rate, seconds), kept in full.

The one-cycle schedule (:func:`one_cycle`), the shuffled batches (:func:`shuffled_batches`) and
the paired-split check (:func:`check_same_encoder`) are the other pieces every trainer shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch

from privbench.api.cache import atomic_torch_save, load_verified
from privbench.api.errors import DataError
from privbench.api.evaluation import RunContext
from privbench.api.profiling import section
from privbench.nn.epochs import check_diverged, training_curve

Score = Any  # a float, or a tuple of floats compared lexicographically

#: Default salt of :func:`epoch_seed` (the classifier's and captioner's batch orders).
DEFAULT_EPOCH_SALT = 12345


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class StateGroup:
    """Several optimizers or schedules checkpointed as one (e.g. a designer's alternating steps)."""

    def __init__(self, **members: Stateful | None) -> None:
        self.members = {name: member for name, member in members.items() if member is not None}

    def state_dict(self) -> dict[str, Any]:
        return {name: member.state_dict() for name, member in self.members.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, member in self.members.items():
            member.load_state_dict(state[name])


class HistorySummary:
    """``summary()`` of a training-history dataclass: its fields in declaration order, ``epochs``
    as their count (``epochs_run``) and ``wall_time_s`` rounded (``train_time_s``) — compact and
    JSON-friendly for result rows. The full per-epoch records stay in ``epochs``."""

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for item in fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if item.name == "epochs":
                result["epochs_run"] = len(value)
            elif item.name == "wall_time_s":
                result["train_time_s"] = round(value, 3)
            else:
                result[item.name] = value
        return result


@dataclass
class FitHistory(HistorySummary):
    """The fields every history has; trainers subclass it to add their ``best_*`` values."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    wall_time_s: float = 0.0


# -- shared pieces -------------------------------------------------------------------------
def epoch_seed(seed: int, epoch: int, salt: int = DEFAULT_EPOCH_SALT) -> int:
    """Seed of one epoch's batch order; ``salt`` keeps different training loops' orders apart."""
    return (int(seed) * 1_000_003 + epoch * 7919 + salt) % (2**63 - 1)


def shuffled_batches(
    count: int, batch_size: int, generator: torch.Generator, *, drop_single: bool = True
) -> list[torch.Tensor]:
    """One epoch's mini-batches of indices into ``count`` samples, in ``generator``'s order.

    A trailing batch of one sample is dropped (it breaks batch norm), unless it is the only one
    or ``drop_single`` is False (the designers and the reconstruction decoder keep it).
    """
    order = torch.randperm(count, generator=generator)
    batches = list(order.split(batch_size))
    if drop_single and len(batches) > 1 and batches[-1].numel() < 2:
        batches.pop()
    return batches


def steps_per_epoch(count: int, batch_size: int) -> int:
    """How many batches :func:`shuffled_batches` yields per epoch (independent of the order)."""
    return len(shuffled_batches(count, batch_size, torch.Generator().manual_seed(0)))


def one_cycle(
    optimizer: torch.optim.Optimizer,
    max_lr: float | Sequence[float],
    total_steps: int,
    *,
    final_div_factor: float = 1e4,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """One-cycle schedule (Smith & Topin 2019): 20 % linear warm-up to ``max_lr``, cosine decay to
    ``max_lr`` / (25 · ``final_div_factor``); one step per optimizer step (the detector decays
    to ``max_lr`` / (25 · 1e3))."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=list(max_lr) if isinstance(max_lr, (list, tuple)) else max_lr,
        total_steps=total_steps,
        pct_start=0.2,
        anneal_strategy="cos",
        div_factor=25.0,
        final_div_factor=final_div_factor,
    )


def check_same_encoder(train_x: torch.Tensor, val_x: torch.Tensor, name: str) -> None:
    """Training and validation measurements must have one shape (they went through one encoder)."""
    if val_x.shape[1:] != train_x.shape[1:]:
        raise DataError(
            f"{name}: validation measurements have shape {tuple(val_x.shape[1:])} but training "
            f"measurements {tuple(train_x.shape[1:])}; "
            "both splits must go through the same encoder."
        )


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state dict."""
    return {
        key: value.detach().to("cpu", copy=True).contiguous()
        for key, value in model.state_dict().items()
    }


# -- resumable state -----------------------------------------------------------------------
class TrainingState:
    """The resumable state of one run of :func:`fit`, checkpointed after every epoch.

    The checkpoint at ``path`` is one dict ``{signature, epoch, finished, model, optimizer,
    scheduler, best_state, best_score, bad_epochs, history}`` (plus ``generator``: the state of
    a run-long batch-order generator, when there is one) written atomically; :meth:`resume`
    reloads it only when its signature matches (same data, config, model and seed), and an
    unreadable file (a write cut short by a kill) means starting over.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Stateful,
        scheduler: Stateful | None,
        history: FitHistory,
        *,
        signature: str,
        path: Path | None,
        ctx: RunContext,
        name: str,
        worst_score: Score,
        generator: torch.Generator | None = None,
        min_delta: float = 0.0,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.generator, self.min_delta = generator, min_delta
        self.scheduler = scheduler if scheduler is not None else StateGroup()
        self.history = history
        self.signature, self.path, self.ctx, self.name = signature, path, ctx, name
        self.best_state = cpu_state(model)
        self.best_score = worst_score
        self.bad_epochs = 0
        self.epoch = 0
        self.finished = False

    def resume(self) -> bool:
        """Load the checkpoint at ``path`` if readable and its signature matches; True if loaded."""
        if self.path is None or not self.path.exists():
            return False
        checkpoint = load_verified(self.path, weights_only=False)
        if checkpoint is None:  # cut short by a kill, or damaged: start over
            self.ctx.log(
                f"{self.name}: ignoring unreadable checkpoint {self.path} (cut short or damaged)"
            )
            return False
        if checkpoint.get("signature") != self.signature:
            return False
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.generator is not None:
            self.generator.set_state(checkpoint["generator"])
        self.best_state = checkpoint["best_state"]
        best_score = checkpoint["best_score"]
        self.best_score = tuple(best_score) if isinstance(best_score, list) else best_score
        self.bad_epochs = checkpoint["bad_epochs"]
        self.epoch = checkpoint["epoch"]
        self.finished = checkpoint["finished"]
        self.history = type(self.history)(**checkpoint["history"])
        self.history.resumed_from_epoch = self.epoch
        self.ctx.log(f"{self.name}: resumed from checkpoint after epoch {self.epoch}")
        return True

    def end_epoch(self, score: Score, patience: int | None, max_epochs: int) -> bool:
        """Count one more finished epoch scored ``score`` (higher is better); True if a new best.

        A new best (better by more than ``min_delta``, for a float score) keeps a copy of the
        weights and resets the patience count; ``patience`` epochs in a row without one stop the
        run early (before ``max_epochs``).
        """
        self.epoch += 1
        improved = score > (self.best_score + self.min_delta if self.min_delta else self.best_score)
        if improved:
            self.best_score = score
            self.best_state = cpu_state(self.model)
            self.history.best_epoch = self.epoch
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if patience is not None and self.bad_epochs >= patience and self.epoch < max_epochs:
            self.history.stopped_early = True
            self.finished = True
        self.finished = self.finished or self.epoch >= max_epochs
        return improved

    def save(self) -> None:
        """Checkpoint the current state to ``path`` (atomically; nothing when ``path`` is None)."""
        if self.path is None:
            return
        best = list(self.best_score) if isinstance(self.best_score, tuple) else self.best_score
        atomic_torch_save(
            {
                "signature": self.signature,
                "epoch": self.epoch,
                "finished": self.finished,
                "model": cpu_state(self.model),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "best_state": self.best_state,
                "best_score": best,
                "bad_epochs": self.bad_epochs,
                "history": self.history.__dict__,
                **({"generator": self.generator.get_state()} if self.generator is not None else {}),
            },
            self.path,
        )

    def restore_best(self) -> None:
        """Load the best epoch's weights into the model and put it in evaluation mode."""
        self.model.load_state_dict(self.best_state)
        self.model.eval()


# -- the loop ------------------------------------------------------------------------------
TrainEpoch = Callable[[int, torch.Generator], Mapping[str, float]]
Validate = Callable[[], tuple[Score, Mapping[str, float]]]


def fit(
    model: torch.nn.Module,
    *,
    name: str,
    ctx: RunContext,
    epochs: int,
    optimizer: Stateful,
    train_epoch: TrainEpoch,
    validate: Validate,
    signature: str,
    history: FitHistory,
    worst_score: Score,
    scheduler: Stateful | None = None,
    patience: int | None = None,
    salt: int = DEFAULT_EPOCH_SALT,
    keep_best: bool = True,
    on_best: Callable[[FitHistory, Mapping[str, float]], None] | None = None,
    on_epoch: Callable[[int, Mapping[str, float]], None] | None = None,
    show: Sequence[str] = (),
    generator: torch.Generator | None = None,
    min_delta: float = 0.0,
) -> FitHistory:
    """Train ``model`` for up to ``epochs`` epochs; returns the history (the model
    is trained in place).

    ``train_epoch(epoch, generator)`` runs one epoch of optimization steps (``model`` is in
    training mode, both generators seeded for the epoch) and returns its train metrics;
    ``validate()`` returns ``(score, metrics)`` — the score decides early stopping (higher is
    better), the metrics go into the epoch's record. ``on_best(history, record)`` stores a new
    best epoch's values on the history; ``on_epoch(epoch, record)`` sees every record once it
    is checkpointed (a designer reports it to Optuna there; an exception it raises keeps the
    epoch). ``signature`` identifies the run for its checkpoint (see
    :func:`privbench.api.config.stable_hash`). With ``keep_best=False`` the last epoch's weights
    are kept instead of the best one's. ``show`` names the record entries shown on the progress
    bar. ``generator``: one run-long batch-order generator instead of the per-epoch seeding
    (torch's global generator is then not reseeded). ``min_delta``: how much a float score must
    improve to count as better.
    """
    started = time.perf_counter()
    state = TrainingState(
        model,
        optimizer,
        scheduler,
        history,
        signature=signature,
        path=ctx.checkpoint_path(name),
        ctx=ctx,
        name=name,
        worst_score=worst_score,
        generator=generator,
        min_delta=min_delta,
    )
    state.resume()
    history = state.history
    with ctx.progress(epochs, f"train {name}") as bar:
        if state.epoch:
            bar.update(state.epoch)
        while not state.finished and state.epoch < epochs:
            epoch = state.epoch
            epoch_started = time.perf_counter()
            if generator is None:
                seed = epoch_seed(ctx.seed, epoch, salt)
                epoch_generator = torch.Generator().manual_seed(seed)
                torch.manual_seed(seed)  # dropout masks, sensor noise
            else:
                epoch_generator = generator
            model.train()
            with section("train"):
                trained = train_epoch(epoch, epoch_generator)
            record: dict[str, float] = {"epoch": epoch + 1, **trained}
            with section("validate"):
                score, metrics = validate()
            record.update(metrics)
            check_diverged(name, epoch + 1, record, history.epochs[0] if history.epochs else record)
            if isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
                record["lr"] = float(scheduler.get_last_lr()[0])
            record["time_s"] = time.perf_counter() - epoch_started
            history.epochs.append(record)
            if state.end_epoch(score, patience, epochs) and on_best is not None:
                on_best(history, record)
            with section("checkpoint"):
                state.save()
            if on_epoch is not None:
                on_epoch(epoch, record)
            bar.update(1, **{key: record[key] for key in show if key in record})
    if keep_best:
        state.restore_best()
    else:
        model.eval()
    history.wall_time_s += time.perf_counter() - started
    ctx.curves.append(training_curve(name, history))
    return history
