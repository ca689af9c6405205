"""The evaluation contract: a task (role ``utility``) or an attack (role ``privacy``).

An evaluation receives the benchmark data *through an encoder*, via :class:`EvalInputs`, trains
its model under its protocol, and returns raw metrics. Attacks declare a protocol:

- ``retrained``: model fit on encoded training data, scored on encoded test data;
- ``pretrained``: fit on clean data, scored on encoded data;
- ``finetuned``: fit on clean, then fine-tuned on encoded, scored on encoded;
- ``offtheshelf``: a real pre-trained model that is never fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from privbench.api.config import ComponentConfig, stable_hash, validate_config
from privbench.api.errors import ConfigError, InputError
from privbench.api.items import ItemScores
from privbench.api.measurements import EncodedImages, Measurements

Role = Literal["utility", "privacy"]


class Protocol(str, Enum):
    """How an attack's model meets the encoder (the module docstring; 2PSC Sec. 4's face
    detector experiments). Rows store the value string."""

    RETRAINED = "retrained"
    PRETRAINED = "pretrained"
    FINETUNED = "finetuned"
    OFFTHESHELF = "offtheshelf"
    #: The clean detector scored on clean scenes: the reference the other protocols compare to.
    CLEAN_REFERENCE = "clean-reference"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class MetricSpec:
    """How to read one metric: direction and a short description for the leaderboard."""

    higher_is_better: bool = True
    description: str = ""


@dataclass
class EvalResult:
    """Raw metrics of one cell, plus the chance level of the headline metric (for normalization)
    and, where the evaluation can give it, its headline per test item (``items``: the
    leaderboard's confidence intervals resample them, :mod:`privbench.api.items`)."""

    metrics: dict[str, float]
    chance: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    items: ItemScores | None = None


class Progress:
    """Minimal progress interface the runner hands to evaluations (rich/tqdm or silent)."""

    def __call__(self, total: int, description: str) -> ProgressBar:
        return ProgressBar()


class ProgressBar:
    def update(self, advance: int = 1, **info: Any) -> None:  # noqa: D401 - protocol
        """Advance the bar; ``info`` is shown as postfix (e.g. loss)."""

    def close(self) -> None:
        """Finish the bar."""

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class RunContext:
    """What one cell may use: device, seed, a scratch folder for checkpoints, progress bars."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    workdir: Path | None = None
    progress: Progress = field(default_factory=Progress)
    log: Callable[[str], None] = lambda message: None
    #: Content-addressed artifact cache for models shared between cells (e.g. a clean-trained
    #: classifier every encoder's cell scores against); ``None`` means "train it here".
    cache: Any = None
    #: Called by designers after each cycle with its metrics (Optuna pruning listens here).
    report: Callable[[int, dict], None] = lambda step, values: None
    #: The training curves of every model trained in this context, one per run of the training
    #: loop (:func:`privbench.nn.epochs.training_curve`); the runner keeps them in the result row.
    curves: list[dict[str, Any]] = field(default_factory=list)

    def checkpoint_path(self, name: str) -> Path | None:
        if self.workdir is None:
            return None
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir / f"{name}.pt"


class EvalInputs:
    """The data an evaluation may see: clean or encoded parts, as streamed
    :class:`~privbench.api.measurements.Measurements` (read in batches, never one tensor).

    ``encode(part, split)`` is provided by the runner (streamed through the encoder, or read
    from the cache of a fixed, noise-free encoder); evaluations never call the encoder
    themselves, which keeps the data flow one way. Evaluations that bring
    their own images (off-the-shelf attacks on real faces shipped with packages) hand them to
    :meth:`encode_images`, which the runner also provides: the images still reach the evaluation
    only as the cell's measurements.
    """

    def __init__(
        self,
        data,
        encode: Callable[[str, str], Measurements],
        encoder_name: str = "",
        encode_images: Callable[[torch.Tensor], torch.Tensor] | None = None,
        measurement_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.data = data
        #: the cell's encoder's :meth:`~privbench.api.encoder.Encoder.measurement_range`, for
        #: evaluations that compare measurements with scenes (``to_common_grid``)
        self.measurement_range = (float(measurement_range[0]), float(measurement_range[1]))
        self._encode = encode
        self._encode_images = encode_images
        self.encoder_name = encoder_name
        self._memo: dict[tuple[str, str], Measurements] = {}

    def labels(self, part: str, split: str) -> torch.Tensor:
        return self.data.part(part)[split].labels

    def num_classes(self, part: str) -> int:
        return self.data.part(part).train.num_classes

    def clean(self, part: str, split: str) -> Measurements:
        """Clean images of ``part``/``split`` as float in [0, 1], read in batches."""
        images = self.data.part(part)[split]
        identity = [self.data.fingerprint, part, split]
        return EncodedImages(images, None, f"clean {part}/{split}", identity)

    def encoded(self, part: str, split: str) -> Measurements:
        """Measurements of ``part``/``split`` through the cell's encoder (float32), read in
        batches."""
        key = (part, split)
        if key not in self._memo:
            self._memo[key] = self._encode(part, split)
        return self._memo[key]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Measurements of an evaluation's own uint8 ``(N, 3, H, W)`` images through
        the cell's encoder."""
        if self._encode_images is None:
            raise ConfigError(
                "This evaluation encodes images of its own (e.g. real faces shipped with a "
                "package), but its inputs were built without an image "
                "encoder: pass encode_images= to EvalInputs (the runner does)."
            )
        if (
            not isinstance(images, torch.Tensor)
            or images.dtype != torch.uint8
            or images.dim() != 4
            or images.shape[1] != 3
        ):
            raise InputError(
                "encode_images expects a uint8 tensor of shape (N, 3, H, W); got "
                f"{getattr(images, 'dtype', type(images).__name__)} "
                f"{tuple(getattr(images, 'shape', ()))}."
            )
        return self._encode_images(images)


class EvaluationConfig(ComponentConfig):
    """Options every evaluation accepts (subclasses add training budget, model, ...)."""


class Evaluation:
    """Base class of tasks and attacks."""

    Config: ClassVar[type[EvaluationConfig]] = EvaluationConfig
    role: ClassVar[Role] = "utility"
    version: ClassVar[str] = "1"
    protocol: ClassVar[Protocol | None] = None
    requires: ClassVar[tuple[str, ...]] = ()
    metrics: ClassVar[dict[str, MetricSpec]] = {}
    headline: ClassVar[str] = ""
    registered_name: ClassVar[str] = ""

    def __init__(self, **config: Any):
        self.config = validate_config(
            self.Config, config, what=f"{self.role} evaluation {self.name!r}"
        )

    @property
    def name(self) -> str:
        return self.registered_name or type(self).__name__

    @property
    def protocol_name(self) -> str | None:
        """The protocol of this instance, as stored in rows (configurable evaluations override)."""
        return None if self.protocol is None else Protocol(self.protocol).value

    def config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    def config_hash(self) -> str:
        return stable_hash(
            {"evaluation": self.name, "version": self.version, "config": self.config_dict()}
        )

    def missing_prerequisites(self) -> list[str]:
        """What this evaluation needs on the machine and does not find, each item saying how to
        install it (a Java runtime, a model file). The runner checks it before any work, so a
        run never stops at its first cell of this kind after an hour of others."""
        return []

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        """Fit the evaluation's model under its protocol and score it. Subclasses implement."""
        raise NotImplementedError(f"{type(self).__name__} must implement evaluate()")
