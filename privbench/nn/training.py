"""Classifiers trained on measurements: their config, their epoch step and validation,
run by the one loop.

:func:`train_classifier` (through :func:`privbench.nn.fit.fit`) fits a
:class:`~privbench.nn.classifiers.MeasurementClassifier` with cross-entropy, AdamW and a one-cycle
learning-rate schedule (linear warm-up, cosine decay), on the device of the
:class:`~privbench.api.evaluation.RunContext`, seeded by the context's seed. Before training it
standardizes each input channel with the training set's mean and standard deviation (stored in the
model). After each epoch it scores the validation split; early stopping keeps the weights of the
best validation epoch (accuracy, ties broken by lower loss) and stops after ``patience`` epochs
without improvement. Every epoch is checkpointed to ``ctx.checkpoint_path(name)`` (model, optimizer,
schedule, best weights, history); a run that is killed resumes from the last completed epoch and
reaches the same result as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from privbench.api.config import ComponentConfig, stable_hash
from privbench.api.errors import DataError
from privbench.api.evaluation import EvaluationConfig, RunContext
from privbench.api.measurements import (
    Measurements,
    as_measurements,
    channel_statistics,
    content_signature,
    tensor_fingerprint,
)
from privbench.nn.classifiers import ARCHITECTURES, MeasurementClassifier, build_classifier
from privbench.nn.fit import (
    FitHistory,
    check_same_encoder,
    fit,
    one_cycle,
    shuffled_batches,
    steps_per_epoch,
)

CHECKPOINT_FORMAT = 1


class TrainConfig(ComponentConfig):
    """Training budget and optimizer settings of one classifier.

    The defaults are the quick preset's, measured on synthfaces ``quick`` (40 identities × 40
    training crops): small-cnn reaches ≥ 95 % clean face-ID top-1 in 10 epochs of batch 32 with
    label smoothing 0.1, where batch 64 or no smoothing needs more epochs for the same accuracy.
    """

    epochs: int = Field(
        10, ge=1, le=1000, description="maximum number of passes over the training split"
    )
    batch_size: int = Field(32, ge=2, le=4096, description="training mini-batch size")
    lr: float = Field(
        3e-3, gt=0, le=1.0, description="peak learning rate of the one-cycle schedule (AdamW)"
    )
    weight_decay: float = Field(5e-2, ge=0, le=1.0, description="AdamW decoupled weight decay")
    label_smoothing: float = Field(0.1, ge=0, lt=1.0, description="cross-entropy label smoothing")
    patience: int | None = Field(
        4,
        ge=1,
        description="stop after this many epochs without a better validation score (None: never)",
    )
    augment: Literal["none", "shift", "shift-flip"] = Field(
        "none",
        description="light augmentation: random shifts of up to 1/16 of the side, optionally "
        "horizontal flips (off by default: measurements of learned optics are not flip-symmetric)",
    )
    eval_batch_size: int = Field(256, ge=1, le=65536, description="batch size for scoring")


class ClassifierArchitecture(ComponentConfig):
    """An architecture and its width: what a classifier's config and a face-ID zoo member share."""

    model: str = Field(
        "small-cnn", description=f"classifier architecture: {', '.join(ARCHITECTURES)}"
    )
    width_multiplier: float = Field(
        1.0, gt=0, le=4.0, description="scales every layer's channel count"
    )

    @field_validator("model")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"unknown architecture; accepted: {', '.join(ARCHITECTURES)}")
        return value


class ClassifierConfig(EvaluationConfig, ClassifierArchitecture):
    """Options of an evaluation that trains one classifier on measurements."""

    training: TrainConfig = Field(default_factory=TrainConfig)


@dataclass
class TrainHistory(FitHistory):
    """Per-epoch records and the outcome of one classifier's training run."""

    best_val_accuracy: float = float("nan")
    best_val_loss: float = float("nan")


# -- helpers -------------------------------------------------------------------------------
def _check_split(x: Measurements, y: torch.Tensor, what: str, num_classes: int) -> None:
    """Shapes and labels of one split (finiteness is checked batch by batch as it is read)."""
    if x.dim() != 4 or x.shape[0] == 0:
        raise DataError(
            f"{what} measurements must be a non-empty (N, C, H, W) tensor; "
            f"got shape {tuple(x.shape)}."
        )
    if y.shape != (x.shape[0],):
        raise DataError(f"{what} labels must have shape ({x.shape[0]},); got {tuple(y.shape)}.")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"{what} labels must lie in [0, {num_classes - 1}] for a {num_classes}-class model; "
            f"got [{int(y.min())}, {int(y.max())}]."
        )


def _state_fingerprint(state: dict[str, torch.Tensor] | None) -> Any:
    if state is None:
        return None
    return [[key, tensor_fingerprint(value.float())] for key, value in sorted(state.items())]


def _augment(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Random circular shifts by up to 1/16 of each side (shared by the batch), optional h-flips."""
    if mode == "none":
        return x
    height, width = x.shape[-2:]
    max_dy, max_dx = height // 16, width // 16
    if max_dy or max_dx:
        dy = int(torch.randint(-max_dy, max_dy + 1, (1,), generator=generator))
        dx = int(torch.randint(-max_dx, max_dx + 1, (1,), generator=generator))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    if mode == "shift-flip":
        flip = torch.rand(x.shape[0], generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    return x


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    x: Measurements | torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Logits of ``model`` for ``x`` (evaluation mode, in batches read in order), on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    source = as_measurements(x, "scored split")
    outputs = [
        model(_to_device(chunk, device)).float().cpu() for chunk in source.split(batch_size, device)
    ]
    model.train(was_training)
    if not outputs:
        return torch.empty(0, getattr(model, "num_classes", 0))
    return torch.cat(outputs)


def _validation(model, x, y, batch_size, device) -> tuple[float, float]:
    logits = predict_logits(model, x, batch_size, device)
    loss = float(F.cross_entropy(logits, y))
    accuracy = float((logits.argmax(1) == y).float().mean())
    return loss, accuracy


# -- the loop ------------------------------------------------------------------------------
def train_classifier(
    model: MeasurementClassifier,
    train_x: Measurements | torch.Tensor,
    train_y: torch.Tensor,
    val_x: Measurements | torch.Tensor,
    val_y: torch.Tensor,
    config: TrainConfig,
    ctx: RunContext,
    name: str,
    init_state: dict[str, torch.Tensor] | None = None,
) -> tuple[MeasurementClassifier, TrainHistory]:
    """Train ``model`` on ``(train_x, train_y)`` with early stopping on ``(val_x, val_y)``.

    ``init_state``: weights to start from (fine-tuning); the input standardization is then
    recomputed from ``train_x``. Returns the model holding the best validation weights, and
    the history. See the module docstring for schedule, checkpoints and resume.
    """
    num_classes = int(model.num_classes)
    train_y = train_y.long()
    val_y = val_y.long()
    train_x = as_measurements(train_x, f"{name}: training")
    val_x = as_measurements(val_x, f"{name}: validation")
    _check_split(train_x, train_y, f"{name}: training", num_classes)
    _check_split(val_x, val_y, f"{name}: validation", num_classes)
    check_same_encoder(train_x, val_x, name)
    device = ctx.device

    torch.manual_seed(ctx.seed)
    if init_state is not None:
        model.load_state_dict(init_state)
    mean, std = channel_statistics(train_x)
    model.set_standardization(mean, std)
    model.to(device=device, memory_format=torch.channels_last)

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = one_cycle(
        optimizer, config.lr, config.epochs * steps_per_epoch(train_x.shape[0], config.batch_size)
    )
    signature = stable_hash(
        {
            "format": CHECKPOINT_FORMAT,
            "name": name,
            "config": config.model_dump(mode="json"),
            "model": [
                type(model.body).__name__,
                [[k, list(v.shape)] for k, v in sorted(model.state_dict().items())],
            ],
            "train": [content_signature(train_x), tensor_fingerprint(train_y)],
            "val": [content_signature(val_x), tensor_fingerprint(val_y)],
            "init": _state_fingerprint(init_state),
            "seed": ctx.seed,
        },
        length=32,
    )

    def train_epoch(epoch: int, generator: torch.Generator) -> dict[str, float]:
        total_loss, total_correct, seen = 0.0, 0, 0
        order = shuffled_batches(train_x.shape[0], config.batch_size, generator)
        for index, batch in zip(order, train_x.batches(order, device)):
            x = _to_device(_augment(batch, config.augment, generator), device)
            y = train_y[index].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * y.shape[0]
            total_correct += int((logits.detach().argmax(1) == y).sum())
            seen += y.shape[0]
        return {
            "train_loss": total_loss / max(seen, 1),
            "train_accuracy": total_correct / max(seen, 1),
        }

    def validate() -> tuple[tuple[float, float], dict[str, float]]:
        val_loss, val_accuracy = _validation(model, val_x, val_y, config.eval_batch_size, device)
        # (val accuracy, -val loss), compared lexicographically
        return (val_accuracy, -val_loss), {"val_loss": val_loss, "val_accuracy": val_accuracy}

    def on_best(history: TrainHistory, record) -> None:
        history.best_val_accuracy = record["val_accuracy"]
        history.best_val_loss = record["val_loss"]

    history = fit(
        model,
        name=name,
        ctx=ctx,
        epochs=config.epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        train_epoch=train_epoch,
        validate=validate,
        signature=signature,
        history=TrainHistory(),
        worst_score=(-1.0, float("-inf")),
        patience=config.patience,
        on_best=on_best,
        show=("train_loss", "val_accuracy"),
    )
    return model, history


def fit_new_classifier(
    config: ClassifierConfig,
    num_classes: int,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    ctx: RunContext,
    name: str,
    training: TrainConfig | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> tuple[MeasurementClassifier, TrainHistory]:
    """Build the configured architecture for ``train_x``'s shape (seeded) and train it."""
    torch.manual_seed(ctx.seed)
    model = build_classifier(
        config.model,
        tuple(train_x.shape[1:]),
        num_classes,
        width_multiplier=config.width_multiplier,
    )
    return train_classifier(
        model, train_x, train_y, val_x, val_y, training or config.training, ctx, name, init_state
    )
