"""The ``end-to-end`` designer: 2PSC's joint training of the optics and the utility model (§2.3).

The encoder and the utility model are trained together on the task loss plus
``α · (1 − mean‖Y − X‖²/J)``, the 2PSC distortion term (:func:`distortion_term`), and an
optional PSF-spread term, with separate learning rates for the optics, the feature extractor
and the head. The utility is a classifier (face vs no-face, face ID) or, with
``task: captioning``, 2PSC's own: the attention-LSTM captioner of :mod:`privbench.captioning`
on the ``scenes`` part, whose caption loss (word NLL + doubly stochastic attention term) is the
task loss. One epoch of :func:`privbench.nn.fit.fit` per epoch here; its batch order is one
run-long generator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from privbench.designers._common import (
    design_history,
    design_signature,
    distortion_term,
    float_images,
    project,
    reporter,
    subset,
    trainable_parameters,
)
from pydantic import Field
from torch import nn

from privbench.api.designer import Designer, DesignerConfig, DesignHistory
from privbench.api.encoder import Encoder, encode_batches
from privbench.api.evaluation import RunContext
from privbench.api.registry import register_designer
from privbench.captioning import (
    CaptionModelConfig,
    Vocabulary,
    build_caption_model,
    encode_captions,
    longest_caption,
    teacher_forcing_loss,
    validation_loss,
)
from privbench.nn.classifiers import build_classifier, check_arch
from privbench.nn.fit import FitHistory, fit, shuffled_batches
from privbench.nn.training import channel_statistics, predict_logits

#: ``task_loss(batch, measurement)``: the utility loss of a batch (indices into the training
#: images) from its measurements.
TaskLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``validate()``: the score (higher is better) and the metrics of the current encoder + model.
TaskValidation = Callable[[], tuple[float, dict[str, float]]]


class EndToEndConfig(DesignerConfig):
    task: Literal["face-vs-noface", "face-id", "captioning"] = Field(
        "face-vs-noface",
        description="the utility the encoder is trained for (labels of that data part; "
        "captioning: the scenes' captions)",
    )
    arch: str = Field("small-cnn", description="the utility model trained jointly with the encoder")
    epochs: int = Field(4, ge=1)
    batch_size: int = Field(64, ge=2)
    optics_lr: float = Field(1e-2, gt=0, description="learning rate of the encoder (2PSC: 1e-2)")
    features_lr: float = Field(
        1e-3, gt=0, description="feature extractor (2PSC: 1e-4 with pre-trained ResNet-101)"
    )
    head_lr: float = Field(1e-3, gt=0, description="classifier head (2PSC: 1e-4)")
    psf_spread_weight: float = Field(
        0.0, ge=0, description="weight of the encoder's PSF-spread regularizer, if any"
    )
    max_train_images: int | None = Field(None, ge=16)
    caption_model: CaptionModelConfig = Field(
        default_factory=CaptionModelConfig,
        description="captioning: the captioner trained with the lens (2PSC §2.2)",
    )
    min_word_count: int = Field(
        5,
        ge=1,
        le=10_000,
        description="captioning: training-caption frequency a word needs to enter the vocabulary",
    )
    max_caption_words: int = Field(
        40, ge=1, le=200, description="captioning: reference captions are cut to this many words"
    )


@register_designer("end-to-end")
class EndToEndDesigner(Designer):
    """2PSC §2.3: encoder + utility model jointly; task loss + α·distortion (+ PSF spread)."""

    Config = EndToEndConfig

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        check_arch(self.config.arch)

    def fit(self, encoder: Encoder, data, ctx: RunContext) -> DesignHistory:
        cfg = self.config
        if cfg.task == "captioning":
            return self._fit_captioning(encoder, data, ctx)
        device = ctx.device
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        part = data.part("face_vs_noface" if cfg.task == "face-vs-noface" else "identities")
        x, y = subset(part.train.images, part.train.labels, cfg.max_train_images, generator)
        shape = encoder.output_shape(tuple(x.shape[1:]))
        model = build_classifier(cfg.arch, shape, part.train.num_classes).to(
            device=device, memory_format=torch.channels_last
        )
        encoder.to(device)
        model.set_standardization(
            *channel_statistics(encode_batches(encoder, x[:512], device=device))
        )
        optics = trainable_parameters(encoder, self)
        head = [p for n, p in model.named_parameters() if ".head." in n or n.startswith("head.")]
        head_ids = {id(p) for p in head}
        features = [p for p in model.parameters() if id(p) not in head_ids]
        optimizer = torch.optim.Adam(
            [
                {"params": optics, "lr": cfg.optics_lr},
                {"params": features, "lr": cfg.features_lr},
                {"params": head, "lr": cfg.head_lr},
            ]
        )

        def task_loss(batch: torch.Tensor, measurement: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(measurement), y[batch].to(device))

        def validate() -> tuple[float, dict[str, float]]:
            measurements = encode_batches(encoder, part.val.images, device=device)
            predicted = predict_logits(model, measurements, device=device).argmax(1)
            accuracy = float((predicted == part.val.labels).float().mean())
            return accuracy, {"val_accuracy": accuracy}

        return self._train_jointly(
            encoder, model, optimizer, x, generator, ctx, "end-to-end", task_loss, validate
        )

    def _fit_captioning(self, encoder: Encoder, data, ctx: RunContext) -> DesignHistory:
        """2PSC §2.3 end to end: lens + captioner on caption loss + α·(1 − mean‖Y − X‖²/J).

        Per step, a batch of scenes goes through the encoder (with gradients), the captioner's
        feature extractor and, for each reference caption of those scenes, the attention LSTM
        under teacher forcing. Learning rates: ``optics_lr`` (lens), ``features_lr`` (feature
        extractor), ``head_lr`` (LSTM decoder), as 2PSC's 1e-2 / 1e-4 / 1e-4. Validation: the
        teacher-forced caption loss of the validation scenes through the current lens.
        """
        cfg = self.config
        device = ctx.device
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        scenes = data.part("scenes")
        train, val = scenes.train, scenes.val
        index = torch.arange(len(train))
        if cfg.max_train_images is not None and len(train) > cfg.max_train_images:
            keep = torch.randperm(len(train), generator=generator)[: cfg.max_train_images]
            index = keep.sort().values
        x = train.images[index]
        references = [train.captions[i] for i in index.tolist()]
        vocabulary = Vocabulary.build(
            (text for texts in references for text in texts), cfg.min_word_count
        )
        max_words = min(cfg.max_caption_words, max(longest_caption(references), 1))
        captions = encode_captions(vocabulary, references, max_words)
        val_captions = encode_captions(vocabulary, val.captions, max_words)
        shape = encoder.output_shape(tuple(x.shape[1:]))
        model = build_caption_model(cfg.caption_model, shape, len(vocabulary)).to(
            device=device, memory_format=torch.channels_last
        )
        encoder.to(device)
        model.features.set_standardization(
            *channel_statistics(encode_batches(encoder, x[:512], device=device))
        )
        optimizer = torch.optim.Adam(
            [
                {"params": trainable_parameters(encoder, self), "lr": cfg.optics_lr},
                {"params": list(model.features.parameters()), "lr": cfg.features_lr},
                {"params": list(model.decoder.parameters()), "lr": cfg.head_lr},
            ]
        )
        regularization = cfg.caption_model.attention_regularization

        def task_loss(batch: torch.Tensor, measurement: torch.Tensor) -> torch.Tensor:
            features = model.features(measurement)
            return teacher_forcing_loss(
                model.decoder, features, batch, captions, regularization
            ).loss

        def validate() -> tuple[float, dict[str, float]]:
            measurements = encode_batches(encoder, val.images, device=device)
            loss = validation_loss(
                model, measurements, val_captions, regularization, cfg.batch_size, device
            )
            return -loss, {"val_loss": loss}

        return self._train_jointly(
            encoder,
            model,
            optimizer,
            x,
            generator,
            ctx,
            "end-to-end-captioning",
            task_loss,
            validate,
        )

    def _train_jointly(
        self,
        encoder: Encoder,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        generator: torch.Generator,
        ctx: RunContext,
        name: str,
        task_loss: TaskLoss,
        validate: TaskValidation,
    ) -> DesignHistory:
        """The 2PSC §2.3 loop shared by every task: task loss + α·distortion (+ PSF spread) on
        :func:`fit`, which validates, checkpoints (resumed when the config matches) and, through
        ``on_epoch``, logs and reports every epoch to ``ctx``."""
        cfg = self.config
        device = ctx.device
        modules = nn.ModuleDict({"encoder": encoder, "model": model})

        def train_epoch(epoch: int, generator: torch.Generator) -> dict[str, float]:
            sums = {"task": 0.0, "distortion": 0.0, "psf_spread": 0.0, "loss": 0.0}
            steps = 0
            for batch in shuffled_batches(
                images.shape[0], cfg.batch_size, generator, drop_single=False
            ):
                clean = float_images(images[batch], device)
                measurement = encoder(clean)
                task = task_loss(batch, measurement)
                distortion = distortion_term(clean, measurement, encoder.measurement_range())
                loss = task + cfg.alpha * distortion
                spread = encoder.regularizers(clean, measurement).get("psf_spread")
                if spread is not None and cfg.psf_spread_weight:
                    loss = loss + cfg.psf_spread_weight * spread
                    sums["psf_spread"] += float(spread.detach())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                project(encoder)
                sums["task"] += float(task.detach())
                sums["distortion"] += float(distortion.detach())
                sums["loss"] += float(loss.detach())
                steps += 1
            return {key: value / max(1, steps) for key, value in sums.items()}

        def validate_epoch() -> tuple[float, dict[str, float]]:
            modules.eval()
            with torch.no_grad():
                return validate()

        def describe(record: Mapping[str, float]) -> str:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in record.items() if k.startswith("val_"))
            return (
                f"{name} epoch {record['epoch']}/{cfg.epochs}: task loss {record['task']:.3f}, "
                f"distortion {record['distortion']:.3f}, {shown}"
            )

        history = fit(
            modules,
            name=name,
            ctx=ctx,
            epochs=cfg.epochs,
            optimizer=optimizer,
            train_epoch=train_epoch,
            validate=validate_epoch,
            signature=design_signature(self, encoder, name),
            history=FitHistory(),
            worst_score=float("-inf"),
            keep_best=False,
            on_epoch=reporter(ctx, describe),
            show=("task", "distortion"),
            generator=generator,
        )
        encoder.eval()
        return design_history(history)
