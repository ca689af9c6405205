"""Building, training and running a face detector on measurements.

:func:`train_detector` fits a detector through the one loop :func:`privbench.nn.fit.fit` and
keeps only its own epoch step (AdamW, gradient clipping, optional flips) and validation
(AP50). :func:`fit_detector` builds, trains and shares a detector through the artifact cache;
:func:`detect_in_clean_coordinates` maps its boxes back to clean pixels (the box-mapping rule of
:mod:`privbench.detection.boxes`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from privbench.api.cache import tensor_content_digest
from privbench.api.config import stable_hash
from privbench.api.errors import ConfigError, DataError, InputError
from privbench.api.evaluation import RunContext
from privbench.api.measurements import (
    Measurements,
    as_measurements,
    channel_statistics,
    content_signature,
    in_memory,
    is_small,
)
from privbench.detection.base import FaceDetector
from privbench.detection.boxes import Detections, DetectionSet, boxes_to_clean
from privbench.detection.config import (
    DETECTION_EPOCH_SALT,
    DETECTOR_VERSION,
    DetectorConfig,
    DetectorTraining,
)
from privbench.detection.metrics import interpolated_ap, precision_recall
from privbench.detection.mmdet_backend import MMDetFaceDetector
from privbench.detection.torchvision_backend import TorchvisionFaceDetector
from privbench.nn.fit import FitHistory, cpu_state, fit, one_cycle, shuffled_batches


# -- building ---------------------------------------------------------------------------------
def load_weights_file(model: FaceDetector, path: str) -> dict[str, int]:
    """Initialize ``model`` from a local file: tensors whose name and shape match are loaded.

    Accepts a plain state dict or a checkpoint holding one under ``state_dict`` or ``model``;
    a file sharing no tensor with the model is an error (wrong architecture).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"detector weights file {str(file)!r} does not exist (weights are only read from "
            "local files)."
        )
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 (unpickling fails in many ways)
        raise ConfigError(
            f"detector weights file {str(file)!r} cannot be read by torch.load: {error}"
        ) from None
    if isinstance(payload, dict):
        for key in ("state_dict", "model"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict):
        raise ConfigError(
            f"detector weights file {str(file)!r} holds a {type(payload).__name__}, not a state "
            "dict."
        )
    own = model.state_dict()
    prefixed = {
        key if key in own else f"model.{key}": value
        for key, value in payload.items()
        if isinstance(value, torch.Tensor)
    }
    matched = {k: v for k, v in prefixed.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ConfigError(
            f"detector weights file {str(file)!r} shares no tensor (by name and shape) with the "
            "configured detector; it was saved for another architecture."
        )
    model.load_state_dict(matched, strict=False)
    return {"loaded": len(matched), "of": len(own)}


def build_detector(config: DetectorConfig, in_channels: int) -> FaceDetector:
    """A new detector for ``in_channels``-channel measurements: random weights, or
    ``config.weights``."""
    if in_channels < 1:
        raise InputError(f"measurements need at least one channel; got {in_channels}.")
    if config.backend == "mmdet":
        model: FaceDetector = MMDetFaceDetector(config, in_channels)
    else:
        model = TorchvisionFaceDetector(config, in_channels)
    if config.weights:
        load_weights_file(model, config.weights)
    return model


# -- inference --------------------------------------------------------------------------------
@torch.no_grad()
def detect(
    model: FaceDetector,
    images: Measurements | torch.Tensor,
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> Detections:
    """Detections of ``model`` on ``(N, C, h, w)`` measurements, boxes in measurement pixels,
    returned on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: Detections = []
    for batch in as_measurements(images, "detection inputs").split(batch_size, device):
        chunk = list(batch.float())
        for result in model.detect(chunk):
            outputs.append(
                {
                    "boxes": result["boxes"].detach().float().cpu(),
                    "scores": result["scores"].detach().float().cpu(),
                }
            )
    model.train(was_training)
    return outputs


def detect_in_clean_coordinates(
    model: FaceDetector,
    images: Measurements | torch.Tensor,
    clean_hw: Sequence[int],
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> Detections:
    """Detections on measurements, mapped back to clean pixel coordinates (the one rule)."""
    measured_hw = tuple(images.shape[-2:])
    return [
        {"boxes": boxes_to_clean(d["boxes"], clean_hw, measured_hw), "scores": d["scores"]}
        for d in detect(model, images, batch_size, device)
    ]


def validation_ap50(
    model: FaceDetector, data: DetectionSet, batch_size: int, device: torch.device | str | None
) -> float:
    """AP50 (101-point interpolated, in measurement coordinates) of ``model`` on ``data``."""
    if sum(int(b.shape[0]) for b in data.boxes) == 0:
        raise DataError(
            "the validation scenes hold no face box: early stopping on AP50 is impossible."
        )
    detections = detect(model, data.images, batch_size, device)
    return interpolated_ap(precision_recall(detections, data.boxes, 0.5))


# -- training ---------------------------------------------------------------------------------
@dataclass
class DetectorHistory(FitHistory):
    """Per-epoch records and the outcome of one detector training run."""

    best_val_ap50: float = float("nan")
    steps: int = 0


def _flip(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror a measurement and its xyxy boxes left to right."""
    width = image.shape[-1]
    flipped = boxes.clone()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return image.flip(-1), flipped


def train_detector(
    model: FaceDetector,
    train: DetectionSet,
    val: DetectionSet,
    config: DetectorTraining,
    ctx: RunContext,
    name: str,
    *,
    standardize: bool = True,
    signature_extra: Any = None,
) -> tuple[FaceDetector, DetectorHistory]:
    """Train ``model`` on ``train`` with early stopping on the AP50 of ``val``; returns the best
    weights and the history.

    AdamW with a one-cycle schedule (20 % linear warm-up, cosine decay to lr / 25 000) and
    gradient clipping; batch orders and flips are seeded by ``ctx.seed`` and the epoch
    (salt :data:`DETECTION_EPOCH_SALT`). Every scene is used each epoch (a trailing batch of
    one included). ``standardize``: set the input standardization from ``train``'s per-channel
    statistics first. Each epoch is checkpointed to ``ctx.checkpoint_path(name)``; a killed run
    resumes after its last completed epoch.
    """
    if (
        train.images.shape[1:2] != val.images.shape[1:2]
        or train.images.shape[1] != model.in_channels
    ):
        raise DataError(
            f"{name}: training measurements have {train.images.shape[1]} channels, validation "
            f"{val.images.shape[1]}, the detector expects {model.in_channels}; both splits must "
            "go through the same encoder."
        )
    device = ctx.device
    train_images = as_measurements(train.images, f"{name}: training measurements")
    torch.manual_seed(ctx.seed)
    if standardize:
        model.set_standardization(*channel_statistics(train.images))
    model.to(device)
    count = train.images.shape[0]
    batches_per_epoch = math.ceil(count / config.batch_size)
    total_steps = config.epochs * batches_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    # the step budget ends the run within this epoch (every earlier one takes all its batches)
    epochs = math.ceil(total_steps / batches_per_epoch)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = one_cycle(optimizer, config.lr, total_steps, final_div_factor=1e3)
    signature = stable_hash(
        {
            "version": DETECTOR_VERSION,
            "name": name,
            "training": config.model_dump(mode="json"),
            "model": [[k, list(v.shape)] for k, v in sorted(model.state_dict().items())],
            "init": tensor_content_digest(list(cpu_state(model).values())),
            "train": split_key(train),
            "val": split_key(val),
            "seed": ctx.seed,
            "extra": signature_extra,
        },
        length=32,
    )

    def train_epoch(epoch: int, generator: torch.Generator) -> dict[str, float]:
        steps = epoch * batches_per_epoch
        total_loss, batches = 0.0, 0
        order = shuffled_batches(count, config.batch_size, generator, drop_single=False)
        for index, batch in zip(order, train_images.batches(order)):
            if steps >= total_steps:
                break
            images, boxes = [], []
            flips = torch.rand(index.numel(), generator=generator) < 0.5  # drawn even unused
            for image, i, flip in zip(batch, index.tolist(), flips.tolist()):
                box = train.boxes[i]
                if config.hflip and flip:
                    image, box = _flip(image, box)
                images.append(image.to(device))
                boxes.append(box.to(device))
            loss = sum(model.losses(images, boxes).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            scheduler.step()
            steps += 1
            total_loss += float(loss.detach())
            batches += 1
        return {"train_loss": total_loss / max(batches, 1)}

    def validate() -> tuple[float, dict[str, float]]:
        val_ap50 = validation_ap50(model, val, config.eval_batch_size, device)
        return val_ap50, {"val_ap50": val_ap50}

    def on_best(history: DetectorHistory, record) -> None:
        history.best_val_ap50 = record["val_ap50"]

    history = fit(
        model,
        name=name,
        ctx=ctx,
        epochs=epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        train_epoch=train_epoch,
        validate=validate,
        signature=signature,
        history=DetectorHistory(),
        worst_score=-1.0,
        patience=config.patience,
        salt=DETECTION_EPOCH_SALT,
        on_best=on_best,
        show=("train_loss", "val_ap50"),
    )
    history.steps = min(len(history.epochs) * batches_per_epoch, total_steps)
    # patience running out on the step budget's last epoch, before config.epochs, is an early
    # stop too (fit, told only the budget's epochs, cannot know)
    bad_epochs = len(history.epochs) - history.best_epoch
    if config.patience is not None and len(history.epochs) == epochs < config.epochs:
        history.stopped_early = history.stopped_early or bad_epochs >= config.patience
    return model, history


def split_key(data: DetectionSet) -> Any:
    """What a detector's checkpoint and cache key record of one split: the exact digest of a
    small noise-free split's measurements and boxes (equal content, equal key, whichever camera
    produced it: the clean camera's detector is shared with the clean protocols), else the
    identity of the streamed measurements (a noisy camera's are drawn anew on every read)."""
    images = data.images
    exact = not isinstance(images, Measurements) or images.deterministic
    if exact and is_small(images):
        return tensor_content_digest(in_memory(images), data.boxes)
    return [content_signature(data.images), tensor_content_digest(data.boxes)]


def fit_detector(
    config: DetectorConfig,
    train: DetectionSet,
    val: DetectionSet,
    ctx: RunContext,
    name: str,
    *,
    training: DetectorTraining | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    shared: bool = False,
) -> tuple[FaceDetector, dict[str, Any]]:
    """Build a detector for ``train``'s channel count (seeded) and train it; returns it and a
    summary.

    ``init_state``: weights to start from (fine-tuning); the standardization is then
    re-estimated from ``train``. ``shared``: look the trained weights up in / store them to
    ``ctx.cache``, keyed by the exact training data, config, initial weights and seed, so that
    every cell that needs the same detector (the clean detector of the attack's protocols; the
    clean camera's utility detector) trains it once.
    """
    training = training or config.training
    in_channels = int(train.images.shape[1])

    def train_new() -> tuple[FaceDetector, dict[str, Any]]:
        torch.manual_seed(ctx.seed)
        model = build_detector(config, in_channels)
        if init_state is not None:
            model.load_state_dict(init_state)
        model, history = train_detector(
            model, train, val, training, ctx, name, signature_extra=config.model_key()
        )
        return model, history.summary()

    if not (shared and ctx.cache is not None):
        model, summary = train_new()
        return model, {**summary, "from_cache": False}
    init = tensor_content_digest(list(init_state.values())) if init_state is not None else None
    key = stable_hash(
        {
            "version": DETECTOR_VERSION,
            "model": config.model_key(),
            "training": training.model_dump(mode="json"),
            "train": split_key(train),
            "val": split_key(val),
            "init": init,
            "seed": ctx.seed,
        },
        length=24,
    )
    trained: list[FaceDetector] = []

    def build() -> dict[str, Any]:
        model, summary = train_new()
        trained.append(model)
        return {"state": cpu_state(model), "summary": summary}

    # under the key's lock: a worker that finds another one training this detector waits for it
    # and loads its weights, so the shared detector is trained once however many cells run
    obtained = ctx.cache.obtain("models", f"face-detector-{key}", build)
    if not obtained.from_cache:
        return trained[0], {**obtained.value["summary"], "from_cache": False}
    torch.manual_seed(ctx.seed)
    model = build_detector(config, in_channels)
    model.load_state_dict(obtained.value["state"])
    return model.to(ctx.device).eval(), {**obtained.value["summary"], "from_cache": True}
