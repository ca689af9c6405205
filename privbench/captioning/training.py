"""Training the captioner: the 2PSC §2.3 loss under teacher forcing, and :func:`train_captioner`.

- **Loss** (2PSC §2.3, without its last term, which belongs to the optics designer): the
  negative log-likelihood of the reference caption under teacher forcing plus the doubly
  stochastic attention regularizer λ Σ_i (1 − Σ_t θ_ti)². (2PSC's equation writes the
  likelihood twice, as −log p(v | A) and as the word cross-entropy; both are the same sum of
  per-word negative log-probabilities and are counted once.) :func:`teacher_forcing_loss` is
  the one step features → decoder → loss that training, validation and the end-to-end
  designer share.
- **Training** runs on the one loop :func:`privbench.nn.fit.fit`: seeded, AdamW with a
  one-cycle schedule, per-epoch checkpoints at ``ctx.checkpoint_path(name)`` with resume, early
  stopping on the validation CIDEr-D of the captions decoded as the test split will be (same
  beam size; ties broken by the validation loss), keeping the best epoch's weights. A step
  takes a batch of images and all their reference captions, so the CNN runs once per image and
  the decoder once per caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from privbench.api.config import stable_hash
from privbench.api.errors import DataError
from privbench.api.evaluation import RunContext
from privbench.api.measurements import (
    Measurements,
    as_measurements,
    channel_statistics,
    content_signature,
    tensor_fingerprint,
)
from privbench.captioning.config import CaptionModelConfig, CaptionTrainConfig
from privbench.captioning.decoding import generate_captions
from privbench.captioning.metrics import validation_scores
from privbench.captioning.model import AttentionLSTMDecoder, CaptionModel
from privbench.captioning.vocabulary import EncodedCaptions, Vocabulary
from privbench.nn.fit import (
    FitHistory,
    check_same_encoder,
    fit,
    one_cycle,
    shuffled_batches,
    steps_per_epoch,
)

CHECKPOINT_FORMAT = 1


# -- loss ----------------------------------------------------------------------------------
def step_mask(steps: torch.Tensor, length: int) -> torch.Tensor:
    """``mask[j, t]`` = 1 where step t predicts a word (or ``<end>``) of caption j."""
    return (torch.arange(length, device=steps.device).unsqueeze(0) < steps.unsqueeze(1)).float()


def doubly_stochastic_penalty(attention: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_i (1 − Σ_t θ_ti)² per caption (2PSC §2.3, SAT eq. 14), over the caption's own steps.

    ``attention``: θ ``(B, T, L)``; ``mask``: ``(B, T)``. Returns ``(B,)``.
    """
    attention_per_location = (attention * mask.unsqueeze(2)).sum(dim=1)
    return ((1.0 - attention_per_location) ** 2).sum(dim=1)


def caption_loss(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    steps: torch.Tensor,
    attention: torch.Tensor,
    regularization: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over captions of −Σ_t log p(v_t | v_<t, A) + λ Σ_i (1 − Σ_t θ_ti)².

    ``tokens``: ``<start> w_1 … <end> <pad>…``; step t's target is ``tokens[:, t + 1]``.
    """
    length = logits.shape[1]
    targets = tokens[:, 1 : length + 1]
    mask = step_mask(steps, length)
    nll = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(mask)
    nll_per_caption = (nll * mask).sum(dim=1)
    penalty = doubly_stochastic_penalty(attention, mask)
    loss = (nll_per_caption + regularization * penalty).mean()
    words = mask.sum()
    return loss, {
        "nll_per_word": float(nll_per_caption.sum().detach() / words),
        "attention_penalty": float(penalty.mean().detach()),
    }


class TeacherForcedLoss(NamedTuple):
    """:func:`teacher_forcing_loss`'s result: the loss to minimize, its parts, and over how
    many captions it is a mean."""

    loss: torch.Tensor  # mean over captions of NLL + λ · penalty
    parts: dict[str, float]  # nll_per_word, attention_penalty
    captions: int


def teacher_forcing_loss(
    decoder: AttentionLSTMDecoder,
    features: torch.Tensor,
    images: torch.Tensor,
    captions: EncodedCaptions,
    regularization: float,
) -> TeacherForcedLoss:
    """The 2PSC loss (:func:`caption_loss`) of every reference caption of ``images``.

    ``features``: the annotation vectors ``(B, L, D)`` of ``images`` (indices into the split
    that ``captions`` describes, in the same order); each caption is decoded under teacher
    forcing from the features of its own image, so the CNN ran once per image.
    """
    device = features.device
    rows = captions.rows_of_images(images)
    position = {int(i): p for p, i in enumerate(images)}
    feature_rows = torch.tensor(
        [position[int(i)] for i in captions.image_index[rows]], device=device
    )
    tokens, steps = captions.tokens[rows].to(device), captions.steps[rows].to(device)
    logits, attention = decoder(features[feature_rows], tokens, steps)
    loss, parts = caption_loss(logits, tokens, steps, attention, regularization)
    return TeacherForcedLoss(loss, parts, rows.numel())


# -- training ------------------------------------------------------------------------------
@dataclass
class CaptionHistory(FitHistory):
    """Per-epoch records and the outcome of one captioner training run."""

    best_val_cider: float = float("nan")
    best_val_bleu_4: float = float("nan")
    best_val_loss: float = float("nan")


def _check_measurements(x: Measurements, what: str) -> None:
    """The shape of one split (finiteness is checked batch by batch as it is read)."""
    if x.dim() != 4 or x.shape[0] == 0:
        raise DataError(
            f"{what} measurements must be a non-empty (N, C, H, W) tensor; "
            f"got shape {tuple(x.shape)}."
        )


def random_shift(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` by up to ``fraction`` of its side in each direction (edge
    values extend into the uncovered border)."""
    height, width = x.shape[-2:]
    max_dy, max_dx = round(height * fraction), round(width * fraction)
    if not (max_dy or max_dx):
        return x
    padded = F.pad(x, (max_dx, max_dx, max_dy, max_dy), mode="replicate")
    dy = torch.randint(0, 2 * max_dy + 1, (x.shape[0],), generator=generator).tolist()
    dx = torch.randint(0, 2 * max_dx + 1, (x.shape[0],), generator=generator).tolist()
    return torch.stack(
        [padded[i, :, y : y + height, z : z + width] for i, (y, z) in enumerate(zip(dy, dx))]
    )


@torch.no_grad()
def validation_loss(
    model: CaptionModel,
    x: Measurements | torch.Tensor,
    captions: EncodedCaptions,
    regularization: float,
    batch_size: int,
    device: torch.device,
) -> float:
    """Mean per-caption loss (NLL + λ·penalty) of the teacher-forced references."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = list(torch.arange(x.shape[0]).split(batch_size))
    for images, batch in zip(order, as_measurements(x, "validation").batches(order, device)):
        features = model.features(batch)
        result = teacher_forcing_loss(model.decoder, features, images, captions, regularization)
        total += float(result.loss) * result.captions
        count += result.captions
    model.train(was_training)
    return total / max(count, 1)


def train_captioner(
    model: CaptionModel,
    vocabulary: Vocabulary,
    train_x: Measurements | torch.Tensor,
    train_captions: EncodedCaptions,
    val_x: Measurements | torch.Tensor,
    val_captions: EncodedCaptions,
    val_references: Sequence[Sequence[str]],
    config: CaptionTrainConfig,
    model_config: CaptionModelConfig,
    ctx: RunContext,
    name: str,
    max_words: int,
    beam_size: int = 1,
) -> tuple[CaptionModel, CaptionHistory]:
    """Train ``model`` (teacher forcing, 2PSC loss) with early stopping on validation CIDEr-D.

    ``val_references``: the validation captions, normalized (:func:`normalize_caption`), that
    the validation captions (beam search with ``beam_size``) are scored against.
    """
    train_x = as_measurements(train_x, f"{name}: training")
    val_x = as_measurements(val_x, f"{name}: validation")
    _check_measurements(train_x, f"{name}: training")
    _check_measurements(val_x, f"{name}: validation")
    check_same_encoder(train_x, val_x, name)
    if (
        int(train_captions.image_index.max()) >= train_x.shape[0]
        or len(val_references) != val_x.shape[0]
    ):
        raise DataError(
            f"{name}: the captions do not match the "
            "measurements (one list of references per image)."
        )
    device = ctx.device
    regularization = model_config.attention_regularization

    torch.manual_seed(ctx.seed)
    model.features.set_standardization(*channel_statistics(train_x))
    # channels-last: 1.2-1.5× faster conv steps on the CPU (benchmarks/bench_training.py)
    model.to(device=device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.features.parameters(), "lr": config.encoder_lr},
            {"params": model.decoder.parameters(), "lr": config.decoder_lr},
        ],
        weight_decay=config.weight_decay,
    )
    scheduler = one_cycle(
        optimizer,
        [config.encoder_lr, config.decoder_lr],
        config.epochs * steps_per_epoch(train_x.shape[0], config.batch_size),
    )
    signature = stable_hash(
        {
            "format": CHECKPOINT_FORMAT,
            "name": name,
            "config": config.model_dump(mode="json"),
            "model_config": model_config.model_dump(mode="json"),
            "vocabulary": vocabulary.words,
            "max_words": max_words,
            "beam_size": beam_size,
            "model": [[k, list(v.shape)] for k, v in sorted(model.state_dict().items())],
            "train": [
                content_signature(train_x),
                tensor_fingerprint(train_captions.tokens),
                tensor_fingerprint(train_captions.image_index),
            ],
            "val": [
                content_signature(val_x),
                tensor_fingerprint(val_captions.tokens),
                list(map(list, val_references)),
            ],
            "seed": ctx.seed,
        },
        length=32,
    )

    def train_epoch(epoch: int, generator: torch.Generator) -> dict[str, float]:
        total_loss, total_nll, total_penalty, batches = 0.0, 0.0, 0.0, 0
        order = shuffled_batches(train_x.shape[0], config.batch_size, generator)
        for images, batch in zip(order, train_x.batches(order)):
            shifted = random_shift(batch, config.augment_shift, generator)
            features = model.features(shifted.to(device))
            loss, parts, _ = teacher_forcing_loss(
                model.decoder, features, images, train_captions, regularization
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach())
            total_nll += parts["nll_per_word"]
            total_penalty += parts["attention_penalty"]
            batches += 1
        return {
            "train_loss": total_loss / max(batches, 1),
            "train_nll_per_word": total_nll / max(batches, 1),
            "train_attention_penalty": total_penalty / max(batches, 1),
        }

    def validate() -> tuple[tuple[float, float], dict[str, float]]:
        val_loss = validation_loss(
            model, val_x, val_captions, regularization, config.eval_batch_size, device
        )
        val_candidates = generate_captions(
            model,
            val_x,
            vocabulary,
            beam_size=beam_size,
            max_words=max_words,
            batch_size=config.eval_batch_size,
            device=device,
        )
        scores = validation_scores(val_candidates, val_references)
        # (val CIDEr-D, -val loss), compared lexicographically
        return (scores["cider"], -val_loss), {
            "val_loss": val_loss,
            "val_bleu_4": scores["bleu_4"],
            "val_cider": scores["cider"],
        }

    def on_best(history: CaptionHistory, record) -> None:
        history.best_val_cider = record["val_cider"]
        history.best_val_bleu_4 = record["val_bleu_4"]
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
        history=CaptionHistory(),
        worst_score=(float("-inf"), float("-inf")),
        patience=config.patience,
        on_best=on_best,
        show=("train_loss", "val_cider"),
    )
    return model, history
