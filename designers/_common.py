"""What the designers share: the privacy terms of their losses and the pieces around
:func:`privbench.nn.fit.fit` (trainable encoder parameters, projection, data subsets, records)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from privbench.api.config import stable_hash
from privbench.api.designer import Designer, DesignHistory
from privbench.api.encoder import Encoder
from privbench.api.errors import ConfigError
from privbench.api.evaluation import RunContext
from privbench.nn.fit import FitHistory
from privbench.nn.imaging import INTENSITY_RANGE, to_common_grid

#: Checkpoint format of the designers' runs of :func:`fit` (part of their signature).
CHECKPOINT_FORMAT = 1


# -- privacy terms -------------------------------------------------------------------------
def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the softmax distributions: maximal when R cannot decide."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def distortion_term(
    clean: torch.Tensor,
    measurement: torch.Tensor,
    value_range: tuple[float, float] = INTENSITY_RANGE,
) -> torch.Tensor:
    """2PSC's 1 − (1/J) Σ_ℓ ‖Y_ℓ − X_ℓ‖², with Y on the scene's grid (:func:`to_common_grid`,
    ``value_range``: the encoder's declared measurement range).

    Minimizing it rewards a measurement Y that differs from the scene X.
    """
    return 1.0 - ((to_common_grid(clean, measurement, value_range) - clean) ** 2).mean()


# -- around the training loop --------------------------------------------------------------
def trainable_parameters(encoder: Encoder, designer: Designer) -> list[torch.nn.Parameter]:
    """The encoder's parameters that require gradients; a ConfigError if there are none."""
    parameters = [p for p in encoder.parameters() if p.requires_grad]
    if not parameters:
        raise ConfigError(
            f"Encoder {encoder.name!r} has no trainable parameters for the {designer.name} "
            f"designer; pick a learnable encoder (see `privbench list encoders`)."
        )
    return parameters


def project(encoder: Encoder) -> None:
    """Keep the encoder physically realizable after a gradient step (:meth:`Encoder.project_`)."""
    with torch.no_grad():
        encoder.project_()


def subset(
    images: torch.Tensor, labels: torch.Tensor, limit: int | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``limit`` random samples (drawn from ``generator``); all of them when fewer."""
    if limit is None or images.shape[0] <= limit:
        return images, labels
    keep = torch.randperm(images.shape[0], generator=generator)[:limit]
    return images[keep], labels[keep]


def float_images(images_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images on ``device`` as float intensities in [0, 1] (what an encoder takes)."""
    return images_uint8.to(device).float().div_(255.0)


def design_signature(designer: Designer, encoder: Encoder, name: str) -> str:
    """What a designer's checkpoint must match to be resumed: its config and the encoder's."""
    return stable_hash(
        {
            "format": CHECKPOINT_FORMAT,
            "run": name,
            "designer": designer.config_hash(),
            "encoder": encoder.config_hash(),
        },
        length=32,
    )


def cycle_record(record: Mapping[str, float], cycle_key: str = "epoch") -> dict[str, float]:
    """One of ``fit``'s records as the designer names it: its ``epoch`` is called ``cycle_key``."""
    return {(cycle_key if key == "epoch" else key): value for key, value in record.items()}


def reporter(
    ctx: RunContext, describe: Callable[[Mapping[str, float]], str], cycle_key: str = "epoch"
) -> Callable[[int, Mapping[str, float]], None]:
    """``fit``'s ``on_epoch`` for a designer: log a cycle's record, then report it to ``ctx``."""

    def on_epoch(epoch: int, record: Mapping[str, float]) -> None:
        ctx.log(describe(record))
        ctx.report(epoch + 1, cycle_record(record, cycle_key))

    return on_epoch


def design_history(history: FitHistory, cycle_key: str = "epoch") -> DesignHistory:
    """The per-cycle records of a designer's run of :func:`fit` (plain dicts, cacheable)."""
    return [cycle_record(record, cycle_key) for record in history.epochs]
